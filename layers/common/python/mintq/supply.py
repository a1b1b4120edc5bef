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

The chain is read by ``mintq.rpc.supply_view`` (plain JSON-RPC, no web3: the enqueue
function's cold start), every call bounded by the caller's ``timeout`` in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

from mintq import config, db, errors, rpc
from mintq.settings import QueueSettings

#: Receipts looked up per admission at most (in-flight batches times their attempts).
MAX_RECEIPTS = 64


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
    ``DatabaseError`` when PostgreSQL fails, ``ConfigurationError`` without an RPC URL or
    token address.
    """
    row = db.one(
        conn,
        "x402_admission",
        {"payer": payer, "default_max_pending": QueueSettings().max_pending_per_payer},
    )
    if row is None:
        raise errors.DatabaseError("no admission row")
    inflight = db.rows(conn, "inflight_attempts", {"token": cfg.token_address, "limit": MAX_RECEIPTS})
    if not cfg.rpc_url or not cfg.token_address:
        raise errors.ConfigurationError("x402 mode needs MINTQ_RPC_URL and MINTQ_TOKEN_ADDRESS")
    try:
        chain = rpc.supply_view(cfg.rpc_url, cfg.token_address, inflight, timeout=timeout)
    except errors.ChainUnavailable as exc:
        raise errors.SupplyUnknown(f"cannot read the remaining supply: {exc}") from exc
    return Admission(
        free=chain.remaining - int(row["committed"]) + chain.mined,
        payer_open=int(row["payer_open"]),
        max_pending=int(row["max_pending"]),
        head=chain.head,
    )
