"""API Gateway's Lambda proxy payload format 2.0, both ways: the event an HTTP request becomes
(``lambda_event``) and the HTTP answer a handler's result becomes (``http_answer``)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from devstack.lambdas import ACCOUNT_ID

API_ID = "local"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True, kw_only=True)
class Request:
    """An HTTP request as the gateway received it: ``headers`` as sent (name, value), in order."""

    method: str
    raw_path: str
    raw_query: str
    headers: Sequence[tuple[str, str]]
    body: bytes
    protocol: str
    source_ip: str
    server_host: str
    server_port: int


def lambda_event(
    request: Request,
    *,
    route_key: str,
    path_params: dict[str, str],
    request_id: str,
) -> dict[str, Any]:
    """The event API Gateway sends a Lambda for ``request`` matched to ``route_key``: headers
    lower-cased and repeated ones joined with commas, cookies in their own list, the query's
    repeated keys joined, a body that is not UTF-8 base64-encoded."""
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in request.headers:
        key = name.lower()
        if key == "cookie":
            # Payload 2.0 moves cookies out of the headers into their own list.
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
        elif key in headers:
            headers[key] += "," + value
        else:
            headers[key] = value
    host, port = request.server_host, request.server_port
    headers.setdefault("x-forwarded-for", request.source_ip)
    headers.setdefault("x-forwarded-port", str(port))
    headers.setdefault("x-forwarded-proto", "http")
    headers.setdefault("x-amzn-trace-id", f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}")

    query: dict[str, str] = {}
    for key, value in parse_qsl(request.raw_query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value

    text: str | None
    encoded = False
    if not request.body:
        text = None
    else:
        try:
            text = request.body.decode("utf-8")
        except UnicodeDecodeError:
            text, encoded = base64.b64encode(request.body).decode("ascii"), True

    now = time.time()
    domain = headers.get("host") or f"{host}:{port}"
    return {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": request.raw_path,
        "rawQueryString": request.raw_query,
        "cookies": cookies or None,
        "headers": headers,
        "queryStringParameters": query or None,
        "pathParameters": path_params or None,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": API_ID,
            "domainName": domain,
            "domainPrefix": domain.split(".", 1)[0],
            "http": {
                "method": request.method,
                "path": request.raw_path,
                "protocol": request.protocol,
                "sourceIp": request.source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": route_key,
            "stage": "$default",
            "time": _clf_time(now),
            "timeEpoch": int(now * 1000),
        },
        "body": text,
        "isBase64Encoded": encoded,
        "stageVariables": None,
    }


def http_answer(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """A handler result as (status, headers, body), by API Gateway's payload 2.0 rules."""
    if not (isinstance(result, dict) and "statusCode" in result):
        # No statusCode: API Gateway assumes 200 and sends the whole result as a JSON body.
        text = result if isinstance(result, str) else json.dumps(result)
        return 200, [("content-type", "application/json")], text.encode("utf-8")

    status = int(result["statusCode"])
    headers = [(str(k), str(v)) for k, v in (result.get("headers") or {}).items()]
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers.extend((str(name), str(v)) for v in _as_list(values))
    headers.extend(("set-cookie", str(c)) for c in _as_list(result.get("cookies") or []))
    body = result.get("body")
    if body is None:
        payload = b""
    elif not isinstance(body, str):
        raise TypeError(f"Lambda proxy response body must be a string, got {type(body).__name__}")
    elif result.get("isBase64Encoded"):
        payload = base64.b64decode(body)
    else:
        payload = body.encode("utf-8")
    return status, headers, payload


def _as_list(values: Any) -> Iterable[Any]:
    return values if isinstance(values, list) else [values]


def error_answer(status: int, message: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """The gateway's own error answer: ``{\"message\": ...}``."""
    return status, [("content-type", "application/json")], json.dumps({"message": message}).encode()


def _clf_time(epoch: float) -> str:
    # "12/Mar/2020:19:03:58 +0000"; month names spelled out here so the locale can't change them.
    t = time.gmtime(epoch)
    return f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:{time.strftime('%H:%M:%S', t)} +0000"
