"""Status: the real status Lambda handler in-process against real PostgreSQL, each of its routes
timed over API Gateway HTTP API (v2) events and a Lambda-like context."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

from bench.common import ROOT, latency_summary, log, progress, quiet_stdout, use_database
from devstack.lambdas import FakeContext, Handler, load_handler
from mintq import db
from tests.support.events import http_event


def _timed(handler: Handler, events: list[dict[str, Any]], expect: int, desc: str) -> dict[str, float]:
    ctx = FakeContext(function_name="bench", timeout_s=3600)
    latencies: list[float] = []
    bar = progress(len(events), desc, "req")
    with quiet_stdout():
        started = time.perf_counter()
        for i, event in enumerate(events):
            t = time.perf_counter()
            result = handler(event, ctx)
            latencies.append(time.perf_counter() - t)
            if result["statusCode"] != expect:
                raise RuntimeError(f"{desc}: HTTP {result['statusCode']}: {result.get('body')}")
            if i % 200 == 0:
                bar.update(200 if i else 1)
        total = time.perf_counter() - started
    bar.n = len(events)
    bar.close()
    return {"per_second": round(len(events) / total, 1), **latency_summary(latencies)}


def _sample_ids(url: str, sql: str, n: int) -> list[str]:
    with db.connect(url) as conn:
        ids = [str(r["id"]) for r in conn.execute(sql, {"n": n}).fetchall()]
    random.shuffle(ids)
    return ids


def measure_status(url: str, n: int, payer: str) -> dict[str, dict[str, float]]:
    use_database(url)
    handler = load_handler(ROOT / "functions" / "status")
    queue_ids = _sample_ids(
        url, "SELECT id FROM mint_queue TABLESAMPLE SYSTEM (2) ORDER BY random() LIMIT %(n)s", n
    )
    archived_ids = _sample_ids(
        url, "SELECT queue_id AS id FROM mint_history TABLESAMPLE SYSTEM (1) ORDER BY random() LIMIT %(n)s", n
    )

    def status(_: int) -> dict[str, Any]:
        return http_event("GET", "/queue/status")

    def payer_page(_: int) -> dict[str, Any]:
        return http_event(
            "GET", f"/queue/payer/{payer}", route="/queue/payer/{address}", path_parameters={"address": payer}
        )

    def item_from(ids: list[str]) -> Callable[[int], dict[str, Any]]:
        def make(i: int) -> dict[str, Any]:
            qid = ids[i % len(ids)] if ids else str(uuid.uuid4())
            return http_event(
                "GET", f"/queue/item/{qid}", route="/queue/item/{queueId}", path_parameters={"queueId": qid}
            )

        return make

    endpoints: dict[str, Callable[[int], dict[str, Any]]] = {
        "GET /queue/status": status,
        "GET /queue/payer/{address}": payer_page,
        "GET /queue/item/{queueId} (queued)": item_from(queue_ids),
        "GET /queue/item/{queueId} (archived)": item_from(archived_ids),
    }
    out: dict[str, dict[str, float]] = {}
    for name, make in endpoints.items():
        with quiet_stdout():
            for i in range(20):
                handler(make(i), FakeContext(function_name="bench"))
        events = [make(i) for i in range(n)]
        out[name] = _timed(handler, events, 200, name)
    # Sanity: the payer page really carries the payer's rows.
    with quiet_stdout():
        page = handler(payer_page(0), FakeContext(function_name="bench"))
    rows = len(json.loads(page["body"]).get("requests", []))
    out["GET /queue/payer/{address}"]["rows_returned"] = rows
    log(f"status: payer page returned {rows} rows")
    return out
