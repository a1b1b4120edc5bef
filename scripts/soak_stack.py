"""The soak's view of the running local stack: its ``stack.json`` and the only endpoints the soak
ever contacts, all on 127.0.0.1 (the API over HTTP, PostgreSQL, and the token's views over
JSON-RPC)."""

from __future__ import annotations

import dataclasses
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import eth_abi as abi
from eth_utils import function_signature_to_4byte_selector

from mintq import rpc

REPO_ROOT = Path(__file__).resolve().parents[1]
STACK_FILE = REPO_ROOT / ".local" / "stack.json"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", None, ""}


@dataclasses.dataclass(frozen=True)
class Stack:
    """The endpoints of a running local stack, as its ``stack.json`` names them."""

    api: str
    rpc_url: str
    database_url: str
    token: str

    @classmethod
    def load(cls, path: Path) -> Stack:
        """Read ``path``; raises ``SystemExit`` for an endpoint that is not local."""
        stack = json.loads(path.read_text())
        return cls(
            api=_local_only(str(stack["api_url"]).rstrip("/")),
            rpc_url=_local_only(str(stack["rpc_url"])),
            database_url=_local_only(str(stack["database_url"])),
            token=str(stack["token_address"]),
        )


def _local_only(url: str) -> str:
    host = urlsplit(url).hostname if "://" in url else "127.0.0.1"
    if host not in LOCAL_HOSTS:
        raise SystemExit(f"refusing to soak a non-local endpoint: {url}")
    return url


def http(method: str, url: str, body: object | None = None, *, timeout: float = 30) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raw = exc.read() or b"{}"
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, {"raw": raw.decode(errors="replace")}


def rpc_batch(rpc_url: str, calls: list[tuple[str, list[Any]]]) -> list[Any]:
    """mintq's own batched JSON-RPC round trip, with the soak's patience."""
    return rpc.call_batch(rpc_url, calls, timeout=60)


def _call_data(signature: str, *args: Any) -> str:
    """ABI-encoded call data for a view function: its selector, then its arguments (eth-abi)."""
    types = signature[signature.index("(") + 1 : -1]
    encoded = abi.encode([t for t in types.split(",") if t], list(args))
    return "0x" + (function_signature_to_4byte_selector(signature) + encoded).hex()


def view(rpc_url: str, token: str, signature: str) -> int:
    """A uint256 view of ``token`` without arguments, e.g. ``totalSupply()``."""
    (result,) = rpc_batch(rpc_url, [("eth_call", [{"to": token, "data": _call_data(signature)}, "latest"])])
    return int(result, 16)


def balances(rpc_url: str, token: str, holders: list[str], chunk: int = 250) -> dict[str, int]:
    """``balanceOf`` each holder, ``chunk`` calls per JSON-RPC batch."""
    found: dict[str, int] = {}
    for i in range(0, len(holders), chunk):
        part = holders[i : i + chunk]
        calls = [
            ("eth_call", [{"to": token, "data": _call_data("balanceOf(address)", h)}, "latest"]) for h in part
        ]
        for holder, result in zip(part, rpc_batch(rpc_url, calls), strict=True):
            found[holder] = int(result, 16)
    return found
