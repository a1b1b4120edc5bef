"""A private PgBouncer in transaction pooling mode: the tests' stand-in for RDS Proxy.

``PgBouncer(upstream_port, users).start()`` writes its own config and auth file into a temp
dir, listens on a free 127.0.0.1 port, multiplexes every client's transactions over at most
``pool_size`` server connections per database and user, and ``stop()`` ends it. Debian's
``pgbouncer`` package is installed with apt-get if it is missing (as root, like ``make test``
installs everything else).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from tests.support import debian
from tests.support.ports import free_port


class PgBouncer:
    def __init__(
        self, upstream_host: str, upstream_port: int, users: list[str], *, pool_size: int = 4
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.users = users
        self.pool_size = pool_size
        self.port = 0
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def url(self, database: str, user: str) -> str:
        return f"postgresql://{quote(user, safe='')}@127.0.0.1:{self.port}/{quote(database, safe='')}"

    @property
    def log(self) -> str:
        if self._dir is None:
            return ""
        path = Path(self._dir.name) / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self) -> PgBouncer:
        # Debian puts it in /usr/sbin, which is not on every PATH.
        binary = debian.ensure("/usr/sbin/pgbouncer", "pgbouncer")
        self._dir = tempfile.TemporaryDirectory(prefix="mintq-pgbouncer-")
        folder = Path(self._dir.name)
        # pgbouncer refuses to run as root; as root it drops to the postgres user (-u), which
        # must be able to read its files and write its log.
        folder.chmod(0o777)
        (folder / "userlist.txt").write_text("".join(f'"{u}" ""\n' for u in self.users))
        host, upstream_port = self.upstream
        for _ in range(5):
            self.port = free_port()
            (folder / "pgbouncer.ini").write_text(
                "[databases]\n"
                f"* = host={host} port={upstream_port}\n"
                "[pgbouncer]\n"
                "listen_addr = 127.0.0.1\n"
                f"listen_port = {self.port}\n"
                "unix_socket_dir =\n"
                "auth_type = trust\n"
                f"auth_file = {folder / 'userlist.txt'}\n"
                "pool_mode = transaction\n"
                f"default_pool_size = {self.pool_size}\n"
                "min_pool_size = 0\n"
                "reserve_pool_size = 0\n"
                "max_client_conn = 500\n"
                "server_reset_query =\n"
                "ignore_startup_parameters = extra_float_digits,options\n"
                f"logfile = {folder / 'pgbouncer.log'}\n"
                "log_connections = 0\n"
                "log_disconnections = 0\n"
            )
            for path in folder.iterdir():
                path.chmod(0o666)
            command = [binary, str(folder / "pgbouncer.ini")]
            if os.geteuid() == 0:
                command[1:1] = ["-u", "postgres"]
            self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if self._wait_ready():
                return self
            self._kill()
        raise RuntimeError(f"pgbouncer did not start:\n{self.log[-2000:]}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                return False  # e.g. the port was taken between choosing and binding it
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return True
            time.sleep(0.05)
        return False

    def _kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)
        self._process = None

    def stop(self) -> None:
        self._kill()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None
