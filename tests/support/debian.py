"""Debian packages a test needs (tmux, pgbouncer, chromium…), installed the way ``make test``
installs everything else: only when missing, with apt-get (tests run as root here and in CI)."""

from __future__ import annotations

import os
import shutil
import subprocess


def ensure(command: str, package: str | None = None) -> str:
    """The path of ``command``, installing Debian's ``package`` (default: the command's name)
    first if it is not on PATH. Raises ``subprocess.CalledProcessError`` if apt-get fails."""
    found = shutil.which(command) or (command if os.access(command, os.X_OK) else None)
    if found:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", package or os.path.basename(command)],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    found = shutil.which(command)
    if not found:
        raise FileNotFoundError(f"{command} is still missing after installing {package or command}")
    return found
