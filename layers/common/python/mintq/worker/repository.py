"""The worker's repository: the only functions that move a batch or its requests, and the
read of a signer's unfinished batches. No SQL text leaves this module (the statements are
named queries in ``mintq/sql/queries.sql``).

Each move is one named query guarded by ``WHERE status = expected`` and reports whether it
moved a row. Where a miss can only be a bug (a request claimed in this very transaction is
no longer ``processing``) it raises ``errors.InvalidTransition``; where a miss is expected
(a batch already marked sent, already finalised by an earlier crash's run) it returns False
or a count of 0. Fees are in wei (``Wei``), gas in gas units. Every function raises
``errors.DatabaseError`` when PostgreSQL fails.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from mintq import db, errors
from mintq.chain import Receipt
from mintq.worker.batches import Attempt, Batch, Claimed, Finalised, NewBatch


@contextlib.contextmanager
def claiming(conn: db.Conn, *, limit: int, batch_id: uuid.UUID) -> Iterator[list[Claimed]]:
    """One transaction that claims up to ``limit`` pending requests (the head of the line, in
    line order) into ``batch_id`` and yields them; the batch is recorded inside it. As it
    commits, the claim cursor moves past them (last: see ``advance_claim_cursor``). An
    exception rolls everything back: the requests are pending again."""
    with db.transaction(conn):
        rows = db.rows(conn, "claim_requests", {"limit": limit, "batch_id": batch_id})
        items = sorted((Claimed(r["id"], r["payer_address"], r["queue_position"]) for r in rows), key=_place)
        yield items
        if items:
            db.execute(conn, "advance_claim_cursor", {"position": items[-1].queue_position})


def _place(item: Claimed) -> int:
    return item.queue_position


def _expect(moved: int, wanted: int, what: str) -> None:
    if moved != wanted:
        raise errors.InvalidTransition(f"{what}: {moved} of {wanted} claimed requests were still processing")


def release(conn: db.Conn, items: Sequence[Claimed]) -> None:
    """Put requests claimed in the open transaction back in line, uncharged."""
    if items:
        moved = db.execute(conn, "release_requests", {"ids": [i.id for i in items]})
        _expect(moved, len(items), "release")


def fail(conn: db.Conn, items: Sequence[Claimed], reason: str) -> None:
    """Fail requests claimed in the open transaction for good, with ``reason``."""
    if items:
        moved = db.execute(conn, "fail_requests", {"ids": [i.id for i in items], "reason": reason})
        _expect(moved, len(items), "fail")


def insert_signed(conn: db.Conn, new: NewBatch) -> None:
    """Record ``new`` as ``signed`` with its first attempt (in the caller's transaction)."""
    fees = {"max_fee_per_gas": new.max_fee_per_gas, "max_priority_fee_per_gas": new.max_priority_fee_per_gas}
    db.execute(
        conn,
        "insert_batch",
        {
            "id": new.id,
            "tx_hash": new.tx_hash,
            "mint_count": new.mint_count,
            "chain_id": new.chain_id,
            "signer": new.signer,
            "token": new.token,
            "nonce": new.nonce,
            "gas_limit": new.gas_limit,
            "amount_per_mint": new.amount_per_mint,
            **fees,
        },
    )
    db.execute(
        conn,
        "insert_attempt",
        {"tx_hash": new.tx_hash, "batch_id": new.id, "attempt": 1, "raw_tx": new.raw_tx.hex(), **fees},
    )


def mark_sent(conn: db.Conn, batch_id: uuid.UUID) -> bool:
    """signed → pending; False when it was already pending."""
    return db.execute(conn, "mark_batch_sent", {"id": batch_id}) > 0


def _receipt_params(batch_id: uuid.UUID, receipt: Receipt) -> dict[str, Any]:
    return {
        "batch_id": batch_id,
        "tx_hash": receipt.tx_hash,
        "block_number": receipt.block_number,
        "gas_used": receipt.gas_used,
        "effective_gas_price": receipt.effective_gas_price,
    }


def complete(conn: db.Conn, batch_id: uuid.UUID, receipt: Receipt) -> Finalised:
    """→ confirmed, its requests completed and archived to ``mint_history``."""
    row = db.one(conn, "complete_batch", _receipt_params(batch_id, receipt)) or {}
    return Finalised(int(row.get("batches") or 0), completed=int(row.get("completed") or 0))


def revert(
    conn: db.Conn, batch_id: uuid.UUID, receipt: Receipt, *, reason: str, max_attempts: int
) -> Finalised:
    """→ failed; each request charged one attempt: back in line, or failed at ``max_attempts``."""
    params = {**_receipt_params(batch_id, receipt), "reason": reason, "max_attempts": max_attempts}
    row = db.one(conn, "revert_batch", params) or {}
    return Finalised(
        int(row.get("batches") or 0),
        requeued=int(row.get("requeued") or 0),
        failed=int(row.get("failed") or 0),
    )


def drop(conn: db.Conn, batch_id: uuid.UUID, reason: str) -> int:
    """→ dropped, its requests back in line uncharged; returns how many went back."""
    return db.execute(conn, "drop_batch", {"batch_id": batch_id, "reason": reason})


def record_replacement(conn: db.Conn, batch: Batch, attempt: Attempt) -> bool:
    """Add ``attempt`` at the batch's nonce (before it is broadcast; one statement, atomic on
    its own); False when the batch was finished meanwhile (the attempt is still recorded: its
    bytes may be mined)."""
    params = {
        "batch_id": batch.id,
        "tx_hash": attempt.tx_hash,
        "attempt": attempt.number,
        "raw_tx": attempt.raw_tx.hex(),
        "max_fee_per_gas": attempt.max_fee_per_gas,
        "max_priority_fee_per_gas": attempt.max_priority_fee_per_gas,
    }
    return db.execute(conn, "record_replacement", params) > 0


# --- reads ------------------------------------------------------------------------------


def inflight(conn: db.Conn, *, chain_id: int, signer: str, batch_id: uuid.UUID | None = None) -> list[Batch]:
    """The signer's unfinished batches (or just ``batch_id``), lowest nonce first."""
    rows = db.rows(conn, "inflight_batches", {"chain_id": chain_id, "signer": signer, "batch_id": batch_id})
    return [Batch.from_row(r) for r in rows]
