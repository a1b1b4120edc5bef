"""What operators read: the queue's health, one request, batches, refunds due.

Plain functions over an open connection returning JSON-ready dicts (the ``mintq`` command
renders them as tables or ``--json``). Nothing here writes; ``controls`` does.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from mintq import db, errors, payments, queue
from mintq.addresses import to_checksum
from mintq.settings import QueueSettings

#: the window the drain rate is measured over
DRAIN_WINDOW_SECONDS = 300
#: seconds the signers' chain read may take in all (every signer, one round trip)
CHAIN_READ_SECONDS = 10.0


def _settings(conn: db.Conn) -> QueueSettings:
    return QueueSettings.from_mapping({r["key"]: r["value"] for r in db.rows(conn, "all_settings")})


def _record(value: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = _json(value)
    return out


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json(v) for v in value]
    return value


def stats(conn: db.Conn, *, window_seconds: int = DRAIN_WINDOW_SECONDS) -> dict[str, Any]:
    """The queue at a glance.

    ``counts`` (pending, processing, completed, failed, payers), ``oldest_pending_seconds``,
    ``drain`` (mints and batches confirmed in the last ``window_seconds``, as mints per minute),
    ``inflight`` (every unfinished batch: signer, nonce, status, age in seconds, attempts, the
    latest attempt's fees in wei), ``paused`` / ``api_closed``.
    """
    row = db.one(conn, "queue_stats") or {}
    oldest = row.get("oldest_pending")
    drain = db.one(conn, "drain_rate", {"window_seconds": window_seconds}) or {}
    mints = int(drain.get("mints") or 0)
    settings = _settings(conn)
    return _record(
        {
            "counts": {
                "pending": int(row.get("pending_count") or 0),
                "processing": int(row.get("processing_count") or 0),
                "completed": int(row.get("completed_count") or 0),
                "failed": int(row.get("failed_count") or 0),
                "payers_pending": int(row.get("unique_payers_pending") or 0),
            },
            "oldest_pending_seconds": (
                round((datetime.now(UTC) - oldest).total_seconds(), 1) if oldest is not None else None
            ),
            "drain": {
                "window_seconds": window_seconds,
                "mints": mints,
                "batches": int(drain.get("batches") or 0),
                "mints_per_minute": round(mints * 60 / window_seconds, 1),
            },
            "inflight": [dict(r) for r in db.rows(conn, "inflight_by_signer")],
            "paused": settings.worker_paused,
            "api_closed": settings.api_closed,
        }
    )


def signer_nonces(conn: db.Conn) -> list[dict[str, Any]]:
    """Each signer's highest recorded nonce and highest nonce known mined (for nonce lag)."""
    return [_json(dict(r)) for r in db.rows(conn, "signer_nonces")]


def signers_on_chain(
    rpc_url: str, signers: list[dict[str, Any]], *, timeout: float = CHAIN_READ_SECONDS
) -> list[dict[str, Any]]:
    """Each signer's balance (wei, as text) and nonce lag: the next nonce recorded minus the
    chain's count of mined transactions (``eth_getTransactionCount`` at ``latest``).

    ``signers`` are rows of :func:`signer_nonces`, read in one batched JSON-RPC round trip
    within ``timeout`` seconds in all (``mintq.rpc.signer_accounts``). A node that cannot be
    reached, does not answer in time or answers something unreadable gives every signer
    ``{"signer_address", "error"}`` instead: the queue's figures matter most when the chain is
    in trouble, so they are never lost to it.
    """
    from mintq import rpc  # only this option needs the chain

    addresses = [to_checksum(s["signer_address"]) for s in signers]
    try:
        accounts = rpc.signer_accounts(rpc_url, addresses, timeout=timeout)
    except errors.ChainUnavailable as exc:
        return [{"signer_address": a, "error": f"RPC unreachable: {exc.message}"} for a in addresses]
    out: list[dict[str, Any]] = []
    for signer, address, account in zip(signers, addresses, accounts, strict=True):
        recorded_next = int(signer["highest_recorded"]) + 1 if signer["highest_recorded"] is not None else 0
        out.append(
            {
                "signer_address": address,
                "balance_wei": str(account.balance),
                "chain_nonce": account.mined,
                "recorded_next_nonce": recorded_next,
                "nonce_lag": recorded_next - account.mined,
            }
        )
    return out


def request(conn: db.Conn, queue_id: str) -> dict[str, Any]:
    """One request as the API shows it, plus its batch (id, nonce, status, hash) and tries.

    Raises ``errors.InvalidQueueId`` or ``errors.NotFound``.
    """
    public = queue.item(conn, queue_id)
    internals = db.one(conn, "request_internals", {"id": queue.parse_queue_id(queue_id)})
    return _record(public | {"batch": dict(internals) if internals else None})


def batch(
    conn: db.Conn, *, batch_id: str | None = None, nonce: int | None = None, signer: str | None = None
) -> list[dict[str, Any]]:
    """A batch by id, or the batches at ``nonce`` (of ``signer`` if given), with every attempt.

    Raises ``errors.InvalidRequest`` without an id or nonce, ``errors.NotFound`` if none match.
    """
    if batch_id is None and nonce is None:
        raise errors.InvalidRequest("give a batch id or --nonce")
    ident = None
    if batch_id is not None:
        try:
            ident = uuid.UUID(batch_id)
        except ValueError as exc:
            raise errors.InvalidRequest(f"batch id must be a UUID, not {batch_id[:64]!r}") from exc
    rows = db.rows(conn, "batch_detail", {"id": ident, "nonce": nonce, "signer": signer})
    if not rows:
        raise errors.NotFound("no such batch")
    return [_json(dict(r)) for r in rows]


BATCH_STATUSES = ("signed", "pending", "confirmed", "failed", "dropped")


def batches(conn: db.Conn, *, status: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """The newest batches, of one ``status`` if given (``BATCH_STATUSES``)."""
    if status is not None and status not in BATCH_STATUSES:
        raise errors.InvalidRequest(f"status must be one of {', '.join(BATCH_STATUSES)}")
    return [_json(dict(r)) for r in db.rows(conn, "batch_listing", {"status": status, "limit": limit})]


def refunds(conn: db.Conn, *, limit: int = 1000) -> list[dict[str, Any]]:
    """Paid requests that will never be minted: payer, amount (asset units), asset, network,
    the settlement transaction and the reason."""
    return [_json(dict(r)) for r in payments.refunds_due(conn, limit=limit)]
