"""Soak: many mints through a running local stack while its workers are killed at random.

    # terminal 1: the stack without its built-in worker (the soak brings its own)
    make dev   # or: .venv/bin/python -m devstack --no-worker [--port P --rpc-port R]
    # terminal 2:
    .venv/bin/python scripts/soak.py [--count 20000] [--concurrency 8] [--workers 2] \
        [--batch-interval 1 --max-batch-size 100]

Not part of CI. Reads ``.local/stack.json`` (or ``--stack``), POSTs ``--count`` requests to
``/mint`` for fresh random recipients (about one in ten gets a second request) from a small
thread pool, while a chaos loop keeps ``--workers`` processes of ``python -m devstack.worker``
alive and SIGKILLs one of them every 2-8 s (by default three times in four the one holding
the signer's lock, found through pg_locks, so kills land mid-batch), starting a replacement. When
every request is in, it keeps the chaos going until the queue has drained (nothing pending,
processing or in flight), then checks every recipient's on-chain balance against the
database and prints one JSON report:

    submitted, accepted, rejected (by HTTP status), completed, failed,
    doubles   recipients whose balance exceeds amountPerMint x their completed requests,
              plus mint_history rows beyond one per request,
    unminted  recipients whose balance is below it (completed but not minted),
    lost      accepted requests neither completed nor failed,
    elapsed, kills, ...

It exits 1 if anything was lost, doubled or unminted. Only 127.0.0.1 is ever contacted, and
everything is bounded: ``--count``, ``--max-seconds`` overall. ``--batch-interval`` and
``--max-batch-size`` (and ``--max-inflight``) change ``system_settings`` for the run and put the
old values back.

This file is the procedure; its parts sit beside it: ``soak_stack`` (``stack.json`` and the local
endpoints), ``soak_workload`` (the requests and the wait for the drain), ``soak_chaos`` (the
killer) and ``soak_audit`` (the final verdict).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from soak_audit import audit
from soak_chaos import Chaos
from soak_stack import STACK_FILE, Stack, http, view
from soak_workload import Submitter, recipients, wait_until_drained


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/soak.py", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000, help="requests to submit")
    parser.add_argument("--concurrency", type=int, default=8, help="submitting threads (bounded pool)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes kept alive")
    parser.add_argument("--kill-min", type=float, default=2.0)
    parser.add_argument("--kill-max", type=float, default=8.0)
    parser.add_argument(
        "--holder-share", type=float, default=0.75, help="share of kills aimed at the lock holder"
    )
    parser.add_argument("--repeat-share", type=float, default=0.1, help="share of recipients asked twice")
    parser.add_argument("--max-seconds", type=float, default=4 * 3600, help="give up after this long")
    parser.add_argument("--batch-interval", type=float, default=None, help="set batch_interval_seconds")
    parser.add_argument("--max-batch-size", type=int, default=None, help="set max_batch_size")
    parser.add_argument(
        "--max-inflight",
        type=int,
        default=None,
        help="set max_inflight_batches (above 1: the pipelined worker, several batches in flight per kill)",
    )
    parser.add_argument("--stack", type=Path, default=STACK_FILE)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    if args.count < 1 or args.concurrency < 1 or args.workers < 1 or args.kill_min > args.kill_max:
        parser.error("count, concurrency and workers must be positive and kill-min <= kill-max")
    return args


def override_settings(db: psycopg.Connection[Any], overrides: dict[str, object]) -> dict[str, str]:
    """Set ``overrides`` in system_settings; returns every setting as it was, for ``restore_settings``."""
    previous = {r["key"]: r["value"] for r in db.execute("SELECT key, value FROM system_settings").fetchall()}
    for key, value in overrides.items():
        db.execute(
            "INSERT INTO system_settings (key, value) VALUES (%s, %s)"
            " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            (key, str(value)),
        )
    return previous


def restore_settings(db: psycopg.Connection[Any], keys: list[str], previous: dict[str, str]) -> None:
    """Put back each of ``keys`` as ``previous`` had it, or delete it if it had none."""
    for key in keys:
        if key in previous:
            db.execute("UPDATE system_settings SET value = %s WHERE key = %s", (previous[key], key))
        else:
            db.execute("DELETE FROM system_settings WHERE key = %s", (key,))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    random.seed(args.seed)

    stack = Stack.load(args.stack)
    status, _ = http("GET", f"{stack.api}/queue/status", timeout=5)
    if status != 200:
        raise SystemExit(f"the API at {stack.api} does not answer /queue/status ({status}); start the stack")
    amount = view(stack.rpc_url, stack.token, "amountPerMint()")
    supply_before = view(stack.rpc_url, stack.token, "totalSupply()")
    payers = recipients(args.count, args.repeat_share)

    db = psycopg.connect(stack.database_url, autocommit=True, row_factory=dict_row)
    overrides = {
        k: v
        for k, v in (
            ("batch_interval_seconds", args.batch_interval),
            ("max_batch_size", args.max_batch_size),
            ("max_inflight_batches", args.max_inflight),
        )
        if v is not None
    }
    previous_settings = override_settings(db, overrides)
    batches_before = db.execute("SELECT now() AS t").fetchone()["t"]

    log_dir = Path(tempfile.mkdtemp(prefix="mintq-soak-"))
    chaos = Chaos(
        args.workers,
        args.stack.resolve(),
        log_dir,
        args.kill_min,
        args.kill_max,
        database_url=stack.database_url,
        holder_share=args.holder_share,
    )
    started = time.monotonic()
    hard_deadline = started + args.max_seconds
    submitter = Submitter(stack.api, hard_deadline)

    chaos.start()
    report: dict[str, Any] = {}
    try:
        submitter.run(payers, args.concurrency)
        submitted_at = time.monotonic()
        # Drain, chaos still on: nothing of ours pending or processing, nothing in flight.
        wait_until_drained(db, list(submitter.accepted), hard_deadline)
        drained_at = time.monotonic()
        chaos.stop()
        chaos.terminate_all()

        # The verdict, from the database and the chain.
        verdict = audit(
            db,
            stack,
            submitter.accepted,
            amount=amount,
            supply_before=supply_before,
            batches_since=batches_before,
        )
        report = {
            "submitted": len(payers),
            "accepted": len(submitter.accepted),
            "rejected": dict(submitter.rejected),
            **verdict,
            "kills": chaos.kills,
            "lock_holder_kills": chaos.holder_kills,
            "workers_started": chaos.started,
            "worker_exits_not_ours": chaos.crashed,
            "submit_seconds": round(submitted_at - started, 1),
            "drain_seconds": round(drained_at - submitted_at, 1),
            "elapsed": round(time.monotonic() - started, 1),
            "timed_out": drained_at >= hard_deadline,
            "worker_logs": str(log_dir),
        }
    finally:
        with contextlib.suppress(Exception):
            chaos.stop()
        chaos.terminate_all()
        restore_settings(db, list(overrides), previous_settings)
        db.close()
    print(json.dumps(report, indent=2))
    bad = report["lost"] or report["doubles"] or report["unminted"] or report["completed_and_failed"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
