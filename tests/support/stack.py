"""The whole local stack (``python -m devstack``) as a child process, on free ports.

Each stack has its own database, its own anvil (started by devstack, 1-second blocks unless
told otherwise), its own x402 facilitator port and its own state folder, so it never
touches ``.local/`` or a developer's ``make dev``. :meth:`Stack.stop` ends devstack with
SIGTERM (it stops its anvil and facilitator itself) and kills whatever is left.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Variables of the developer's shell that would point devstack elsewhere.
_INHERITED_OVERRIDES = ("RPC_URL", "TOKEN_ADDRESS", "SIGNER_PRIVATE_KEY", "PAY_TO", "PORT", "MINTQ_PG")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Stack:
    api_url: str
    state_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes]

    @property
    def info(self) -> dict[str, Any]:
        """devstack's ``stack.json``: rpc_url, chain_id, token_address, database_url, x402 terms."""
        data: dict[str, Any] = json.loads((self.state_dir / "stack.json").read_text())
        return data

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        # anvil runs in its own session (devstack lets it outlive a kill -9); end it if devstack could not.
        anvil = self.state_dir / "anvil.json"
        if anvil.exists():
            pid = json.loads(anvil.read_text()).get("pid")
            if isinstance(pid, int):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def start(
    *,
    database_url: str,
    state_dir: Path,
    payment_mode: str = "free",
    env: dict[str, str] | None = None,
    block_time: float = 1.0,
    timeout: float = 120.0,
) -> Stack:
    """Start devstack and return once its API answers and ``stack.json`` is written.

    ``env`` adds variables (``MINTQ_EXPLORER_TX_URL``, ...). Raises RuntimeError with the
    log's tail when the stack exits or does not come up within ``timeout`` seconds.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    child_env = {k: v for k, v in os.environ.items() if k not in _INHERITED_OVERRIDES}
    child_env |= {"DATABASE_URL": database_url, "PAYMENT_MODE": payment_mode, **(env or {})}
    command = [
        sys.executable,
        "-m",
        "devstack",
        "--port",
        str(port),
        "--rpc-port",
        str(free_port()),
        "--facilitator-port",
        str(free_port()),
        "--block-time",
        str(block_time),
        "--state-dir",
        str(state_dir),
    ]
    log_path = state_dir / "devstack.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=child_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    stack = Stack(api_url=f"http://127.0.0.1:{port}", state_dir=state_dir, log_path=log_path, process=process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"devstack exited with {process.returncode}:\n{stack.log_tail()}")
        if (state_dir / "stack.json").exists() and _answers(f"{stack.api_url}/queue/status"):
            return stack
        time.sleep(0.3)
    stack.stop()
    raise RuntimeError(f"devstack did not come up within {timeout} s:\n{stack.log_tail()}")


@contextlib.contextmanager
def running(admin_url: str, database: str, state_dir: Path, **options: Any) -> Iterator[Stack]:
    """A stack on a fresh database ``database`` (dropped afterwards); ``options`` go to :func:`start`."""
    from devstack import postgres

    postgres.drop_database(admin_url, database)
    url = postgres.ensure_database(admin_url, database)
    try:
        stack = start(database_url=url, state_dir=state_dir, **options)
        try:
            yield stack
        finally:
            stack.stop()
    finally:
        postgres.drop_database(admin_url, database)


def rpc(url: str, method: str, params: list[Any]) -> Any:
    """One JSON-RPC call to a node; raises RuntimeError with the node's error message."""
    status, answer = request("POST", url, {"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    if status != 200 or not isinstance(answer, dict) or "error" in answer:
        raise RuntimeError(f"{method} failed: {answer}")
    return answer["result"]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def request(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """One JSON request; returns (status, parsed body or None)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        url, data=data, method=method, headers={"content-type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            raw, status = response.read(), response.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, None
