"""The database's own cost of an enqueue, free of the machine's noise: CPU instructions per
statement in the server, counted by valgrind's callgrind over ``postgres --single``.

    .venv/bin/python bench/instructions.py [--calls 1000] [--warmup 200]

A throwaway cluster (initdb in a temporary directory) gets every migration and issue 14's plain
table, and is stopped; then each statement below runs ``warmup`` times and ``warmup + calls``
times in two single-user backends under callgrind, each on a fresh copy of the cluster, and the
difference over ``calls`` is its cost per call (start-up, warm-up and shut-down cancel out).
``prepared`` runs a statement through PREPARE/EXECUTE (planned once); ``as sent`` sends its text
each time, parsed and planned on every call, as the API does (``prepare_threshold=None``: RDS
Proxy pins sessions that prepare). Each call queues a new payer (``'0x' || lpad(to_hex(nextval(...)))``,
the same expression in every statement). Needs valgrind and PostgreSQL's server binaries
(Debian's postgresql-15); prints JSON: instructions per call by statement.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import PLAIN_INSERT, PLAIN_TABLE, postgres_binary
from bench.enqueue_handler import MINT_QUEUE_INSERT
from mintq import db, migrations

#: A new payer per call, the same in every statement.
PAYER = "'0x' || lpad(to_hex(nextval('bench_payers')), 40, '0')"
_VALUES = {"payer": PAYER, "payment_type": "'free'", "default_max_pending": "10"}


def literal(statement: str) -> str:
    """``statement`` (psycopg's ``%(name)s`` placeholders) on one line, without its comments (in
    single-user mode a newline ends a statement), with a new payer, in free mode."""
    text = " ".join(line for line in statement.splitlines() if not line.lstrip().startswith("--"))
    return re.sub(r"%\((\w+)\)s", lambda m: _VALUES[m[1]], text).rstrip("; ")


#: The statements measured: issue 14's baseline, a bare INSERT into the queue, and the enqueue
#: as the API sends it (the named query).
STATEMENTS = {
    "plain INSERT": literal(PLAIN_INSERT),
    "INSERT into mint_queue": literal(MINT_QUEUE_INSERT),
    "enqueue": literal(db.query("enqueue_request")),
}


def as_server_user(args: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run as the postgres user then."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def build_cluster(work: Path) -> Path:
    """A stopped cluster in ``work`` with database ``bench``: the migrations, the plain table, a
    payer sequence and the per-payer cap out of the way."""
    data, sockets = work / "data", work / "sockets"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(work, "postgres")
        shutil.chown(sockets, "postgres")
    run = subprocess.run
    run(
        as_server_user([postgres_binary("initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]),
        check=True,
        capture_output=True,
    )
    ctl = [postgres_binary("pg_ctl"), "-D", str(data), "-w"]
    options = f"-c listen_addresses='' -k {sockets} -p 5499"
    # -l: the server must not inherit our pipes, or run() would wait for them to close.
    log = work / "server.log"
    run(as_server_user([*ctl, "-l", str(log), "-o", options, "start"]), check=True, capture_output=True)
    try:
        admin = f"host={sockets} port=5499 user=postgres dbname=postgres"
        with db.connect(admin) as conn:
            conn.execute("CREATE DATABASE bench")
        url = f"host={sockets} port=5499 user=postgres dbname=bench"
        migrations.apply(url)
        with db.connect(url) as conn:
            for statement in PLAIN_TABLE.split(";"):
                conn.execute(statement)  # type: ignore[call-overload]
            conn.execute("CREATE SEQUENCE bench_payers")
            conn.execute(
                "INSERT INTO system_settings (key, value) VALUES ('max_pending_per_payer', '1000000000')"
                " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
            )
    finally:
        run(as_server_user([*ctl, "stop"]), check=True, capture_output=True)
    return data


def instructions(data: Path, script: str, work: Path) -> int:
    """Instructions callgrind counts for one single-user backend running ``script``."""
    copy = work / "run"
    shutil.copytree(data, copy, symlinks=True)
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", "postgres", str(copy)], check=True)
    try:
        result = subprocess.run(
            as_server_user(
                [
                    "valgrind",
                    "--tool=callgrind",
                    "--callgrind-out-file=/dev/null",
                    postgres_binary("postgres"),
                    "--single",
                    "-D",
                    str(copy),
                    "-c",
                    "jit=off",
                    "bench",
                ]
            ),
            input=script,
            text=True,
            capture_output=True,
            check=True,
        )
    finally:
        shutil.rmtree(copy)
    if "ERROR:" in result.stderr:
        first = result.stderr.index("ERROR:")
        raise RuntimeError(result.stderr[first : first + 1000])
    collected = re.search(r"Collected : (\d+)", result.stderr)
    if collected is None:
        raise RuntimeError(f"callgrind printed no total:\n{result.stderr[-2000:]}")
    return int(collected[1])


def per_call(data: Path, work: Path, statement: str, *, prepared: bool, calls: int, warmup: int) -> int:
    # In single-user mode a newline ends a statement: each is one line.
    head = f"PREPARE measured AS {statement}\n" if prepared else ""
    line = "EXECUTE measured\n" if prepared else statement + "\n"
    short = instructions(data, head + line * warmup, work)
    long = instructions(data, head + line * (warmup + calls), work)
    return round((long - short) / calls)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=200)
    args = parser.parse_args()
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind not found: apt-get install valgrind")
    with tempfile.TemporaryDirectory(prefix="mintq-instructions-") as tmp:
        work = Path(tmp)
        data = build_cluster(work)
        figures = {
            name: {
                mode: per_call(
                    data, work, statement, prepared=mode == "prepared", calls=args.calls, warmup=args.warmup
                )
                for mode in ("prepared", "as sent")
            }
            for name, statement in STATEMENTS.items()
        }
    print(
        json.dumps(
            {"command": " ".join(sys.orig_argv), "instructions_per_call": figures, "statements": STATEMENTS},
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
