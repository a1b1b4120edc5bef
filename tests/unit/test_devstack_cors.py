"""The local API answers CORS as an HTTP API with template.yaml's CorsConfiguration does."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest

from devstack import cors
from devstack.http import ApiServer, Route, serve

APP = "http://app.example.test:5173"
OTHER = "http://evil.example.test"

calls: list[str] = []


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    calls.append(event["requestContext"]["http"]["method"])
    return {
        "statusCode": 402,
        "headers": {
            "content-type": "application/json",
            "PAYMENT-REQUIRED": "eyJ4NDAyVmVyc2lvbiI6Mn0=",
            # The gateway ignores an integration's own CORS headers.
            "Access-Control-Allow-Origin": "*",
        },
        "body": json.dumps({"success": False}),
    }


def _serve(origins: str) -> ApiServer:
    routes = [Route("POST", "/mint", handler), Route("GET", "/queue/status", handler)]
    return serve(routes, port=0, cors=cors.for_origins(origins.split(",")))


@pytest.fixture
def listed() -> Iterator[ApiServer]:
    calls.clear()
    with _serve(f"{APP},https://*") as api:
        yield api


@pytest.fixture
def anyone() -> Iterator[ApiServer]:
    calls.clear()
    with _serve("*") as api:
        yield api


def request(api: ApiServer, method: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    conn = http.client.HTTPConnection(api.host, api.port, timeout=10)
    try:
        conn.request(method, path, body=b"{}" if method == "POST" else None, headers=headers)
        answer = conn.getresponse()
        answer.read()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}
    finally:
        conn.close()


def preflight(api: ApiServer, path: str, origin: str, method: str = "POST") -> tuple[int, dict[str, str]]:
    return request(
        api,
        "OPTIONS",
        path,
        {
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "content-type,payment-signature",
        },
    )


def test_the_gateway_answers_preflights_itself_for_a_listed_origin(listed: ApiServer) -> None:
    for path in ("/mint", "/queue/status", "/queue/item/anything", "/no/such/route"):
        status, headers = preflight(listed, path, APP)
        assert status == 204
        assert headers["access-control-allow-origin"] == APP
        assert headers["access-control-allow-methods"] == "GET,POST"
        assert headers["access-control-allow-headers"] == ",".join(cors.ALLOW_HEADERS)
        assert headers["access-control-max-age"] == "600"
    assert calls == []  # no function ran


def test_a_preflight_from_an_unlisted_origin_gets_no_cors_headers(listed: ApiServer) -> None:
    status, headers = preflight(listed, "/mint", OTHER)
    assert status == 204
    assert not any(name.startswith("access-control-") for name in headers)


def test_https_wildcard_allows_any_https_origin(listed: ApiServer) -> None:
    assert preflight(listed, "/mint", "https://dapp.example.org")[1]["access-control-allow-origin"] == (
        "https://dapp.example.org"
    )
    assert "access-control-allow-origin" not in preflight(listed, "/mint", "http://dapp.example.org")[1]


def test_answers_carry_the_origin_and_the_exposed_headers(listed: ApiServer) -> None:
    status, headers = request(listed, "POST", "/mint", {"Origin": APP, "Content-Type": "application/json"})
    assert status == 402 and calls == ["POST"]
    assert headers["access-control-allow-origin"] == APP  # the integration's "*" was dropped
    assert headers["access-control-expose-headers"] == ",".join(cors.EXPOSE_HEADERS)
    assert "PAYMENT-REQUIRED" in headers["access-control-expose-headers"].split(",")
    status, headers = request(listed, "POST", "/mint", {"Origin": OTHER})
    assert status == 402 and not any(name.startswith("access-control-") for name in headers)
    status, headers = request(listed, "POST", "/mint", {})  # not a CORS request: no CORS headers
    assert not any(name.startswith("access-control-") for name in headers)


def test_a_wildcard_opens_the_reads_and_not_the_mint(anyone: ApiServer) -> None:
    status, headers = preflight(anyone, "/queue/status", OTHER, method="GET")
    assert (status, headers["access-control-allow-origin"]) == (204, "*")
    assert headers["access-control-allow-methods"] == "GET"
    # Browsers never check GET/HEAD/POST against the list: what closes POST /mint is that no
    # request header is allowed, so a JSON body or a payment header fails the preflight.
    assert "access-control-allow-headers" not in headers
    status, headers = request(anyone, "GET", "/queue/status", {"Origin": OTHER})
    assert headers["access-control-allow-origin"] == "*"


def test_an_options_request_that_is_not_a_preflight_is_routed(listed: ApiServer) -> None:
    status, _ = request(listed, "OPTIONS", "/mint", {"Origin": APP})  # no Access-Control-Request-Method
    assert status == 404  # no OPTIONS route: what an HTTP API answers


def test_without_cors_nothing_changes() -> None:
    with serve([Route("POST", "/mint", handler)], port=0) as api:
        status, headers = preflight(api, "/mint", APP)
        assert status == 404
        _, headers = request(api, "POST", "/mint", {"Origin": APP})
        assert headers["access-control-allow-origin"] == "*"  # the integration's own, untouched
