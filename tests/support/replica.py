"""A real PostgreSQL primary with a streaming read replica, private to one test.

Debian's server binaries (the ones behind the machine's own cluster) run as the ``postgres``
OS user (the server refuses root): ``initdb`` a primary that allows replication on loopback,
``pg_basebackup -R`` a replica from it, both on free ports with their sockets in a temporary
directory. Everything is stopped and removed afterwards.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.ports import free_port


@dataclass(frozen=True)
class Pair:
    primary_url: str
    replica_url: str


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise FileNotFoundError(f"Debian's PostgreSQL server binaries ({name}) are not installed")
    return found[-1]


def _as_postgres(*args: str) -> None:
    subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True, text=True)


@contextlib.contextmanager
def primary_with_replica() -> Iterator[Pair]:
    root = Path(tempfile.mkdtemp(prefix="mintq-replica-"))
    shutil.chown(root, "postgres", "postgres")
    primary, replica = root / "primary", root / "replica"
    p_port, r_port = free_port(), free_port()
    started: list[Path] = []
    try:
        _as_postgres(_bin("initdb"), "-D", str(primary), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        with open(primary / "pg_hba.conf", "a") as hba:
            hba.write("host replication all 127.0.0.1/32 trust\n")
        opts = f"-p {{port}} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        _as_postgres(
            _bin("pg_ctl"),
            "-D",
            str(primary),
            "-o",
            opts.format(port=p_port),
            "-l",
            str(root / "primary.log"),
            "-w",
            "start",
        )
        started.append(primary)
        _as_postgres(
            _bin("pg_basebackup"),
            "-h",
            "127.0.0.1",
            "-p",
            str(p_port),
            "-U",
            "postgres",
            "-D",
            str(replica),
            "-R",
            "-X",
            "stream",
        )
        _as_postgres(
            _bin("pg_ctl"),
            "-D",
            str(replica),
            "-o",
            opts.format(port=r_port) + " -c hot_standby=on",
            "-l",
            str(root / "replica.log"),
            "-w",
            "start",
        )
        started.append(replica)
        yield Pair(
            primary_url=f"postgresql://postgres@127.0.0.1:{p_port}/postgres",
            replica_url=f"postgresql://postgres@127.0.0.1:{r_port}/postgres",
        )
    finally:
        for data in reversed(started):
            with contextlib.suppress(subprocess.CalledProcessError):
                _as_postgres(_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)
        assert not os.path.exists(root)
