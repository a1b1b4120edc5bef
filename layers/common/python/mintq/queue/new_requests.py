"""Joining the line: a free request (``enqueue``), a settled payment's mint (``insert_paid``),
and the answer a request got (``Enqueued``), with its place and wait estimate."""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from mintq import db, errors
from mintq.config import PaymentMode
from mintq.eta import Throughput, estimate
from mintq.queue import idempotency
from mintq.settings import QueueSettings


@dataclass(frozen=True, kw_only=True)
class Enqueued:
    """``POST /mint``'s facts: the request's id, its place in line (1 = next), the payer
    (EIP-55), the wait estimate in seconds and the payment mode (``free`` / ``x402``)."""

    queue_id: str
    queue_position: int
    payer: str
    estimated_wait_seconds: int
    payment_type: str


def enqueue(conn: db.Conn, *, payer: str, payment_type: str, idempotency_key: str | None = None) -> Enqueued:
    """Commit one pending request for ``payer`` (already validated) and place it in line.

    With an ``idempotency_key`` the same request returns its first answer again, and a
    different request under the same key is refused (``errors.IdempotencyConflict``); the key,
    the row and the stored answer commit together, so a crash can never leave one without the
    others. Raises ``errors.PayerLimitReached`` at the payer's cap, ``errors.ApiClosed`` while
    operators keep the API closed.
    """
    if idempotency_key is None:
        return _insert(conn, payer=payer, payment_type=payment_type)
    request_hash = idempotency.request_hash(payer, payment_type)
    with db.transaction(conn):
        previous = idempotency.claim(conn, idempotency_key, request_hash)
        if previous is not None:
            return Enqueued(**previous)
        queued = _insert(conn, payer=payer, payment_type=payment_type)
        db.execute(
            conn,
            "store_idempotent_response",
            {
                "key": idempotency_key,
                "queue_id": uuid.UUID(queued.queue_id),
                "status_code": 202,
                "response": Jsonb(dataclasses.asdict(queued)),
            },
        )
        return queued


def _insert(conn: db.Conn, *, payer: str, payment_type: str) -> Enqueued:
    default_cap = QueueSettings.max_pending_per_payer
    row = db.one(
        conn,
        "enqueue_request",
        {"payer": payer, "payment_type": payment_type, "default_max_pending": default_cap},
    )
    if row is not None and row["api_closed"]:
        raise errors.ApiClosed()
    if row is None or row["id"] is None:
        limit = row["max_pending"] if row else default_cap
        raise errors.PayerLimitReached(
            f"{payer} already has {limit} pending requests; wait for them to be minted"
        )
    return _answer(row, payer=payer, payment_type=payment_type)


def insert_paid(
    conn: db.Conn,
    *,
    queue_id: uuid.UUID,
    payer: str,
    payment_id: uuid.UUID,
    payment_tx_hash: str | None,
    tx_hash_bytes32: str,
) -> Enqueued:
    """Queue a settled payment's mint inside the caller's transaction, under the queueId the
    payment reserved. No per-payer cap here: it was checked before the payer was charged,
    and a paid request is never refused."""
    row = db.one(
        conn,
        "enqueue_paid_request",
        {
            "id": queue_id,
            "payer": payer,
            "payment_type": PaymentMode.X402.value,
            "payment_id": payment_id,
            "payment_tx_hash": payment_tx_hash,
            "tx_hash_bytes32": tx_hash_bytes32,
        },
    )
    if row is None:
        raise errors.InvalidTransition(f"payment {payment_id} could not be queued")
    return _answer(row, payer=payer, payment_type=PaymentMode.X402.value)


def paid_request(conn: db.Conn, queue_id: uuid.UUID, payer: str) -> Enqueued | None:
    """The request a payment bought (a replay's answer), or None if it is not queued yet."""
    row = db.one(conn, "paid_request", {"queue_id": queue_id})
    if row is None:
        return None
    return _answer(row, payer=payer, payment_type=str(row["payment_type"]))


def _answer(row: dict[str, Any], *, payer: str, payment_type: str) -> Enqueued:
    settings = QueueSettings.from_mapping(
        {"max_batch_size": row["max_batch_size"], "batch_interval_seconds": row["batch_interval_seconds"]}
    )
    position = int(row["queue_position"] or 0)
    return Enqueued(
        queue_id=str(row["id"]),
        queue_position=position,
        payer=payer,
        estimated_wait_seconds=estimate(position, settings, Throughput.from_row(row)),
        payment_type=payment_type,
    )
