"""What supply can still be promised to one more payer, read at the moment of deciding.

``POST /mint`` in x402 mode may only charge a payer for a mint that can happen. The number
it decides on is::

    free = remainingMints() at block N
           - committed                      (pending + processing requests, open payments)
           + mined_unrecorded               (in-flight batches whose receipt is in block <= N)

``committed`` is read from PostgreSQL first and the chain second: a mint that lands in
between is then counted both as committed and as taken on chain, which can only refuse
too early, never admit one too many. The batches a worker has sent and the chain has
mined, but the worker has not yet recorded, are found by their receipts at or below the
same block N and counted once (on chain), so the arithmetic is exact while nothing moves.

The chain is read with plain JSON-RPC over httpx (no web3: the enqueue function's cold
start), every call bounded by the caller's ``timeout`` in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eth_hash.auto import keccak

from mintq import config, db, errors
from mintq.settings import QueueSettings

if TYPE_CHECKING:  # imported on first use: free mode never pays for it at cold start
    import httpx

_REMAINING_MINTS = "0x" + keccak(b"remainingMints()")[:4].hex()
#: Receipts looked up per admission at most (in-flight batches times their attempts).
MAX_RECEIPTS = 64

_rpc_client: httpx.Client | None = None


@dataclass(frozen=True)
class Admission:
    """One admission's numbers: mints free for a new payer, the payer's open requests and cap,
    and the block they were read at (the reconciler's log search starts there)."""

    free: int
    payer_open: int
    max_pending: int
    head: int


def admission(conn: db.Conn, cfg: config.Config, payer: str, *, timeout: float) -> Admission:
    """Read the database (then the chain, at one block) and answer how many mints are free.

    Raises ``SupplyUnknown`` (503) when the chain cannot be read within ``timeout`` seconds,
    ``DatabaseError`` when PostgreSQL fails.
    """
    row = db.one(
        conn,
        "x402_admission",
        {"payer": payer, "default_max_pending": QueueSettings().max_pending_per_payer},
    )
    if row is None:
        raise errors.DatabaseError("no admission row")
    inflight = db.rows(conn, "inflight_attempts", {"token": cfg.token_address, "limit": MAX_RECEIPTS})
    remaining, head, mined = _chain_view(cfg, inflight, timeout=timeout)
    return Admission(
        free=remaining - int(row["committed"]) + mined,
        payer_open=int(row["payer_open"]),
        max_pending=int(row["max_pending"]),
        head=head,
    )


def _chain_view(
    cfg: config.Config, inflight: list[dict[str, Any]], *, timeout: float
) -> tuple[int, int, int]:
    """``(remainingMints() at N, N, mints of in-flight batches mined at or below N)``."""
    if not cfg.rpc_url or not cfg.token_address:
        raise errors.ConfigurationError("x402 mode needs MINTQ_RPC_URL and MINTQ_TOKEN_ADDRESS")
    import httpx

    try:
        [height] = _rpc(cfg.rpc_url, [("eth_blockNumber", [])], timeout)
        head = int(height, 16)
        calls: list[tuple[str, list[Any]]] = [
            ("eth_call", [{"to": cfg.token_address, "data": _REMAINING_MINTS}, hex(head)])
        ]
        calls += [("eth_getTransactionReceipt", [row["tx_hash"]]) for row in inflight]
        remaining, *receipts = _rpc(cfg.rpc_url, calls, timeout)
        mined: dict[Any, int] = {}
        for row, receipt in zip(inflight, receipts, strict=True):
            if receipt and int(receipt["status"], 16) == 1 and int(receipt["blockNumber"], 16) <= head:
                mined[row["batch_id"]] = int(row["mint_count"])
        return int(remaining, 16), head, sum(mined.values())
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        raise errors.SupplyUnknown(f"cannot read the remaining supply: {exc}") from exc


def _rpc(url: str, calls: list[tuple[str, list[Any]]], timeout: float) -> list[Any]:
    """One batched JSON-RPC round trip; the results in call order (an error raises ValueError)."""
    global _rpc_client  # noqa: PLW0603 - one pooled client per execution environment
    import httpx

    if _rpc_client is None:
        _rpc_client = httpx.Client()
    batch = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)]
    response = _rpc_client.post(
        url, json=batch, timeout=httpx.Timeout(max(timeout, 0.01), connect=min(max(timeout, 0.01), 3.0))
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
