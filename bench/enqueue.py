"""Enqueue benchmark: the real POST /mint handler in process against real PostgreSQL,
next to a raw single-connection INSERT loop on the same table, in the same run.

    .venv/bin/python bench/enqueue.py [--requests 3000] [--prefill 0]

Prints JSON; with --out writes it to a file too.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "layers" / "common" / "python"), str(ROOT)]
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "mintq")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "MintqBench")
os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"

from eth_account import Account  # noqa: E402

from devstack import postgres  # noqa: E402
from devstack.lambdas import FakeContext, load_handler  # noqa: E402
from mintq import config, db, migrations  # noqa: E402
from tests.support.events import http_event  # noqa: E402


def prefill(url: str, rows: int) -> None:
    if rows <= 0:
        return
    with db.connect(url) as conn:
        conn.execute(
            "INSERT INTO mint_queue (payer_address, payment_type)"
            " SELECT '0x' || lpad(to_hex(g), 40, '0'), 'free' FROM generate_series(1, %(n)s) g",
            {"n": rows},
        )
        conn.execute("VACUUM ANALYZE mint_queue")


def measure_handler(url: str, n: int) -> dict[str, float]:
    os.environ["MINTQ_DATABASE_URL"] = url
    config.reset()
    db.close_shared_connection()
    handler = load_handler(ROOT / "functions" / "enqueue")
    payers = [Account.create().address for _ in range(n)]
    events = [http_event("POST", "/mint", body={"payer": p}) for p in payers]
    ctx = FakeContext(function_name="bench")
    handler(http_event("POST", "/mint", body={"payer": Account.create().address}), ctx)  # warm
    latencies = []
    started = time.perf_counter()
    for event in events:
        t = time.perf_counter()
        result = handler(event, ctx)
        latencies.append(time.perf_counter() - t)
        assert result["statusCode"] == 202, result
    total = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": n,
        "per_second": round(n / total, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 3),
        "p99_ms": round(latencies[int(n * 0.99) - 1] * 1000, 3),
    }


def measure_raw_insert(url: str, n: int) -> dict[str, float]:
    with db.connect(url) as conn:
        payers = [Account.create().address for _ in range(n)]
        started = time.perf_counter()
        for payer in payers:
            conn.execute(
                "INSERT INTO mint_queue (payer_address, payment_type) VALUES (%(p)s, 'free')", {"p": payer}
            )
        total = time.perf_counter() - started
    return {"requests": n, "per_second": round(n / total, 1)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--prefill", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    server = postgres.resolve_server(ROOT / ".local")
    name = "mintq_bench_enqueue"
    postgres.drop_database(server.admin_url, name)
    url = postgres.ensure_database(server.admin_url, name)
    try:
        migrations.apply(url)
        prefill(url, args.prefill)
        handler = measure_handler(url, args.requests)
        raw = measure_raw_insert(url, args.requests)
    finally:
        db.close_shared_connection()
        postgres.drop_database(server.admin_url, name)
        server.stop()
    result = {
        "command": "python bench/enqueue.py " + " ".join(sys.argv[1:]),
        "pending_rows_before": args.prefill,
        "handler": handler,
        "raw_insert": raw,
        "handler_vs_raw": round(handler["per_second"] / raw["per_second"], 3),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
