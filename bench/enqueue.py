"""Enqueue benchmark on its own: the real POST /mint handler in process against real PostgreSQL,
next to single-connection INSERT loops (issue 14's plain table, and mint_queue itself), in the
same run.

    .venv/bin/python bench/enqueue.py [--requests 3000] [--prefill 0] [--out FILE]

Prints JSON; with --out writes it to a file too. ``bench/run.py --only enqueue`` measures the
same thing at an empty queue and at 1,000,000 pending rows, with the other sections' format.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import enqueue_handler, prefill
from bench.common import run_standalone


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--prefill", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    def measure(url: str) -> dict[str, Any]:
        prefill.max_out_payer_cap(url)
        prefill.prefill_pending(url, args.prefill)
        measured = enqueue_handler.measure_enqueue(url, args.requests, f"{args.prefill} pending")
        return {"pending_rows_before": args.prefill, **enqueue_handler.enqueue_ratios(measured)}

    run_standalone("enqueue", measure, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
