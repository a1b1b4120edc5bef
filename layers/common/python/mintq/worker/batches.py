"""Batches and their attempts: the states, the allowed moves and the records.

A batch is one nonce of one signer; an attempt is one signed transaction at that nonce
(replacements add attempts). The state machine (``docs/architecture.md`` draws it)::

    signed ──mark_sent──▶ pending
    signed | pending ──complete──▶ confirmed   (a receipt with status 1)
    signed | pending ──revert────▶ failed      (a receipt with status 0)
    signed | pending ──drop──────▶ dropped     (its nonce used by another transaction)

Each move is one named query guarded by ``WHERE status = expected``, made only by the
functions of ``mintq.worker.repository``.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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
        """An attempt from ``inflight_batches``' JSON (fees are JSON integers, ``raw_tx`` hex)."""
        return cls(
            tx_hash=row["tx_hash"],
            raw_tx=bytes.fromhex(row["raw_tx"]),
            number=row["attempt"],
            max_fee_per_gas=_wei(row["max_fee_per_gas"]),
            max_priority_fee_per_gas=_wei(row["max_priority_fee_per_gas"]),
            age_seconds=float(row["age_seconds"]),
        )


def _wei(value: object) -> Wei:
    """A fee read back from PostgreSQL: a whole number of wei, never text or a float."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"a fee in wei must be a JSON integer, got {value!r}")
    return Wei(value)


@dataclass(frozen=True, kw_only=True)
class Batch:
    """An unfinished batch as ``inflight_batches`` reads it: one nonce of one signer,
    ``mint_count`` requests, signed with ``gas_limit`` gas; ``attempts`` oldest first."""

    id: uuid.UUID
    nonce: int
    status: BatchStatus
    mint_count: int
    gas_limit: int
    attempts: tuple[Attempt, ...]

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Batch:
        """A batch from an ``inflight_batches`` row."""
        return cls(
            id=row["id"],
            nonce=row["nonce"],
            status=BatchStatus(row["status"]),
            mint_count=row["mint_count"],
            gas_limit=row["gas_limit"],
            attempts=tuple(Attempt.from_row(a) for a in row["attempts"]),
        )

    @property
    def latest(self) -> Attempt:
        """The newest attempt: the one sent and resent."""
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
            gas_limit=self.gas_limit,
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
