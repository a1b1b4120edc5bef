"""The local stack for the mint page's and the wait estimate's tests: ``devstack_process``'s
stack (its own process, ports, state directory and database) with the page's explorer
setting, a chosen block time, and its database dropped afterwards."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.devstack_process import StackProcess, http_json, start_stack


@dataclass
class Stack:
    process: StackProcess

    @property
    def info(self) -> dict[str, Any]:
        """devstack's ``stack.json``: api_url, rpc_url, chain_id, database_url, the x402 terms..."""
        return self.process.stack()

    @property
    def api_url(self) -> str:
        return str(self.info["api_url"])


@contextlib.contextmanager
def running(
    admin_url: str,
    database: str,
    state_dir: Path,
    *,
    payment_mode: str = "free",
    env: dict[str, str] | None = None,
    block_time: float = 1.0,
) -> Iterator[Stack]:
    """A stack on a fresh database ``database`` of the server at ``admin_url`` (dropped afterwards)."""
    from devstack import postgres

    postgres.drop_database(admin_url, database)
    try:
        process = start_stack(
            state_dir,
            database_name=database,
            payment_mode=payment_mode,
            args=["--block-time", str(block_time)],
            env=env,
        )
        try:
            yield Stack(process)
        finally:
            process.stop()
    finally:
        postgres.drop_database(admin_url, database)


def request(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    """One JSON request: (status, parsed body)."""
    status, answer, _ = http_json(method, url, body)
    return status, answer


def rpc(url: str, method: str, params: list[Any]) -> Any:
    """One JSON-RPC call to a node; RuntimeError with the node's error."""
    status, answer = request("POST", url, {"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    if status != 200 or "error" in answer:
        raise RuntimeError(f"{method} failed: {answer}")
    return answer["result"]
