"""The local API (``make dev``'s stand-in for API Gateway) under concurrent clients, against its
baseline in the same run: one in-process loop calling the enqueue handler directly with the same
requests. The API runs the handler in a pool of execution environments (processes), as
``make dev`` does.

    .venv/bin/python bench/local_api.py [--requests 1500] [--environments 4]

Each client count runs kept-alive (one connection per client) and connection-per-request; a
reset or a refused connection counts as an error. The ratio is requests per second at 16
kept-alive clients over the in-process loop's.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import prefill
from bench.common import ROOT, log, quiet_stdout, run_standalone, use_database
from devstack.http import Route, serve
from devstack.lambdas import ExecutionEnvironments, FakeContext, load_handler
from tests.support.events import http_event

CLIENTS = (1, 16, 64)


def _bodies(n: int) -> list[bytes]:
    return [json.dumps({"payer": p}).encode() for p in prefill.random_payers(n)]


def in_process(n: int) -> dict[str, float]:
    """The baseline: the enqueue handler called in a loop in this process, no HTTP."""
    handler = load_handler(ROOT / "functions" / "enqueue")
    events = [http_event("POST", "/mint", body=json.loads(b)) for b in _bodies(n)]
    ctx = FakeContext(function_name="bench", timeout_s=3600)
    with quiet_stdout():
        for event in events[:20]:
            handler(event, ctx)
        started = time.perf_counter()
        for event in events:
            result = handler(event, ctx)
            if result["statusCode"] != 202:
                raise RuntimeError(f"POST /mint: HTTP {result['statusCode']}: {result.get('body')}")
        elapsed = time.perf_counter() - started
    return {"requests": n, "per_second": round(n / elapsed, 1)}


def _client(host: str, port: int, bodies: list[bytes], keep_alive: bool) -> tuple[int, int]:
    ok = errors = 0
    conn: http.client.HTTPConnection | None = None
    for body in bodies:
        try:
            if conn is None or not keep_alive:
                if conn is not None:
                    conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=60)
            conn.request("POST", "/mint", body=body, headers={"content-type": "application/json"})
            response = conn.getresponse()
            response.read()
            ok += response.status == 202
            errors += response.status != 202
        except OSError:
            errors += 1
            if conn is not None:
                conn.close()
            conn = None
    if conn is not None:
        conn.close()
    return ok, errors


def over_http(n: int, environments: int) -> dict[str, Any]:
    """Every client count, kept-alive and connection-per-request, ``n`` requests in all each."""
    pool = ExecutionEnvironments(ROOT / "functions" / "enqueue", environments, discard_stdout=True)
    server = serve([Route("POST", "/mint", pool, function_name="mintq-enqueue", timeout_s=10)], port=0)
    out: dict[str, Any] = {"environments": environments}
    try:
        _client(server.host, server.port, _bodies(4 * environments), keep_alive=False)  # warm every one
        for keep_alive in (True, False):
            for clients in CLIENTS:
                per = max(1, n // clients)
                work = [_bodies(per) for _ in range(clients)]
                started = time.perf_counter()
                with ThreadPoolExecutor(clients) as threads:
                    results = list(
                        threads.map(lambda b, k=keep_alive: _client(server.host, server.port, b, k), work)
                    )
                elapsed = time.perf_counter() - started
                done = sum(ok for ok, _ in results)
                key = f"{clients}_{'keepalive' if keep_alive else 'new_connection'}"
                out[key] = {
                    "clients": clients,
                    "requests": per * clients,
                    "answered_202": done,
                    "errors": sum(e for _, e in results),
                    "per_second": round(done / elapsed, 1),
                }
                log(f"local API {key}: {out[key]}")
    finally:
        server.shutdown()
        pool.close()
    return out


def measure(url: str, n: int, environments: int) -> dict[str, Any]:
    prefill.max_out_payer_cap(url)
    use_database(url)  # the environments inherit MINTQ_DATABASE_URL
    baseline = in_process(n)
    http_figures = over_http(n, environments)
    return {
        "in_process_handler": baseline,
        "http": http_figures,
        "keepalive_16_vs_in_process": round(
            http_figures["16_keepalive"]["per_second"] / baseline["per_second"], 3
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--environments", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    run_standalone("localapi", lambda url: measure(url, args.requests, args.environments))
    return 0


def table_rows(section: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """``make bench``'s table rows: the baseline, every client count's rate and errors, the ratio."""
    base = section["in_process_handler"]["per_second"]
    rows = [("local API", "in-process enqueue handler loop req/s (baseline)", f"{base:,.0f}", "", "")]
    figures = section["http"]
    for key, m in figures.items():
        if not isinstance(m, dict):
            continue
        rows.append(
            (
                "local API",
                f"{m['clients']} client(s), {key.split('_', 1)[1].replace('_', ' ')}: req/s, errors",
                f"{m['per_second']:,.0f}, {m['errors']} errors",
                "0 errors",
                "pass" if m["errors"] == 0 and m["answered_202"] == m["requests"] else "MISS",
            )
        )
    ratio = section["keepalive_16_vs_in_process"]
    rows.append(
        (
            "local API",
            f"16 kept-alive clients / in-process loop ({figures['environments']} environments)",
            f"{ratio:.2f}x",
            ">= 1.5x",
            "pass" if ratio >= 1.5 else "MISS",
        )
    )
    return rows


if __name__ == "__main__":
    sys.exit(main())
