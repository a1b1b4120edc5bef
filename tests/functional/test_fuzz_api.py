"""Property: whatever a client sends, the API answers in its error shape and never with a 5xx.

Hypothesis generates bodies (any JSON, any text, base64 or not), content types, headers, path
parameters and query strings, and drives the real handlers against real PostgreSQL.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.parse
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.events import http_event, invoke

FUZZ = settings(
    # A longer hunt: FUZZ_EXAMPLES=5000 make test PYTEST_ARGS=tests/functional/test_fuzz_api.py
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")),
    # CI replays the same cases every run; a longer hunt (FUZZ_EXAMPLES set) explores afresh.
    derandomize="FUZZ_EXAMPLES" not in os.environ,
    deadline=None,
    # One database per test is enough: the rows the examples leave behind are part of the fuzz.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=60),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
addresses_and_noise = st.one_of(
    st.text(max_size=70),
    st.from_regex(r"0x[0-9a-fA-F]{38,42}", fullmatch=True),
    st.sampled_from(["0x" + "0" * 40, "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"]),
)
mint_bodies = st.one_of(
    st.fixed_dictionaries({"payer": addresses_and_noise}).map(json.dumps),
    st.fixed_dictionaries({"payer": json_values}).map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=200),
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "",
        "application/x-www-form-urlencoded",
    ]
) | st.text(max_size=30)
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=300)


def _assert_well_formed(status: int, body: dict[str, Any]) -> None:
    assert status < 500, body
    if status >= 400:
        assert body["success"] is False, body
        error = body["error"]
        assert isinstance(error, dict) and error["code"] and error["message"], body


@FUZZ
@given(
    body=mint_bodies,
    encode=st.booleans(),
    content_type=content_types,
    key=st.none() | header_text,
)
def test_post_mint_never_fails_on_input(
    database_url: str, body: str, encode: bool, content_type: str, key: str | None
) -> None:
    headers = {"content-type": content_type}
    if key is not None:
        headers["idempotency-key"] = key
    event = http_event("POST", "/mint", raw_body=body, headers=headers)
    if encode:
        event["body"] = base64.b64encode(body.encode()).decode()
        event["isBase64Encoded"] = True
    status, answer, _ = invoke("enqueue", event)
    _assert_well_formed(status, answer)
    assert status in (202, 400, 409, 413, 415, 422, 429), answer


@FUZZ
@given(
    address=st.text(max_size=80),
    limit=st.none() | st.text(max_size=12) | st.integers(-5, 1000).map(str),
    cursor=st.none() | st.text(max_size=250),
)
def test_payer_lookups_never_fail_on_input(
    database_url: str, address: str, limit: str | None, cursor: str | None
) -> None:
    query = {k: v for k, v in {"limit": limit, "cursor": cursor}.items() if v is not None}
    path = "/queue/payer/" + urllib.parse.quote(address, safe="")
    event = http_event(
        "GET", path, route="/queue/payer/{address}", path_parameters={"address": address}, query=query or None
    )
    event["rawQueryString"] = urllib.parse.urlencode(query)
    status, answer, _ = invoke("status", event)
    _assert_well_formed(status, answer)
    assert status in (200, 400, 404, 422), answer


@FUZZ
@given(queue_id=st.text(max_size=80) | st.uuids().map(str))
def test_item_lookups_never_fail_on_input(database_url: str, queue_id: str) -> None:
    path = "/queue/item/" + urllib.parse.quote(queue_id, safe="")
    event = http_event("GET", path, route="/queue/item/{queueId}", path_parameters={"queueId": queue_id})
    status, answer, _ = invoke("status", event)
    _assert_well_formed(status, answer)
    assert status in (200, 400, 404), answer


@pytest.mark.parametrize("function", ["enqueue", "status"])
@FUZZ
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]), path=st.text(max_size=40))
def test_unknown_routes_and_methods_are_4xx(database_url: str, function: str, method: str, path: str) -> None:
    raw = "/unknown/" + urllib.parse.quote(path, safe="/")  # never one of our routes
    status, answer, _ = invoke(function, http_event(method, raw))
    _assert_well_formed(status, answer)
    assert status == 404, answer
