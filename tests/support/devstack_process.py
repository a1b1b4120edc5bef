"""The local stack (``python -m devstack``) as a user runs it: its own OS process, on free ports,
with its own state directory and database, stopped with SIGTERM as Ctrl-C would."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.ports import free_port
from tests.support.worker_process import REPO_ROOT, child_env

READY = "is up at "


@dataclass
class StackProcess:
    proc: subprocess.Popen[bytes]
    state_dir: Path
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def ready_line(self) -> str:
        return next(line for line in self.log().splitlines() if READY in line)

    def stack(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.state_dir / "stack.json").read_text())
        return data

    def anvil_pid(self) -> int | None:
        try:
            return int(json.loads((self.state_dir / "anvil.json").read_text())["pid"])
        except (OSError, ValueError, KeyError):
            return None

    def kill_hard(self) -> None:
        """A power cut: kill -9 the stack and its anvil, so anvil never saves its state."""
        pid = self.anvil_pid()
        self.proc.kill()
        self.proc.wait(timeout=10)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM (what Ctrl-C does) and wait; kill -9 if it hangs. Stops its anvil either way."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        # anvil runs in its own session (to survive a kill -9 of the stack): never leave it behind.
        pid = self.anvil_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


def start_stack(
    state_dir: Path,
    *,
    database_name: str,
    payment_mode: str = "free",
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> StackProcess:
    """Start the stack and wait for its ready line (``AssertionError`` with its log otherwise)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir.parent / f"{state_dir.name}-{time.monotonic_ns()}.log"
    child = child_env()
    for name in (
        "DATABASE_URL",
        "RPC_URL",
        "TOKEN_ADDRESS",
        "SIGNER_PRIVATE_KEY",
        "SIGNER_PRIVATE_KEYS",
        "PAY_TO",
        "PORT",
    ):
        child.pop(name, None)  # the developer's settings are not this stack's
    # A given DATABASE_URL, else the machine's server (127.0.0.1:5432), where the stack makes its own.
    given_database = "DATABASE_URL" in (env or {})
    child |= {"MINTQ_PG": "env" if given_database else "local", "PAYMENT_MODE": payment_mode} | (env or {})
    cmd = [
        sys.executable,
        "-m",
        "devstack",
        "--port",
        str(free_port()),
        "--rpc-port",
        str(free_port()),
        "--facilitator-port",
        "0",
        "--state-dir",
        str(state_dir),
        "--database-name",
        database_name,
        *args,
    ]
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=child, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    stack = StackProcess(proc, state_dir, log_path)
    deadline = time.monotonic() + timeout
    while READY not in stack.log():
        if proc.poll() is not None or time.monotonic() > deadline:
            stack.stop()
            raise AssertionError(f"the stack did not come up:\n{stack.log()[-4000:]}")
        time.sleep(0.2)
    return stack


def http_json(
    method: str, url: str, body: object = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """One request: status, JSON body, headers with lower-case names (errors are answers too)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"content-type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}"), _lower(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}"), _lower(exc.headers)


def _lower(headers: Any) -> dict[str, str]:
    return {str(name).lower(): str(value) for name, value in headers.items()}


def wait_for_item(api_url: str, queue_id: str, *, timeout: float = 90) -> dict[str, Any]:
    """Follow ``GET /queue/item/{id}`` until it is final; the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        _, item, _ = http_json("GET", f"{api_url}/queue/item/{queue_id}")
        if item.get("status") in ("completed", "failed") or time.monotonic() > deadline:
            return item
        time.sleep(0.25)  # a mint takes about a block (1 s): a coarser poll adds most of a second
