"""JSON-RPC to the chain's node, two ways: web3 for the worker, plain batches for the API.

- ``web3``: a ``Web3`` whose every request ends by the worker's deadline, web3's own retries
  off (``mintq.web3_provider``); the batch worker's ``mintq.chain`` and the payment
  reconciler read and write through it.
- ``call_batch`` and ``supply_view``: the API's one chain read (what ``POST /mint`` in x402
  mode decides on: ``remainingMints()`` at one block and the receipts of in-flight batches),
  as one batched JSON-RPC request over httpx. No web3 here: it costs the enqueue function's
  cold start about a second, so web3 is imported only when ``web3()`` is first called, and
  httpx only when the API first reads the chain. ``signer_accounts`` is the ``mintq stats``
  command's read of the signers' nonces and balances, the same way.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eth_hash.auto import keccak

from mintq import bounded_http, errors
from mintq.deadlines import MIN_CALL_SECONDS

if TYPE_CHECKING:
    import httpx
    from web3 import Web3

    from mintq.deadlines import Deadline

#: Seconds one JSON-RPC request may take when the deadline is further away.
DEFAULT_TIMEOUT = 10.0
#: Seconds a connection to the node may take at most, whatever the call's timeout.
CONNECT_TIMEOUT_SECONDS = 3.0

_REMAINING_MINTS = "0x" + keccak(b"remainingMints()")[:4].hex()

_client: httpx.Client | None = None


def web3(rpc_url: str, *, deadline: Deadline, timeout: float = DEFAULT_TIMEOUT) -> Web3:
    """A ``Web3`` on ``rpc_url`` whose every request takes at most ``timeout`` seconds, cut
    to what ``deadline`` leaves (``errors.DeadlineReached`` when nothing is left), with
    web3's retries off (``mintq.web3_provider``)."""
    from web3 import Web3

    from mintq.web3_provider import DeadlineHTTPProvider

    return Web3(DeadlineHTTPProvider(rpc_url, timeout=timeout, deadline=deadline))


def http_client() -> httpx.Client:
    """The execution environment's one pooled HTTP client for JSON-RPC (thread-safe: a signer
    pool's workers and ``bounded_http``'s request threads share its keep-alive connections)."""
    global _client  # noqa: PLW0603 - one pooled client per execution environment
    import httpx

    if _client is None:
        _client = httpx.Client()
    return _client


def call_batch(url: str, calls: Sequence[tuple[str, list[Any]]], *, timeout: float) -> list[Any]:
    """One batched JSON-RPC round trip of ``calls`` (method, params) within ``timeout``
    seconds; their results in call order. Raises ``httpx.HTTPError`` on a transport failure
    or an HTTP error status, ``ValueError`` when a call answers an error or the reply is not
    JSON-RPC, ``KeyError`` when an answer is missing."""
    bounded = max(timeout, 0.01)
    batch = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)]
    response = bounded_http.post(
        http_client(), url, json=batch, timeout=bounded, connect=min(bounded, CONNECT_TIMEOUT_SECONDS)
    )
    response.raise_for_status()
    answers = {a["id"]: a for a in response.json()}
    results = []
    for i in range(len(calls)):
        answer = answers[i]
        if "error" in answer:
            raise ValueError(f"{calls[i][0]}: {answer['error']}")
        results.append(answer["result"])
    return results


def forget_clients() -> None:
    """Forget the pooled client without closing it: a forked process must not use the
    keep-alive sockets it inherited, nor close them under its parent."""
    global _client  # noqa: PLW0603 - see call_batch
    _client = None


@dataclass(frozen=True)
class SupplyView:
    """The token's supply as the chain has it at one block."""

    remaining: int  #: ``remainingMints()`` at block ``head``
    head: int  #: the block number read at
    mined: int  #: mints of the in-flight batches whose receipt (status 1) is at or below ``head``


def supply_view(
    rpc_url: str, token: str, inflight: Sequence[dict[str, Any]], *, timeout: float
) -> SupplyView:
    """Read ``token``'s ``remainingMints()`` at the node's head block and the receipts of
    ``inflight`` attempts (rows with ``tx_hash``, ``batch_id``, ``mint_count``), two batched
    round trips within ``timeout`` seconds in all (the second gets what the first left, so a
    slow node cannot double a caller's deadline). Raises ``errors.ChainUnavailable`` when the
    node cannot be reached, answers something unreadable, or not within ``timeout``."""
    import httpx

    ends = time.monotonic() + timeout
    try:
        [height] = call_batch(rpc_url, [("eth_blockNumber", [])], timeout=timeout)
        head = int(height, 16)
        calls: list[tuple[str, list[Any]]] = [
            ("eth_call", [{"to": token, "data": _REMAINING_MINTS}, hex(head)])
        ]
        calls += [("eth_getTransactionReceipt", [row["tx_hash"]]) for row in inflight]
        left = ends - time.monotonic()
        if left < MIN_CALL_SECONDS:
            raise errors.ChainUnavailable(f"the node took the whole {timeout:.2f} s to name its head block")
        remaining, *receipts = call_batch(rpc_url, calls, timeout=left)
        mined: dict[Any, int] = {}
        for row, receipt in zip(inflight, receipts, strict=True):
            if receipt and int(receipt["status"], 16) == 1 and int(receipt["blockNumber"], 16) <= head:
                mined[row["batch_id"]] = int(row["mint_count"])  # one batch, counted once
        return SupplyView(remaining=int(remaining, 16), head=head, mined=sum(mined.values()))
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        raise errors.ChainUnavailable(str(exc)) from exc


@dataclass(frozen=True)
class Account:
    """One address as the chain has it at its latest block."""

    mined: int  #: ``eth_getTransactionCount`` at ``latest``: transactions mined from it
    balance: int  #: wei


def signer_accounts(rpc_url: str, addresses: Sequence[str], *, timeout: float) -> list[Account]:
    """Each of ``addresses``' mined-transaction count and balance, in order: one batched round
    trip within ``timeout`` seconds in all, however many addresses and however slowly the node
    answers. Raises ``errors.ChainUnavailable`` when the node cannot be reached, answers
    something unreadable, or not within ``timeout``."""
    import httpx

    calls: list[tuple[str, list[Any]]] = []
    for address in addresses:
        calls += [("eth_getTransactionCount", [address, "latest"]), ("eth_getBalance", [address, "latest"])]
    if not calls:
        return []
    try:
        answers = [int(a, 16) for a in call_batch(rpc_url, calls, timeout=timeout)]
    except httpx.TimeoutException as exc:
        raise errors.ChainUnavailable(f"no answer from the node within {timeout:g} s") from exc
    except (httpx.HTTPError, httpx.InvalidURL, ValueError, KeyError, TypeError) as exc:
        raise errors.ChainUnavailable(f"{type(exc).__name__}: {exc}") from exc
    return [Account(mined=answers[i], balance=answers[i + 1]) for i in range(0, len(answers), 2)]
