"""Enqueue and status: the real Lambda handlers in-process against real PostgreSQL.

Handlers get API Gateway HTTP API (v2) events and a Lambda-like context, exactly the code
path Lambda runs (Powertools resolver, validation, one shared connection). Beside the enqueue
handler run the floors it is held to (``BASELINES``): one autocommit ``INSERT`` per request on
one connection, into issue 14's plain table and into ``mint_queue`` itself.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

from bench.common import (
    PLAIN_INSERT,
    ROOT,
    create_plain_table,
    latency_summary,
    log,
    progress,
    quiet_stdout,
    ratio,
    set_settings,
    use_database,
)
from devstack.lambdas import FakeContext, Handler, load_handler
from mintq import addresses, db
from tests.support.events import http_event

MINT_QUEUE_INSERT = (
    "INSERT INTO mint_queue (payer_address, payment_type) VALUES (%(payer)s, 'free') RETURNING id"
)
PREFILL_CHUNK = 250_000
#: Rotating handler / baseline chunks per enqueue measurement.
ENQUEUE_ROUNDS = 6
#: Pending requests per payer in the prefill (the default per-payer cap is 10).
PREFILL_ROWS_PER_PAYER = 5
#: The payer the status benchmark asks for: 10 pending and 20 completed requests.
STATUS_PAYER_PENDING = 10
STATUS_PAYER_COMPLETED = 20


def random_payers(n: int) -> list[str]:
    """Distinct, valid, non-zero lower-case addresses (the handler checksums them)."""
    seen: set[str] = set()
    while len(seen) < n:
        seen.add("0x" + os.urandom(20).hex())
    return list(seen)


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


#: What the enqueue handler is measured against, each on one autocommit connection, one
#: statement per request: issue 14's plain INSERT (the target's baseline), and a direct INSERT into
#: mint_queue itself (the previous baseline: it pays the counting trigger the enqueue skips).
BASELINES = {"plain_insert": PLAIN_INSERT, "mint_queue_insert": MINT_QUEUE_INSERT}


def measure_enqueue(
    url: str, n: int, label: str, rounds: int = ENQUEUE_ROUNDS
) -> dict[str, dict[str, float]]:
    """The enqueue handler and each of ``BASELINES``, ``n`` requests each, interleaved in
    ``rounds`` rotating chunks (handler first, then a baseline first, ...) so that drift in the
    machine or the tables (autovacuum, cache, growth) falls on all alike."""
    use_database(url)
    create_plain_table(url)
    handler = load_handler(ROOT / "functions" / "enqueue")
    ctx = FakeContext(function_name="bench", timeout_s=3600)
    kinds = ["handler", *BASELINES]
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    elapsed = dict.fromkeys(kinds, 0.0)
    bar = progress(len(kinds) * n, f"enqueue: handler and baselines ({label})", "req")
    # The handler's time inside mintq.db's statements (sent, executed, answer read), per request:
    # the rest of its time is Python (routing, validation, logging, metrics, shaping).
    in_database: list[float] = []
    real_one = db.one

    def timed_one(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return real_one(*args, **kwargs)
        finally:
            in_database.append(time.perf_counter() - t)

    with db.connect(url, application_name="mintq-bench-raw") as conn, quiet_stdout():
        for p in random_payers(20):  # warm every path
            handler(http_event("POST", "/mint", body={"payer": p}), ctx)
            for sql in BASELINES.values():
                conn.execute(sql, {"payer": addresses.to_checksum(p)})  # type: ignore[call-overload]
        sizes = [n // rounds + (1 if i < n % rounds else 0) for i in range(rounds)]
        for r, size in enumerate(sizes):
            events = [http_event("POST", "/mint", body={"payer": p}) for p in random_payers(size)]
            payers = [addresses.to_checksum(p) for p in random_payers(size)]
            for kind in kinds[r % len(kinds) :] + kinds[: r % len(kinds)]:
                started = time.perf_counter()
                if kind == "handler":
                    db.one = timed_one  # type: ignore[assignment]  # restored below
                    try:
                        for event in events:
                            t = time.perf_counter()
                            result = handler(event, ctx)
                            times[kind].append(time.perf_counter() - t)
                            if result["statusCode"] != 202:
                                raise RuntimeError(
                                    f"POST /mint: HTTP {result['statusCode']}: {result.get('body')}"
                                )
                    finally:
                        db.one = real_one  # type: ignore[assignment]
                else:
                    sql = BASELINES[kind]
                    for payer in payers:
                        t = time.perf_counter()
                        conn.execute(sql, {"payer": payer}).fetchone()  # type: ignore[call-overload]
                        times[kind].append(time.perf_counter() - t)
                elapsed[kind] += time.perf_counter() - started
                bar.update(size)
    bar.close()
    measured: dict[str, dict[str, float]] = {
        kind: {
            "per_second": round(len(times[kind]) / elapsed[kind], 1),
            "rounds": rounds,
            **latency_summary(times[kind]),
        }
        for kind in kinds
    }
    # Means, so that the parts add up to the whole (medians do not).
    n_handler = len(times["handler"])
    measured["handler"]["mean_ms"] = round(sum(times["handler"]) / n_handler * 1000, 3)
    measured["handler"]["mean_in_database_ms"] = round(sum(in_database) / n_handler * 1000, 3)
    measured["handler"]["mean_in_python_ms"] = round(
        measured["handler"]["mean_ms"] - measured["handler"]["mean_in_database_ms"], 3
    )
    return measured


def enqueue_ratios(measured: dict[str, dict[str, float]]) -> dict[str, Any]:
    """``measured`` (``measure_enqueue``'s) with the handler's rate over each baseline's,
    measured in the same rounds: ``handler_vs_plain`` (issue 14's target) and
    ``handler_vs_mint_queue_insert``."""
    handler = measured["handler"]["per_second"]
    return {
        **measured,
        "handler_vs_plain": ratio(handler, measured["plain_insert"]["per_second"]),
        "handler_vs_mint_queue_insert": ratio(handler, measured["mint_queue_insert"]["per_second"]),
    }


def prefill_pending(url: str, rows: int) -> None:
    """``rows`` pending requests from ``rows / 5`` payers, in a few INSERT … SELECT statements."""
    _prefill(
        url,
        rows,
        "prefill: pending rows",
        "INSERT INTO mint_queue (payer_address, payment_type, enqueue_position)"
        " SELECT '0x' || left(encode(sha256(convert_to('payer-' || (g %% %(p)s), 'UTF8')), 'hex'), 40),"
        "        'free', g"
        "   FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) g",
        {"p": max(1, rows // PREFILL_ROWS_PER_PAYER)},
    )


def prefill_history(url: str, rows: int) -> None:
    """``rows`` completed requests in mint_history (500 per batch transaction, 1M payers)."""
    _prefill(
        url,
        rows,
        "prefill: history rows",
        "INSERT INTO mint_history (queue_id, payer_address, mint_tx_hash, amount, block_number,"
        "                          payment_type, created_at, completed_at)"
        " SELECT gen_random_uuid(),"
        "        '0x' || left(encode(sha256(convert_to('hpayer-' || (g %% 1000000), 'UTF8')), 'hex'), 40),"
        "        '0x' || encode(sha256(convert_to('tx-' || (g / 500), 'UTF8')), 'hex'),"
        "        '1000000000000000000000', g / 500, 'free',"
        "        now() - make_interval(secs => (%(n)s - g) + 30),"
        "        now() - make_interval(secs => (%(n)s - g))"
        "   FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) g",
        {"n": rows},
    )


def _prefill(url: str, rows: int, desc: str, statement: str, params: dict[str, Any]) -> None:
    """Run ``statement`` over ``g`` in [1, rows] in chunks of PREFILL_CHUNK, then VACUUM ANALYZE."""
    if rows <= 0:
        return
    bar = progress(rows, desc, "row")
    with db.connect(url) as conn:
        for lo in range(1, rows + 1, PREFILL_CHUNK):
            hi = min(rows, lo + PREFILL_CHUNK - 1)
            conn.execute(statement, {**params, "lo": lo, "hi": hi})  # type: ignore[arg-type]
            bar.update(hi - lo + 1)
        bar.set_description("prefill: VACUUM ANALYZE")
        conn.execute("VACUUM ANALYZE")
    bar.close()


def add_status_payer(url: str) -> str:
    """One payer with 10 pending and 20 completed requests (and their history rows)."""
    payer = addresses.to_checksum(random_payers(1)[0])
    with db.connect(url) as conn, conn.transaction():
        conn.execute(
            "INSERT INTO mint_queue (payer_address, payment_type, status, created_at, processed_at,"
            "                        mint_tx_hash, enqueue_position)"
            " SELECT %(p)s, 'free', 'completed', now() - make_interval(mins => 60 + g),"
            "        now() - make_interval(mins => 59 + g), '0x' || repeat('ab', 32), g"
            "   FROM generate_series(1, %(c)s) g",
            {"p": payer, "c": STATUS_PAYER_COMPLETED},
        )
        conn.execute(
            "INSERT INTO mint_history (queue_id, payer_address, mint_tx_hash, amount, payment_type,"
            "                          created_at, completed_at)"
            " SELECT id, payer_address, mint_tx_hash, '1', payment_type, created_at, processed_at"
            "   FROM mint_queue WHERE payer_address = %(p)s AND status = 'completed'",
            {"p": payer},
        )
        for _ in range(STATUS_PAYER_PENDING):
            db.one(
                conn, "enqueue_request", {"payer": payer, "payment_type": "free", "default_max_pending": 10}
            )
    return payer


def queue_counts(url: str) -> dict[str, int]:
    with db.connect(url) as conn:
        row = conn.execute("SELECT pending_count, completed_count FROM queue_stats").fetchone()
        hist = conn.execute(
            "SELECT reltuples::bigint AS n FROM pg_class WHERE relname = 'mint_history'"
        ).fetchone()
    return {
        "pending": int(row["pending_count"]) if row else 0,
        "completed_in_queue": int(row["completed_count"]) if row else 0,
        "history_estimate": int(hist["n"]) if hist else 0,
    }


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


def max_out_payer_cap(url: str) -> None:
    set_settings(url, {"max_pending_per_payer": 1_000_000_000})
