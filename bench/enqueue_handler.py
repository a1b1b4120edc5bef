"""Enqueue: the real enqueue Lambda handler in-process against real PostgreSQL, beside the floors
it is held to (``BASELINES``): one autocommit ``INSERT`` per request on one connection, into issue
14's plain table and into ``mint_queue`` itself.

The handler gets API Gateway HTTP API (v2) events and a Lambda-like context, exactly the code path
Lambda runs (Powertools resolver, validation, one shared connection).
"""

from __future__ import annotations

import time
from typing import Any

from bench.common import (
    PLAIN_INSERT,
    ROOT,
    create_plain_table,
    latency_summary,
    progress,
    quiet_stdout,
    ratio,
    use_database,
)
from bench.prefill import random_payers
from devstack.lambdas import FakeContext, load_handler
from mintq import addresses, db
from tests.support.events import http_event

MINT_QUEUE_INSERT = (
    "INSERT INTO mint_queue (payer_address, payment_type) VALUES (%(payer)s, 'free') RETURNING id"
)
#: Rotating handler / baseline chunks per enqueue measurement.
ENQUEUE_ROUNDS = 6


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
