"""The whole local stack (``python -m devstack``) in a subprocess, on free ports, for tests that
talk to it over HTTP the way a client would: its own anvil, its own database, its own state dir."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from devstack import postgres

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 180.0


def free_port() -> int:
    """A port free right now (racy by nature; fine on a test machine)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class LocalStack:
    url: str  # the API, no trailing slash
    stack: dict[str, object]  # the stack.json it wrote
    log_path: Path

    def log_tail(self, chars: int = 6000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


@contextmanager
def local_stack(
    pg_server: postgres.Server,
    template_db: str,
    state_dir: Path,
    *,
    payment_mode: str = "free",
    extra_args: tuple[str, ...] = (),
    worker: bool = True,
) -> Iterator[LocalStack]:
    """Start ``python -m devstack`` on free ports against a fresh clone of the migrated template
    database; stop it (and the anvil it started) and drop the database afterwards."""
    name = f"mintq_stack_{os.getpid()}_{state_dir.name}".replace("-", "_")
    postgres.drop_database(pg_server.admin_url, name)
    database_url = postgres.clone_database(pg_server.admin_url, template_db, name)
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "devstack",
        "--port",
        str(port),
        "--rpc-port",
        str(free_port()),
        "--facilitator-port",
        str(free_port()),
        "--state-dir",
        str(state_dir),
        *(() if worker else ("--no-worker",)),
        *extra_args,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINTQ_")}
    env |= {"DATABASE_URL": database_url, "PAYMENT_MODE": payment_mode, "PYTHONUNBUFFERED": "1"}
    for inherited in ("RPC_URL", "TOKEN_ADDRESS", "SIGNER_PRIVATE_KEY", "PAY_TO", "PORT"):
        env.pop(inherited, None)
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir / "devstack.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(process, url, log_path)
        stack = json.loads((state_dir / "stack.json").read_text())
        yield LocalStack(url=url, stack=stack, log_path=log_path)
    finally:
        _stop(process, state_dir)
        postgres.drop_database(pg_server.admin_url, name)


def _wait_until_up(process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"devstack exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{url}/queue/status", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"devstack not up after {START_TIMEOUT_S:.0f} s:\n{log_path.read_text()[-4000:]}")


def _stop(process: subprocess.Popen[bytes], state_dir: Path) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # devstack stops its API, facilitator and anvil
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    # Killed before it could stop its anvil (which runs in its own session): stop that too.
    try:
        pid = int(json.loads((state_dir / "anvil.json").read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return
    try:
        if b"anvil" in Path(f"/proc/{pid}/cmdline").read_bytes():  # not a recycled pid
            os.kill(pid, signal.SIGTERM)
    except (OSError, ProcessLookupError):
        pass
