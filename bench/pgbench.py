"""Enqueue inside the database: pgbench runs the API's own statement (the named query
``enqueue_request``, ``SELECT ... FROM mintq_enqueue(...)``) against the plain ``INSERT ... RETURNING``
of ``bench.common.PLAIN_INSERT`` into a table of the same basic shape (uuid key, bigserial, payer,
status, created_at, one partial index), at 1 and 8 clients, in alternating rounds on one database.

    .venv/bin/python bench/pgbench.py [--seconds 8] [--rounds 3] [--clients 1 8]

The ratio per client count is the median of the rounds' enqueue tps over the median of the plain
INSERT's; a ratio of 1.0 means enqueue costs the database what the plain INSERT does.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import PLAIN_INSERT, create_plain_table, log, postgres_binary, run_standalone, set_settings
from mintq import db
from mintq.settings import QueueSettings

#: The statements pgbench sends, as the API and the in-process loop send them.
STATEMENTS = {"plain_insert": PLAIN_INSERT, "enqueue": db.query("enqueue_request")}
#: What each bound parameter becomes: SQL text that pgbench (``-M simple``) puts where its
#: ``:variable`` stands, parenthesised so that it binds as one value. pgbench's own variables hold numbers only, so the payer is drawn by the
#: server, over a space far larger than the run as in the handler benchmark; the rest are what the
#: API binds for a free request.
VARIABLES = {
    "payer": "('0x' || lpad((1 + floor(random() * 1000000000))::bigint::text, 40, '0'))",
    "payment_type": "'free'",
    "default_max_pending": str(QueueSettings.max_pending_per_payer),
}
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
_TPS = re.compile(r"^tps = ([0-9.]+)", re.MULTILINE)


def pgbench_script(statement: str) -> str:
    """``statement`` (psycopg's ``%(name)s`` placeholders) as a pgbench script: each placeholder
    becomes the variable ``:name``, ``%%`` a ``%``. Raises ``ValueError`` for a placeholder of
    another kind or one that ``VARIABLES`` does not define."""
    names = set(_PLACEHOLDER.findall(statement))
    script = _PLACEHOLDER.sub(r":\1", statement)
    if "%" in script.replace("%%", ""):
        raise ValueError(f"a placeholder other than %(name)s in: {statement}")
    if names - VARIABLES.keys():
        raise ValueError(f"no pgbench value for {sorted(names - VARIABLES.keys())} in: {statement}")
    return script.replace("%%", "%").rstrip().removesuffix(";") + ";\n"


def _tps(binary: str, url: str, script: Path, clients: int, seconds: int) -> float:
    defines = [f"--define={name}={value}" for name, value in VARIABLES.items()]
    threads = ["-c", str(clients), "-j", str(clients)]
    out = subprocess.run(
        [binary, "-n", "-M", "simple", *defines, *threads, "-T", str(seconds), "-f", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = _TPS.search(out)
    if found is None:
        raise RuntimeError(f"pgbench printed no tps:\n{out}")
    return float(found.group(1))


def measure(
    url: str, *, clients: tuple[int, ...] = (1, 8), seconds: int = 8, rounds: int = 3
) -> dict[str, Any]:
    """Median tps of each script per client count and enqueue's ratio to the plain INSERT.
    Rounds alternate which script runs first, so drift falls on both alike."""
    binary = postgres_binary("pgbench")
    set_settings(url, {"max_pending_per_payer": 1_000_000_000})
    create_plain_table(url)
    out: dict[str, Any] = {"pgbench": binary, "seconds_per_run": seconds, "rounds": rounds}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for name, statement in STATEMENTS.items():
            paths[name] = Path(tmp) / f"{name}.sql"
            paths[name].write_text(pgbench_script(statement))
        for n in clients:
            runs: dict[str, list[float]] = {name: [] for name in STATEMENTS}
            for r in range(rounds):
                order = list(STATEMENTS) if r % 2 == 0 else list(reversed(STATEMENTS))
                for name in order:
                    runs[name].append(_tps(binary, url, paths[name], n, seconds))
            medians = {name: statistics.median(values) for name, values in runs.items()}
            out[f"clients_{n}"] = {
                "tps_runs": runs,
                "plain_insert_tps": round(medians["plain_insert"], 1),
                "enqueue_tps": round(medians["enqueue"], 1),
                "enqueue_vs_plain": round(medians["enqueue"] / medians["plain_insert"], 3),
            }
            log(f"pgbench {n} client(s): {out[f'clients_{n}']}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()
    run_standalone(
        "pgbench",
        lambda url: measure(url, clients=tuple(args.clients), seconds=args.seconds, rounds=args.rounds),
    )
    return 0


def table_rows(section: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """``make bench``'s table rows: each client count's tps and enqueue's ratio to the plain INSERT."""
    rows = []
    for key, m in section.items():
        if not key.startswith("clients_"):
            continue
        n = key.removeprefix("clients_")
        rows.append(
            (
                "pgbench",
                f"plain INSERT / enqueue tps, {n} client(s) (medians)",
                f"{m['plain_insert_tps']:,.0f} / {m['enqueue_tps']:,.0f}",
                "",
                "",
            )
        )
        ratio = m["enqueue_vs_plain"]
        rows.append(
            (
                "pgbench",
                f"enqueue / plain INSERT, {n} client(s)",
                f"{ratio:.1%}",
                ">= 60%",
                _verdict(ratio >= 0.6),
            )
        )
    return rows


def _verdict(ok: bool) -> str:
    return "pass" if ok else "MISS"


if __name__ == "__main__":
    sys.exit(main())
