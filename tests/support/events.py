"""API Gateway HTTP API (v2) events for calling handlers directly."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devstack.lambdas import FakeContext, load_handler

REPO_ROOT = Path(__file__).resolve().parents[2]


def http_event(
    method: str,
    path: str,
    *,
    route: str | None = None,
    body: object = None,
    raw_body: str | None = None,
    path_parameters: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    text = raw_body if raw_body is not None else (json.dumps(body) if body is not None else None)
    return {
        "version": "2.0",
        "routeKey": f"{method} {route or path}",
        "rawPath": path,
        "rawQueryString": "&".join(f"{k}={v}" for k, v in (query or {}).items()),
        "headers": {"content-type": "application/json", **(headers or {})},
        "queryStringParameters": query,
        "pathParameters": path_parameters,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "localhost",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "pytest",
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": f"{method} {route or path}",
            "stage": "$default",
            "timeEpoch": 0,
        },
        "body": text,
        "isBase64Encoded": False,
    }


def invoke(function: str, event: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Call ``functions/<function>/app.lambda_handler`` and decode its JSON answer."""
    handler = load_handler(REPO_ROOT / "functions" / function)
    result = handler(event, FakeContext(function_name=function))
    body = json.loads(result["body"]) if result.get("body") else {}
    return result["statusCode"], body, result.get("headers") or {}


def concurrently(
    database_url: str, monkeypatch: pytest.MonkeyPatch, calls: list[Callable[[], Any]]
) -> list[Any]:
    """Run ``calls`` at once, each thread with its own database connection as each Lambda
    execution environment has its own ``db.shared_connection()``; the answers in call order."""
    from mintq import db
    from tests.support.chain import run_threads

    local = threading.local()
    opened: list[Any] = []

    def per_thread() -> Any:
        if getattr(local, "conn", None) is None:
            local.conn = db.connect(database_url)
            opened.append(local.conn)
        return local.conn

    with monkeypatch.context() as patch:
        patch.setattr(db, "shared_connection", per_thread)
        try:
            return run_threads(calls)
        finally:
            for c in opened:
                c.close()
