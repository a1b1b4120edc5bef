"""``make bench``: drain, enqueue, status and cold-start figures of mintq, measured in one run on
this machine against real PostgreSQL and a real anvil (30M gas blocks every second).

    .venv/bin/python bench/run.py                      # everything, default sizes (15-25 min)
    .venv/bin/python bench/run.py --quick              # small sizes, a couple of minutes
    .venv/bin/python bench/run.py --only drain --drain-requests 5000 --signers 2

Writes bench/results/<UTC timestamp>.json and bench/results/latest.json (and the drain chart
bench/results/drain-<timestamp>.png), prints a table with each figure next to its target.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import coldstart, drain, enqueue_handler, local_api, pgbench, prefill, retention, status_handler
from bench.common import ROOT, Databases, log, machine, ratio
from bench.options import parse_args
from bench.table import render, table_rows
from devstack import anvil


def _anvil_version() -> str:
    try:
        out = subprocess.run(
            [str(anvil.find_anvil_binary()), "--version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, anvil.AnvilError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else "unknown"


# --- sections -------------------------------------------------------------------------


def run_drain(args: argparse.Namespace, dbs: Databases, stamp: str, *, base: bool = False) -> dict[str, Any]:
    chain = (
        {"block_gas_limit": 150_000_000, "block_time_s": 2, "label": "Base-sized: 150M gas, 2-s blocks"}
        if base
        else {}
    )
    opts = drain.DrainOptions(
        **chain,  # type: ignore[arg-type]
        requests=args.base_requests if base else args.drain_requests,
        signers=args.base_signers if base else args.signers,
        timeout_s=args.drain_timeout,
        max_batch_size=args.max_batch_size,
        batch_gas_target=args.batch_gas_target,
        max_inflight_batches=args.max_inflight,
        poll_seconds=args.poll_seconds,
        chart_path=args.out_dir / f"drain{'-base' if base else ''}-{stamp}.png",
    )
    result = drain.run(dbs, opts)
    if result.get("chart"):
        result["chart"] = os.path.relpath(result["chart"], ROOT)
    return result


def run_api(args: argparse.Namespace, dbs: Databases, sections: list[str]) -> dict[str, Any]:
    """Enqueue at an empty queue, prefill, enqueue at depth, then status (one database)."""
    return dbs.run("api", lambda url: _measure_api(args, url, sections))


def _measure_api(args: argparse.Namespace, url: str, sections: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    prefill.max_out_payer_cap(url)
    n = args.enqueue_requests
    if "enqueue" in sections:
        empty = enqueue_handler.enqueue_ratios(enqueue_handler.measure_enqueue(url, n, "empty queue"))
    prefill.prefill_pending(url, args.pending_rows)
    payer = prefill.add_status_payer(url)
    if "enqueue" in sections:
        counts = prefill.queue_counts(url)
        deep: dict[str, Any] = {"pending_before": counts["pending"]}
        deep.update(
            enqueue_handler.enqueue_ratios(
                enqueue_handler.measure_enqueue(url, n, f"{counts['pending']:,} pending")
            )
        )
        out["enqueue"] = {
            "requests": n,
            "empty": empty,
            "deep": deep,
            "deep_vs_empty_handler": ratio(deep["handler"]["per_second"], empty["handler"]["per_second"]),
            "deep_vs_empty_plain": ratio(
                deep["plain_insert"]["per_second"], empty["plain_insert"]["per_second"]
            ),
        }
    if "status" in sections:
        prefill.prefill_history(url, args.history_rows)
        counts = prefill.queue_counts(url)
        out["status"] = {
            "pending_rows": counts["pending"],
            "history_rows": args.history_rows + prefill.STATUS_PAYER_COMPLETED,
            "payer_rows": prefill.STATUS_PAYER_PENDING + prefill.STATUS_PAYER_COMPLETED,
            "endpoints": status_handler.measure_status(url, args.status_requests, payer),
        }
    return out


def run_coldstart(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"imports": coldstart.import_times(args.import_runs)}
    if not args.skip_sam:
        try:
            out["packages"] = coldstart.package_sizes()
        except Exception as exc:
            out["packages_error"] = f"{type(exc).__name__}: {exc}"
            log(f"sam build failed: {exc}")
    return out


# --- main -----------------------------------------------------------------------------


def _section(result: dict[str, Any], name: str, fn: Callable[[], dict[str, Any]]) -> None:
    started = time.monotonic()
    try:
        result["sections"][name] = fn()
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        log(traceback.format_exc())
        result["sections"][name] = {"error": f"{type(exc).__name__}: {exc}"}
    result["sections"][name]["seconds"] = round(time.monotonic() - started, 1)


def main(argv: list[str]) -> int:
    args = parse_args(argv, __doc__.split("\n\n")[0])
    args.out_dir.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    command = shlex.join(sys.orig_argv)
    if os.environ.get("MAKELEVEL"):
        command = f"make bench  # ran: {command}"
    dbs = Databases()
    result: dict[str, Any] = {
        "started_utc": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "command": command,
        "machine": machine(dbs.server_version(), _anvil_version()),
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "sections": {},
    }
    log(f"mintq bench {stamp}: sections {', '.join(args.sections)}")
    try:
        if "drain" in args.sections:
            _section(result, "drain", lambda: run_drain(args, dbs, stamp))
        if "drain_base" in args.sections:
            _section(result, "drain_base", lambda: run_drain(args, dbs, stamp, base=True))
        api_sections = [s for s in ("enqueue", "status") if s in args.sections]
        if api_sections:
            shared: dict[str, Any] = {}

            def api_run() -> dict[str, Any]:
                shared.update(run_api(args, dbs, api_sections))
                return {}

            _section(result, "api", api_run)
            api_meta = result["sections"].pop("api")
            for name in api_sections:
                result["sections"][name] = shared.get(name) or {
                    "error": api_meta.get("error", "not measured")
                }
                result["sections"][name]["seconds_enqueue_and_status"] = api_meta["seconds"]
        if "pgbench" in args.sections:
            _section(
                result,
                "pgbench",
                lambda: dbs.run("pgbench", lambda url: pgbench.measure(url, seconds=args.pgbench_seconds)),
            )
        if "local_api" in args.sections:
            _section(
                result,
                "local_api",
                lambda: dbs.run(
                    "localapi", lambda url: local_api.measure(url, args.local_api_requests, args.environments)
                ),
            )
        if "retention" in args.sections:
            _section(
                result,
                "retention",
                lambda: dbs.run(
                    "retention",
                    lambda url: retention.measure(
                        url, old_rows=args.retention_rows, requests=args.enqueue_requests
                    ),
                ),
            )
        if "coldstart" in args.sections:
            _section(result, "coldstart", lambda: run_coldstart(args))
    finally:
        dbs.close()
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["finished_utc"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    rows = table_rows(result)
    result["table"] = [
        dict(zip(("section", "figure", "value", "target", "verdict"), r, strict=True)) for r in rows
    ]
    text = json.dumps(result, indent=2, default=str) + "\n"
    path = args.out_dir / f"{stamp}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    (args.out_dir / "latest.json").write_text(text)
    m = result["machine"]
    print(
        f"\nmintq bench {result['started_utc']} on {m['nproc']} CPU ({m['cpu_model']}), {m['memory_gib']} GiB,"
        f" PostgreSQL {m['postgresql']}, {m['anvil']}, Python {m['python']};"
        f" load average {m['load_average_at_start'][0]} at start, {m['load_average_at_end'][0]} at end"
    )
    print(f"command: {command}\n")
    print(render(rows))
    print(f"\nwrote {os.path.relpath(path, ROOT)} (and latest.json)")
    chart = result["sections"].get("drain", {}).get("chart")
    if chart:
        print(f"chart {chart}")
    return 1 if any("error" in s for s in result["sections"].values()) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
