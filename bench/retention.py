"""Retention under load: enqueue latency while a cleanup deletes 1M old rows, against the same
enqueue without it, in one run on one database.

    .venv/bin/python bench/retention.py [--old-rows 1000000] [--requests 3000] [--rounds 8] [--out FILE]

The cleanup is ``mintq cleanup``'s own code (``retention.delete_expired``: chunks of 5,000 rows,
each its own short transaction) on its own connection; the enqueue is the real POST /mint
handler in process, throughout, in alternating windows with and without the cleanup. Target:
enqueue p99 with the cleanup running at most 2x its p99 without.
Prints JSON; ``bench/run.py --only retention`` runs the same section.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import prefill
from bench.common import ROOT, latency_summary, log, progress, quiet_stdout, run_standalone, use_database
from devstack.lambdas import FakeContext, load_handler
from mintq import db, retention
from tests.support.events import http_event


def prefill_old_completed(url: str, rows: int) -> None:
    """``rows`` completed requests finished 40 days ago (past the default 30-day retention)."""
    prefill.prefill_rows(
        url,
        rows,
        "prefill: old completed rows",
        "INSERT INTO mint_queue (payer_address, payment_type, enqueue_position, status, processed_at)"
        " SELECT '0x' || left(encode(sha256(convert_to('old-' || (g %% 200000), 'UTF8')), 'hex'), 40),"
        "        'free', g, 'completed', now() - interval '40 days' + make_interval(secs => g / 1000.0)"
        "   FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) g",
        {},
    )


def _enqueue(n: int, label: str, keep_going: threading.Event | None = None) -> list[float]:
    """Latencies (s) of ``n`` POST /mint through the handler; with ``keep_going``, at least ``n``
    and on until the event is cleared (so every sample overlaps the cleanup)."""
    handler = load_handler(ROOT / "functions" / "enqueue")
    ctx = FakeContext(function_name="bench", timeout_s=3600)
    times: list[float] = []
    bar = progress(n, f"enqueue ({label})", "req")
    with quiet_stdout():
        while len(times) < n or (keep_going is not None and keep_going.is_set()):
            event = http_event("POST", "/mint", body={"payer": prefill.random_payers(1)[0]})
            t = time.perf_counter()
            result = handler(event, ctx)
            times.append(time.perf_counter() - t)
            if result["statusCode"] != 202:
                raise RuntimeError(f"POST /mint: HTTP {result['statusCode']}: {result.get('body')}")
            bar.update(1)
    bar.close()
    return times


def measure(url: str, *, old_rows: int, requests: int, rounds: int = 8) -> dict[str, Any]:
    """Enqueue latency with and without the cleanup, in ``rounds`` alternating windows.

    Each round first enqueues with no cleanup for as long as the previous cleanup window
    lasted (at least ``requests / rounds`` requests), then lets the cleanup delete its share
    of the old rows (``old_rows / rounds``, in the job's own chunks and pauses) while
    enqueueing on. Alternating, rather than one phase after the other, gives both sides the
    same share of whatever else the machine is doing, which on a shared 2-vCPU VM moves a
    p99 more than the cleanup does.
    """
    use_database(url)
    prefill.max_out_payer_cap(url)
    prefill_old_completed(url, old_rows)
    _enqueue(200, "warm-up")
    per_round = max(1, requests // rounds)
    chunks_per_round = max(1, -(-old_rows // (retention.CHUNK_ROWS * rounds)))
    quiet: list[float] = []
    during: list[float] = []
    deleted = 0
    cleanup_seconds = 0.0
    window = 0.0
    log(f"retention: deleting {old_rows:,} old rows in {rounds} windows, enqueueing throughout")
    with db.connect(url, application_name="mintq-bench-retention") as conn:
        for n in range(rounds):
            idle = threading.Event()
            idle.set()
            timer = threading.Timer(window, idle.clear)
            timer.start()
            quiet += _enqueue(per_round, f"round {n + 1}: no cleanup", keep_going=idle)
            timer.cancel()

            running = threading.Event()
            running.set()
            outcome: dict[str, float] = {}

            def cleanup(outcome: dict[str, float] = outcome, running: threading.Event = running) -> None:
                started = time.monotonic()
                outcome["deleted"] = retention.delete_expired(
                    conn, older_than_days=30, max_chunks=chunks_per_round
                )
                outcome["seconds"] = time.monotonic() - started
                running.clear()

            worker = threading.Thread(target=cleanup, name="cleanup")
            worker.start()
            during += _enqueue(per_round, f"round {n + 1}: during cleanup", keep_going=running)
            worker.join()
            deleted += int(outcome.get("deleted", 0))
            window = outcome.get("seconds", 0.0)
            cleanup_seconds += window
    without = latency_summary(sorted(quiet))
    loaded = latency_summary(sorted(during))
    return {
        "old_rows": old_rows,
        "rounds": rounds,
        "cleanup_deleted": deleted,
        "cleanup_seconds": round(cleanup_seconds, 2),
        "enqueue_without_cleanup": without | {"requests": len(quiet)},
        "enqueue_during_cleanup": loaded | {"requests": len(during)},
        "p99_ratio": round(loaded["p99_ms"] / without["p99_ms"], 3),
        "target_p99_ratio": 2.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-rows", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument(
        "--rounds", type=int, default=8, help="alternating windows without / with the cleanup"
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    run_standalone(
        "retention",
        lambda url: measure(url, old_rows=args.old_rows, requests=args.requests, rounds=args.rounds),
        args.out,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
