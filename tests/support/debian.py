"""Debian packages a test needs (tmux, pgbouncer, chromium…), installed the way ``make test``
installs everything else: only when missing, with apt-get (tests run as root here and in CI)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

# One file for every test process on the machine: make test's xdist workers may all reach a
# missing package at once, and a second apt-get fails on the first one's dpkg lock.
_LOCK = Path(tempfile.gettempdir()) / "mintq-tests-apt.lock"
# Beyond our own workers (another checkout's tests, unattended upgrades): wait for dpkg's lock.
_APT_OPTIONS = ["-o", "DPkg::Lock::Timeout=600"]


@contextlib.contextmanager
def _installing() -> Iterator[None]:
    with _LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


def ensure(command: str, package: str | None = None) -> str:
    """The path of ``command``, installing Debian's ``package`` (default: the command's name)
    first if it is not on PATH, one process at a time. Raises ``subprocess.CalledProcessError``
    if apt-get fails, ``FileNotFoundError`` if the package did not bring the command."""
    package = package or os.path.basename(command)
    found = _find(command)
    if found:
        return found
    with _installing():
        found = _find(command)  # another worker installed it while we waited
        if found:
            return found
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(
            ["apt-get", *_APT_OPTIONS, "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL
        )
        subprocess.run(
            ["apt-get", *_APT_OPTIONS, "install", "-y", "-q", "--no-install-recommends", package],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )
    found = _find(command)
    if not found:
        raise FileNotFoundError(f"{command} is still missing after installing {package}")
    return found


def _find(command: str) -> str | None:
    return shutil.which(command) or (command if os.access(command, os.X_OK) else None)
