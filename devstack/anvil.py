"""Start and stop a local anvil chain for the dev stack and the chain tests.

The binary comes from the ``@foundry-rs/anvil`` npm package (``npm ci``), so no Foundry install is
needed. Accounts are anvil's defaults, derived here from the well-known dev mnemonic rather than
hard-coded.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account

REPO_ROOT = Path(__file__).resolve().parents[1]
DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEV_CHAIN_ID = 31337
_LOG_TAIL_BYTES = 4000


class AnvilError(RuntimeError):
    """anvil could not be found, or did not come up."""


def find_anvil_binary() -> Path:
    """``$ANVIL_BINARY``, else the npm package's native binary, else ``anvil`` on PATH."""
    env = os.environ.get("ANVIL_BINARY")
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise AnvilError(f"ANVIL_BINARY={env} does not exist")
        return path
    exe = "anvil.exe" if sys.platform == "win32" else "anvil"
    # The npm package installs exactly one platform folder (anvil-<os>-<arch>) as an optional dependency.
    for candidate in sorted((REPO_ROOT / "node_modules" / "@foundry-rs").glob(f"anvil-*/bin/{exe}")):
        if os.access(candidate, os.X_OK):
            return candidate
    on_path = shutil.which("anvil")
    if on_path:
        return Path(on_path)
    raise AnvilError(
        "anvil not found: run `npm ci` in the repo root (installs @foundry-rs/anvil), "
        "install Foundry, or set ANVIL_BINARY"
    )


@functools.cache
def dev_private_key(index: int) -> str:
    """Private key (0x hex) of anvil's default account ``index`` for :data:`DEV_MNEMONIC`."""
    if index < 0:
        raise ValueError("account index must be >= 0")
    Account.enable_unaudited_hdwallet_features()
    account = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    return "0x" + bytes(account.key).hex()


def _rpc(url: str, method: str, params: list[Any] | None = None, *, timeout: float = 2.0) -> Any:
    # Plain urllib so the liveness probe does not depend on web3's provider/retry behaviour.
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        reply = json.loads(response.read())
    if "error" in reply:
        raise AnvilError(f"{method} failed: {reply['error']}")
    return reply["result"]


def rpc_alive(url: str) -> bool:
    """True if ``url`` answers ``eth_chainId``."""
    try:
        _rpc(url, "eth_chainId", timeout=1.0)
    except (OSError, ValueError, AnvilError):  # URLError and timeouts are OSErrors
        return False
    return True


def genesis_hash(url: str) -> str:
    """The hash of block 0 (0x hex): it names one chain. A fresh anvil gets a new one (its genesis
    carries the start time); an anvil restarted from its ``--state`` file keeps it."""
    block = _rpc(url, "eth_getBlockByNumber", ["0x0", False], timeout=10.0)
    if not isinstance(block, dict) or not isinstance(block.get("hash"), str):
        raise AnvilError(f"{url} has no block 0")
    return str(block["hash"])


def _ensure_port_free(port: int) -> None:
    # Otherwise an already-running node on the port would answer the readiness probe and be taken for ours.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR: a TIME_WAIT left by a node we just stopped is not "in use"; a live listener still is.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise AnvilError(f"port {port} is already in use: {exc}") from exc


def _free_port() -> int:
    # Racy by nature (the port is released before anvil binds it), but fine for a dev/test machine.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _log_tail(path: Path | None) -> str:
    if path is None or not path.exists():
        return "(no log)"
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - _LOG_TAIL_BYTES))
        return f.read().decode(errors="replace")


@dataclass
class Anvil:
    """A running (or external, when ``process`` is None) anvil node."""

    rpc_url: str
    port: int
    process: subprocess.Popen[bytes] | None
    log_path: Path | None = None
    # True when start_anvil chose a temporary log file, which stop() then deletes.
    temp_log: bool = field(default=False, repr=False)

    @property
    def chain_id(self) -> int:
        return int(_rpc(self.rpc_url, "eth_chainId"), 16)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the node gracefully (so ``--state`` gets dumped), killing it if it does not exit."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            # anvil treats SIGTERM like Ctrl-C: it dumps --state and exits 0.
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        if self.temp_log and self.log_path is not None:
            self.log_path.unlink(missing_ok=True)


def start_anvil(
    *,
    port: int | None = None,
    block_time: float | None = None,
    gas_limit: int = 30_000_000,
    accounts: int = 10,
    chain_id: int = DEV_CHAIN_ID,
    state_path: Path | None = None,
    new_session: bool = False,
    log_path: Path | None = None,
    timeout: float = 20,
) -> Anvil:
    """Start anvil on 127.0.0.1 and wait until it answers JSON-RPC.

    ``port=None`` picks a free port; ``chain_id`` is what ``eth_chainId`` answers;
    ``block_time=None`` means automine (a block per transaction);
    ``state_path`` loads state from the file if it exists and dumps it on a graceful exit;
    ``new_session`` detaches anvil from our process group so it survives the parent being killed;
    ``log_path=None`` logs to a temporary file that ``stop()`` deletes (its tail is in any startup error).
    """
    binary = find_anvil_binary()
    if port is None:
        port = _free_port()
    else:
        _ensure_port_free(port)
    args = [
        str(binary),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--chain-id",
        str(chain_id),
        "--mnemonic",
        DEV_MNEMONIC,
        "--accounts",
        str(accounts),
        "--gas-limit",
        str(gas_limit),
    ]
    if block_time is not None:
        args += ["--block-time", str(block_time)]
    if state_path is not None:
        state_path.parent.mkdir(parents=True, exist_ok=True)
        args += ["--state", str(state_path)]
    temp_log = log_path is None
    if log_path is None:
        fd, name = tempfile.mkstemp(prefix=f"anvil-{port}-", suffix=".log")
        os.close(fd)
        log_path = Path(name)
    else:
        log_path.parent.mkdir(parents=True, exist_ok=True)

    rpc_url = f"http://127.0.0.1:{port}"
    # A file, not a pipe: nobody drains anvil's output, and a full pipe would stall the node.
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
        )
    node = Anvil(rpc_url=rpc_url, port=port, process=process, log_path=log_path, temp_log=temp_log)

    deadline = time.monotonic() + timeout
    try:
        while not rpc_alive(rpc_url):
            code = process.poll()
            if code is not None:
                raise AnvilError(f"anvil exited with code {code} during startup:\n{_log_tail(log_path)}")
            if time.monotonic() > deadline:
                raise AnvilError(
                    f"anvil did not answer on {rpc_url} within {timeout}s:\n{_log_tail(log_path)}"
                )
            time.sleep(0.05)
    except BaseException:
        node.stop()  # also on Ctrl-C, so a half-started node is not left behind
        raise
    return node


def stop_quietly(node: Anvil | None) -> None:
    """``node.stop()`` for finally/cleanup blocks, where a second error would mask the first."""
    if node is not None:
        with contextlib.suppress(Exception):
            node.stop()
