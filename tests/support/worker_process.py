"""A batch worker in its own OS process, so tests can really ``kill -9`` it.

    python -m tests.support.worker_process --database-url URL --rpc-url URL --token ADDR --key 0x.. \
        [--crash-at POINT [--crash-on N]] [--stall-at POINT] [--seconds N] [--interval S] \
        [--run-seconds R] [--exit-when-idle]

It invokes ``Worker.run`` over and over until ``--seconds`` have passed, like a scheduler
would: a run that finds the signer's lock busy returns at once, and the next one starts
``--interval`` seconds later (``--run-seconds`` caps one run, like an invocation's
timeout; ``--exit-when-idle`` stops once a run leaves no work behind). ``--crash-at POINT`` SIGKILLs this very process the first (or
``--crash-on``-th) time the worker reaches that point of ``CRASH_POINTS`` (no cleanup, no rollback, no
goodbye to PostgreSQL); ``--stall-at POINT`` sleeps there instead, holding whatever the
worker holds, so a test can kill it from outside at a known instant. On a normal exit it
prints one JSON line: the summed ``RunSummary`` plus ``runs`` and ``locked_runs``.

Its PostgreSQL session is named ``mintq-fault-worker:<pid>`` (``application_name``), so a
test can map the holder of the advisory lock in ``pg_locks`` back to the OS process.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
APPLICATION_PREFIX = "mintq-fault-worker:"
_spawned = itertools.count(1)


def application_name(pid: int) -> str:
    return f"{APPLICATION_PREFIX}{pid}"


def _hook(crash_at: str | None, crash_on: int, stall_at: str | None, stall_seconds: float) -> Any:
    reached: dict[str, int] = {}

    def fault(point: str) -> None:
        reached[point] = reached.get(point, 0) + 1
        if point == crash_at and reached[point] >= crash_on:
            print(json.dumps({"crashing_at": point}), flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        if point == stall_at:
            print(json.dumps({"stalled_at": point}), flush=True)
            time.sleep(stall_seconds)

    return fault


def _idle(conn: Any) -> bool:
    row = conn.execute(
        "SELECT NOT EXISTS (SELECT 1 FROM mint_queue WHERE status IN ('pending', 'processing'))"
        " AND NOT EXISTS (SELECT 1 FROM batch_mints WHERE status IN ('signed', 'pending')) AS idle"
    ).fetchone()
    return bool(row and row["idle"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.worker_process")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--rpc-url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--key", required=True, help="the signer's private key (0x hex)")
    parser.add_argument("--chain-id", type=int, default=None)
    parser.add_argument("--crash-at", default=None, help="SIGKILL this process at this fault point")
    parser.add_argument(
        "--crash-on", type=int, default=1, help="crash the Nth time --crash-at is reached (default 1)"
    )
    parser.add_argument("--stall-at", default=None, help="sleep --stall-seconds at this fault point")
    parser.add_argument("--stall-seconds", type=float, default=120.0)
    parser.add_argument("--seconds", type=float, default=10.0, help="total time to keep invoking runs")
    parser.add_argument("--interval", type=float, default=0.3, help="pause between runs")
    parser.add_argument(
        "--run-seconds", type=float, default=None, help="cap on one run (an invocation's timeout)"
    )
    parser.add_argument(
        "--exit-when-idle",
        action="store_true",
        help="stop after a run that leaves nothing pending, processing or in flight",
    )
    args = parser.parse_args(argv)

    from mintq import chain as chainlib
    from mintq import db
    from mintq import signer as signerlib
    from mintq.worker.faults import CRASH_POINTS
    from mintq.worker.loop import Worker

    for point in (args.crash_at, args.stall_at):
        if point is not None and point not in CRASH_POINTS:
            parser.error(f"unknown fault point {point!r}; expected one of {CRASH_POINTS}")

    conn = db.connect(args.database_url, application_name=application_name(os.getpid()))
    chain = chainlib.Chain(args.rpc_url, args.token)
    worker = Worker(
        conn,
        chain,
        signerlib.LocalSigner(args.key),
        chain_id=args.chain_id,
        poll_seconds=0.05,
        min_cycle_seconds=0.5,
        fault=_hook(args.crash_at, args.crash_on, args.stall_at, args.stall_seconds),
    )
    totals: dict[str, Any] = {"pid": os.getpid(), "runs": 0, "locked_runs": 0}
    deadline = time.monotonic() + args.seconds
    while time.monotonic() + worker.min_cycle_seconds < deadline:
        run_deadline = (
            deadline if args.run_seconds is None else min(deadline, time.monotonic() + args.run_seconds)
        )
        summary = worker.run(run_deadline).as_dict()
        totals["runs"] += 1
        totals["locked_runs"] += int(summary.pop("locked"))
        for key, value in summary.items():
            totals[key] = totals.get(key, 0) + value
        if args.exit_when_idle and _idle(conn):
            break
        time.sleep(args.interval)
    conn.close()
    print(json.dumps(totals), flush=True)
    return 0


# --- spawning it from tests ------------------------------------------------------


def child_env() -> dict[str, str]:
    """The test process's environment with the import paths a worker needs, minus MINTQ_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINTQ_")}
    paths = [str(REPO_ROOT / "layers" / "common" / "python"), str(REPO_ROOT)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.setdefault("POWERTOOLS_SERVICE_NAME", "mintq")
    env.setdefault("POWERTOOLS_METRICS_NAMESPACE", "MintqTest")
    env["POWERTOOLS_METRICS_DISABLED"] = "true"
    env["POWERTOOLS_TRACE_DISABLED"] = "1"
    return env


@dataclass
class WorkerProcess:
    """A spawned worker; its stdout and stderr go to files (a full pipe would stall it)."""

    proc: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait(self, timeout: float = 60) -> int:
        """The exit code (negative: killed by that signal); kills the process on timeout."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """kill -9, then reap it."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def events(self) -> list[dict[str, Any]]:
        """The JSON lines printed on stdout (the worker's logs, markers and summary)."""
        found = []
        for line in self.stdout().splitlines():
            if line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except ValueError:
                    continue
        return found

    def summary(self) -> dict[str, Any]:
        """The final summary printed on a normal exit."""
        for event in reversed(self.events()):
            if "runs" in event and "locked_runs" in event:
                return event
        raise AssertionError(f"the worker printed no summary; stderr:\n{self.stderr()[-2000:]}")


def spawn(
    log_dir: Path,
    *,
    database_url: str,
    rpc_url: str,
    token: str,
    key: str,
    chain_id: int | None = None,
    crash_at: str | None = None,
    crash_on: int = 1,
    stall_at: str | None = None,
    stall_seconds: float | None = None,
    seconds: float = 10.0,
    interval: float = 0.3,
    run_seconds: float | None = None,
    exit_when_idle: bool = False,
) -> WorkerProcess:
    """Start a worker process with cwd at the repo root."""
    cmd = [
        sys.executable,
        "-m",
        "tests.support.worker_process",
        "--database-url",
        database_url,
        "--rpc-url",
        rpc_url,
        "--token",
        token,
        "--key",
        key,
        "--seconds",
        str(seconds),
        "--interval",
        str(interval),
    ]
    if chain_id is not None:
        cmd += ["--chain-id", str(chain_id)]
    if crash_at is not None:
        cmd += ["--crash-at", crash_at, "--crash-on", str(crash_on)]
    if stall_at is not None:
        cmd += ["--stall-at", stall_at]
    if stall_seconds is not None:
        cmd += ["--stall-seconds", str(stall_seconds)]
    if run_seconds is not None:
        cmd += ["--run-seconds", str(run_seconds)]
    if exit_when_idle:
        cmd.append("--exit-when-idle")
    log_dir.mkdir(parents=True, exist_ok=True)
    tag = f"worker-{next(_spawned)}"
    out_path, err_path = log_dir / f"{tag}.out", log_dir / f"{tag}.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=child_env(), stdin=subprocess.DEVNULL, stdout=out, stderr=err
        )
    return WorkerProcess(proc, out_path, err_path)


if __name__ == "__main__":
    sys.exit(main())
