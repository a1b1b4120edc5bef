"""API Gateway HTTP API (v2) events for calling handlers directly."""

from __future__ import annotations

import json
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


def get_queue_item(queue_id: object) -> tuple[int, dict[str, Any]]:
    """GET /queue/item/{queueId} through the status handler: its status and body, whatever they are."""
    status, body, _ = invoke(
        "status",
        http_event(
            "GET",
            f"/queue/item/{queue_id}",
            route="/queue/item/{queueId}",
            path_parameters={"queueId": str(queue_id)},
        ),
    )
    return status, body


def queue_item(queue_id: object) -> dict[str, Any]:
    """GET /queue/item/{queueId} through the status handler: the item, answered 200."""
    status, body = get_queue_item(queue_id)
    assert status == 200, body
    return body


def concurrently(
    database_url: str, monkeypatch: pytest.MonkeyPatch, calls: list[Callable[[], Any]]
) -> list[Any]:
    """Run ``calls`` at once, each in a forked process of its own, and return their answers in
    call order: like Lambda, one execution environment (and one database connection) per
    concurrent request. Threads would share one Powertools resolver, whose current event is a
    class attribute: under load a thread could answer with another request's event."""
    import multiprocessing

    from mintq import db

    monkeypatch.setenv("MINTQ_DATABASE_URL", database_url)
    ctx = multiprocessing.get_context("fork")
    start = ctx.Barrier(len(calls))
    results = ctx.Queue()
    db.close_shared_connection()  # a child must open its own, never write on an inherited socket

    def child(i: int) -> None:
        from mintq import rpc, x402_facilitator

        # Keep-alive sockets opened by the parent's HTTP clients are not this process's to use.
        rpc.forget_clients()
        x402_facilitator.forget_clients()
        try:
            db.shared_connection()  # connected before the barrier: every request is in at once
            start.wait(timeout=60)
            results.put((i, calls[i]()))
        except BaseException as exc:  # reported, not lost: the parent fails the test with it
            results.put((i, (599, {"exception": repr(exc)}, {})))

    processes = [ctx.Process(target=child, args=(i,)) for i in range(len(calls))]
    for p in processes:
        p.start()
    try:
        answers = dict(results.get(timeout=180) for _ in processes)
    finally:
        for p in processes:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    return [answers[i] for i in range(len(calls))]
