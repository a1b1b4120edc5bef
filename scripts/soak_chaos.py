"""The soak's killer: worker processes of ``python -m devstack.worker`` kept alive, one of them
SIGKILLed at random intervals, by preference the one holding the signer's lock (so kills land
mid-batch), and a replacement started."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
from soak_stack import REPO_ROOT


class Chaos:
    """Keeps ``n`` worker processes alive and SIGKILLs one at random every 2-8 s."""

    def __init__(
        self,
        n: int,
        stack_path: Path,
        log_dir: Path,
        kill_min: float,
        kill_max: float,
        *,
        database_url: str,
        holder_share: float,
    ) -> None:
        self.n = n
        self.database_url = database_url
        self.holder_share = holder_share
        self.holder_kills = 0
        self.stack_path = stack_path
        self.log_dir = log_dir
        self.kill_min, self.kill_max = kill_min, kill_max
        self.procs: list[subprocess.Popen[bytes]] = []
        self.kills = 0
        self.started = 0
        self.crashed = 0  # exits we did not cause
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="chaos", daemon=True)

    def _spawn(self) -> None:
        self.started += 1
        log = (self.log_dir / f"worker-{self.started}.log").open("wb")
        with log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "devstack.worker",
                    "--stack",
                    str(self.stack_path),
                    "--idle-pause",
                    "1",
                ],
                cwd=REPO_ROOT,
                env={
                    **os.environ,
                    "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "layers/common/python"), str(REPO_ROOT)]),
                },
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.procs.append(proc)

    def _reap(self) -> None:
        for proc in list(self.procs):
            if proc.poll() is not None:
                self.procs.remove(proc)
                self.crashed += 1
        while len(self.procs) < self.n:
            self._spawn()

    def _loop(self) -> None:
        self._reap()
        while not self._stop.wait(random.uniform(self.kill_min, self.kill_max)):
            self._reap()
            victim = None
            if random.random() < self.holder_share:
                victim = self._lock_holder()
                self.holder_kills += victim is not None
            victim = victim or random.choice(self.procs)
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            self.procs.remove(victim)
            self.kills += 1
            self._reap()

    def _lock_holder(self) -> subprocess.Popen[bytes] | None:
        """The worker process whose PostgreSQL session holds an advisory lock (the busy one)."""
        try:
            import psutil

            with psycopg.connect(self.database_url, autocommit=True, connect_timeout=5) as conn:
                ports = {
                    r[0]
                    for r in conn.execute(
                        "SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                        " WHERE l.locktype = 'advisory' AND l.granted AND a.client_port IS NOT NULL"
                    )
                }
            for proc in self.procs:
                local = {
                    c.laddr.port for c in psutil.Process(proc.pid).net_connections(kind="tcp") if c.laddr
                }
                if local & ports:
                    return proc
        except Exception:
            return None
        return None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def ensure_running(self) -> None:
        self._reap()

    def terminate_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait()
        self.procs.clear()
