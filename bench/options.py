"""``make bench``'s command line: its sections, the sizes of a full and of a quick run, and the
settings each section runs with."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.common import ROOT

SECTIONS = ("drain", "drain_base", "enqueue", "pgbench", "local_api", "status", "retention", "coldstart")
RESULTS = ROOT / "bench" / "results"

QUICK = {
    "drain_requests": 3000,
    "base_requests": 8000,
    "pending_rows": 100_000,
    "history_rows": 500_000,
    "enqueue_requests": 1000,
    "status_requests": 500,
    "import_runs": 3,
    "pgbench_seconds": 3,
    "local_api_requests": 400,
    "retention_rows": 200_000,
}


def parse_args(argv: list[str], description: str) -> argparse.Namespace:
    """``make bench``'s options; ``--quick`` fills every size not given with ``QUICK``'s, and
    ``sections`` is what ``--only`` / ``--skip`` leave of ``SECTIONS``, in their order."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--only", action="append", choices=SECTIONS, help="run only this section (repeatable)")
    p.add_argument(
        "--skip", action="append", choices=SECTIONS, default=[], help="skip this section (repeatable)"
    )
    p.add_argument("--quick", action="store_true", help=f"small sizes for a smoke run: {QUICK}")
    g = p.add_argument_group("drain")
    g.add_argument("--drain-requests", type=int, default=20_000, help="requests to drain (default 20000)")
    g.add_argument(
        "--signers", type=int, default=1, help="batch workers on the 30M chain, one dev key each (default 1)"
    )
    g.add_argument(
        "--drain-timeout", type=float, default=900, help="seconds before partial figures (default 900)"
    )
    g.add_argument(
        "--max-batch-size", type=int, default=1000, help="system setting max_batch_size (default 1000)"
    )
    g.add_argument(
        "--batch-gas-target",
        type=int,
        default=15_000_000,
        help="system setting batch_gas_target (default 15000000: a 30M block splits into two batches)",
    )
    g.add_argument(
        "--max-inflight",
        type=int,
        default=32,
        help="system setting max_inflight_batches, an upper bound on the window the worker derives"
        " from the block gas limit (default 32)",
    )
    g.add_argument(
        "--base-requests",
        type=int,
        default=60_000,
        help="requests to drain on the Base-sized chain (150M gas, 2-s blocks; default 60000, ten blocks)",
    )
    g.add_argument(
        "--base-signers",
        type=int,
        default=3,
        help="batch workers on the Base-sized chain, a signer pool as a deployment for it would run"
        " (default 3)",
    )
    g.add_argument(
        "--poll-seconds",
        type=float,
        default=0.25,
        help="worker receipt poll interval (default 0.25, Lambda's)",
    )
    g = p.add_argument_group("enqueue and status")
    g.add_argument(
        "--enqueue-requests", type=int, default=3000, help="requests per measurement (default 3000)"
    )
    g.add_argument("--pending-rows", type=int, default=1_000_000, help="pending prefill (default 1000000)")
    g.add_argument(
        "--history-rows", type=int, default=5_000_000, help="mint_history prefill (default 5000000)"
    )
    g.add_argument(
        "--status-requests", type=int, default=2000, help="requests per status endpoint (default 2000)"
    )
    g = p.add_argument_group("pgbench and local API")
    g.add_argument(
        "--pgbench-seconds", type=int, default=8, help="seconds per pgbench run, 3 rounds each (default 8)"
    )
    g.add_argument(
        "--local-api-requests", type=int, default=1500, help="requests per local API figure (default 1500)"
    )
    g.add_argument(
        "--environments", type=int, default=4, help="execution environments behind the local API (default 4)"
    )
    g = p.add_argument_group("retention")
    g.add_argument(
        "--retention-rows", type=int, default=1_000_000, help="old rows the cleanup deletes (default 1000000)"
    )
    g = p.add_argument_group("cold start")
    g.add_argument("--import-runs", type=int, default=7, help="fresh interpreters per function (default 7)")
    g.add_argument("--skip-sam", action="store_true", help="no sam build, so no package sizes")
    p.add_argument("--out-dir", type=Path, default=RESULTS, help="where results go (default bench/results)")
    args = p.parse_args(argv)
    if args.quick:
        given = {a.split("=")[0] for a in argv if a.startswith("--")}
        for key, value in QUICK.items():
            if "--" + key.replace("_", "-") not in given:
                setattr(args, key, value)
    args.sections = [s for s in (args.only or SECTIONS) if s not in args.skip]
    return args
