"""Batches and their attempts: the states, the records, and the only functions that move them.

A batch is one nonce of one signer; an attempt is one signed transaction at that nonce
(replacements add attempts). The state machine (``docs/architecture.md`` draws it)::

    signed ──mark_sent──▶ pending
    signed | pending ──complete──▶ confirmed   (a receipt with status 1)
    signed | pending ──revert────▶ failed      (a receipt with status 0)
    signed | pending ──drop──────▶ dropped     (its nonce used by another transaction)

Each move is one named query guarded by ``WHERE status = expected``; the functions here
report whether it moved a row. Where a miss can only be a bug (a request claimed in this
very transaction is no longer ``processing``) they raise ``errors.InvalidTransition``; where a miss
is expected (a batch already marked sent, already finalised by an earlier crash's run)
they return False.
"""

from __future__ import annotations

import contextlib
import enum
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mintq import db, errors
from mintq.chain import Receipt
from mintq.units import Wei


class BatchStatus(enum.StrEnum):
    """The SQL enum ``batch_status``."""

    SIGNED = "signed"
    PENDING = "pending"
    CONFIRMED = "confirmed"
    FAILED = "failed"
    DROPPED = "dropped"


class AttemptStatus(enum.StrEnum):
    """The SQL enum ``attempt_status``."""

    SENT = "sent"
    MINED = "mined"
    REPLACED = "replaced"


#: Every move a batch may make; the repository functions below are the only ones making them.
TRANSITIONS: Mapping[BatchStatus, frozenset[BatchStatus]] = {
    BatchStatus.SIGNED: frozenset(
        {BatchStatus.PENDING, BatchStatus.CONFIRMED, BatchStatus.FAILED, BatchStatus.DROPPED}
    ),
    BatchStatus.PENDING: frozenset({BatchStatus.CONFIRMED, BatchStatus.FAILED, BatchStatus.DROPPED}),
    BatchStatus.CONFIRMED: frozenset(),
    BatchStatus.FAILED: frozenset(),
    BatchStatus.DROPPED: frozenset(),
}
#: A batch in one of these states still owns its nonce and its items.
UNFINISHED = frozenset(s for s, moves in TRANSITIONS.items() if moves)


@dataclass(frozen=True, kw_only=True)
class Attempt:
    """One signed transaction of a batch; fees in wei, ``age_seconds`` since it was recorded."""

    tx_hash: str
    raw_tx: bytes
    number: int
    max_fee_per_gas: Wei
    max_priority_fee_per_gas: Wei
    age_seconds: float

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Attempt:
        return cls(
            tx_hash=row["tx_hash"],
            raw_tx=bytes.fromhex(row["raw_tx"]),
            number=int(row["attempt"]),
            max_fee_per_gas=Wei(int(row["max_fee_per_gas"])),
            max_priority_fee_per_gas=Wei(int(row["max_priority_fee_per_gas"])),
            age_seconds=float(row["age_seconds"]),
        )


@dataclass(frozen=True, kw_only=True)
class Batch:
    """An unfinished batch as ``inflight_batches`` reads it; ``attempts`` oldest first."""

    id: uuid.UUID
    nonce: int
    status: BatchStatus
    mint_count: int
    attempts: tuple[Attempt, ...]

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Batch:
        return cls(
            id=row["id"],
            nonce=int(row["nonce"]),
            status=BatchStatus(row["status"]),
            mint_count=int(row["mint_count"]),
            attempts=tuple(Attempt.from_row(a) for a in row["attempts"]),
        )

    @property
    def latest(self) -> Attempt:
        return self.attempts[-1]

    @property
    def tx_hash(self) -> str:
        """The latest attempt's hash (``batch_mints.batch_tx_hash``)."""
        return self.latest.tx_hash

    def with_attempt(self, attempt: Attempt) -> Batch:
        """This batch after ``record_replacement`` added ``attempt``."""
        return Batch(
            id=self.id,
            nonce=self.nonce,
            status=self.status,
            mint_count=self.mint_count,
            attempts=(*self.attempts, attempt),
        )


@dataclass(frozen=True)
class Claimed:
    """A request claimed into a batch being built; ``queue_position`` is its ticket."""

    id: uuid.UUID
    payer_address: str
    queue_position: int


@dataclass(frozen=True)
class Finalised:
    """What finalising a mined batch moved: ``batches`` is 0 when it was already final."""

    batches: int
    completed: int = 0
    requeued: int = 0
    failed: int = 0


# --- the repository: every statement that moves a batch or its requests ---------------------


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


@dataclass(frozen=True, kw_only=True)
class NewBatch:
    """A signed batch to record before it is broadcast (the write-ahead record)."""

    id: uuid.UUID
    chain_id: int
    signer: str
    token: str
    nonce: int
    tx_hash: str
    raw_tx: bytes
    mint_count: int
    gas_limit: int
    max_fee_per_gas: Wei
    max_priority_fee_per_gas: Wei
    amount_per_mint: int | None


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
    """Add ``attempt`` at the batch's nonce (before it is broadcast); False when the batch
    was finished meanwhile (the attempt is still recorded: its bytes may be mined)."""
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
