"""Shared pieces of the benchmark: paths and environment, progress bars, percentiles,
throwaway databases and the machine description recorded with every result."""

from __future__ import annotations

import contextlib
import glob
import io
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LAYER = ROOT / "layers" / "common" / "python"


def setup_environment() -> None:
    """Put the layer and the repo on sys.path and quiet Powertools, before mintq is imported."""
    for path in (str(ROOT), str(LAYER)):
        if path not in sys.path:
            sys.path.insert(0, path)
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "mintq")
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "MintqBench")
    # Per-request INFO logs would measure the terminal, not the code.
    os.environ["POWERTOOLS_LOG_LEVEL"] = "ERROR"


setup_environment()

from tqdm import tqdm  # noqa: E402

from devstack import postgres  # noqa: E402
from mintq import config, db, migrations  # noqa: E402

Row = dict[str, Any]


def progress(total: float | None, desc: str, unit: str = "it") -> tqdm[Any]:
    """A progress bar on stderr, so stdout keeps only the table."""
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=True)


def log(message: str) -> None:
    tqdm.write(message, file=sys.stderr)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.4999)))
    return float(sorted_values[rank - 1])


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    values = sorted(seconds)
    return {
        "requests": len(values),
        "p50_ms": round(statistics.median(values) * 1000, 3),
        "p99_ms": round(percentile(values, 99) * 1000, 3),
        "max_ms": round(values[-1] * 1000, 3),
    }


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Powertools' Metrics writes one EMF line per invocation to stdout (CloudWatch in Lambda):
    still produced and paid for, but not printed over the progress bar."""
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        yield


class Databases:
    """Throwaway databases on the resolved PostgreSQL server, all dropped by ``close()``."""

    def __init__(self) -> None:
        self.server = postgres.resolve_server(ROOT / ".local")
        if not self.server.can_create_databases:
            self.server.stop()
            raise SystemExit(
                "DATABASE_URL points at someone else's database; the benchmark creates and drops its own "
                "databases. Unset DATABASE_URL (a local server on 127.0.0.1:5432 or the embedded one is used)."
            )
        self.names: list[str] = []
        self.tag = uuid.uuid4().hex[:8]

    def create(self, purpose: str) -> str:
        name = f"mintq_bench_{purpose}_{self.tag}"
        postgres.drop_database(self.server.admin_url, name)
        url = postgres.ensure_database(self.server.admin_url, name)
        self.names.append(name)
        migrations.apply(url)
        return url

    def run(self, purpose: str, measure: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
        """``measure(url)`` on a throwaway database for ``purpose``; afterwards the handlers'
        shared connection is closed and the database dropped, whatever ``measure`` raised."""
        url = self.create(purpose)
        try:
            return measure(url)
        finally:
            use_database("")
            self.drop(url)

    def drop(self, url: str) -> None:
        for name in list(self.names):
            if url == postgres.database_url(self.server.admin_url, name):
                postgres.drop_database(self.server.admin_url, name)
                self.names.remove(name)

    def server_version(self) -> str:
        with db.connect(self.server.admin_url) as conn:
            row = conn.execute(
                "SELECT current_setting('server_version') AS short, current_setting('jit') AS jit"
            ).fetchone()
        return f"{row['short']} ({self.server.kind} server, jit={row['jit']})" if row else "unknown"

    def close(self) -> None:
        db.close_shared_connection()
        for name in list(self.names):
            with contextlib.suppress(Exception):
                postgres.drop_database(self.server.admin_url, name)
            self.names.remove(name)
        self.server.stop()


def use_database(url: str) -> None:
    """Point the handlers' shared connection at ``url`` (a new Lambda environment, in effect);
    ``""`` leaves them none."""
    os.environ["MINTQ_DATABASE_URL"] = url
    config.reset()
    db.close_shared_connection()


def run_standalone(purpose: str, measure: Callable[[str], dict[str, Any]], out: Path | None = None) -> None:
    """One section run on its own (``bench/<section>.py``): ``measure`` on a throwaway database
    for ``purpose`` (``Databases.run``), its JSON printed (and written to ``out``) with the
    command that made it."""
    dbs = Databases()
    try:
        result = {"command": shlex.join(sys.orig_argv)} | dbs.run(purpose, measure)
    finally:
        dbs.close()
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        out.write_text(text + "\n")


def postgres_binary(name: str) -> str:
    """PostgreSQL's program ``name`` (pgbench, initdb, postgres, ...): on PATH, else the newest
    Debian install's (/usr/lib/postgresql/N/bin)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(Path(p).parts[-3]))
    if not candidates:
        raise FileNotFoundError(f"{name} not found: install Debian's postgresql packages")
    return candidates[-1]


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b`` to three places; None when either is unknown or ``b`` is zero."""
    if a is None or b is None or not b:
        return None
    return round(a / b, 3)


#: Issue 14's baseline for the enqueue: a table of the same basic shape as the queue (uuid key,
#: bigserial, payer, status, created_at, one partial index), no trigger, nothing else.
PLAIN_TABLE = """
CREATE TABLE IF NOT EXISTS bench_plain_queue (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    position      bigserial,
    payer_address varchar(42) NOT NULL,
    status        text NOT NULL DEFAULT 'pending',
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS bench_plain_queue_pending_idx ON bench_plain_queue (position)
    WHERE status = 'pending'
"""
#: The plain INSERT, as pgbench and the in-process loop send it (its payer bound as the enqueue's is).
PLAIN_INSERT = (
    "INSERT INTO bench_plain_queue (payer_address) VALUES (%(payer)s) RETURNING id, position, created_at"
)


def create_plain_table(url: str) -> None:
    with db.connect(url) as conn:
        for statement in PLAIN_TABLE.split(";"):
            conn.execute(statement)  # type: ignore[call-overload]


def set_settings(url: str, values: dict[str, object]) -> dict[str, str]:
    """UPDATE the given system_settings keys that exist; returns what was set."""
    applied: dict[str, str] = {}
    with db.connect(url) as conn:
        for key, value in values.items():
            cur = conn.execute(
                "UPDATE system_settings SET value = %(v)s WHERE key = %(k)s", {"k": key, "v": str(value)}
            )
            if cur.rowcount:
                applied[key] = str(value)
    return applied


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _command(args: list[str]) -> str:
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
    return (out.stdout or out.stderr).strip()


def machine(pg_version: str | None, anvil_version: str | None) -> dict[str, Any]:
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in _read("/proc/cpuinfo").splitlines()
            if "model name" in line
        ),
        platform.processor() or "unknown",
    )
    mem_kib = next(
        (
            int(line.split()[1])
            for line in _read("/proc/meminfo").splitlines()
            if line.startswith("MemTotal:")
        ),
        0,
    )
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    head = _command(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = _command(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"])
    return {
        "nproc": nproc,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "cpu_model": cpu_model,
        "os": platform.platform(),
        "python": platform.python_version(),
        "postgresql": pg_version,
        "anvil": anvil_version,
        "git_commit": head + (" (with uncommitted changes)" if dirty else ""),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
