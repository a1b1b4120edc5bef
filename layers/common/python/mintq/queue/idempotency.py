"""Idempotency-Key: the key's rules, claiming it for a request, and pruning old keys.

A key is kept at least ``IDEMPOTENCY_MIN_RETENTION_HOURS`` whatever the setting says: clients
are promised their first answer for that long.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

from mintq import db, errors
from mintq.settings import MIN_IDEMPOTENCY_RETENTION_HOURS, QueueSettings

#: Clients are promised their Idempotency-Key answers for this long, whatever the setting says.
IDEMPOTENCY_MIN_RETENTION_HOURS = MIN_IDEMPOTENCY_RETENTION_HOURS


def parse_idempotency_key(value: str | None) -> str | None:
    """The header's value if it is 1 to 255 printable ASCII characters (None if absent);
    raises ``errors.InvalidRequest`` otherwise."""
    if value is None:
        return None
    if not 1 <= len(value) <= 255 or not value.isascii() or not value.isprintable():
        raise errors.InvalidRequest("Idempotency-Key must be 1 to 255 printable ASCII characters")
    return value


def request_hash(payer: str, payment_type: str) -> str:
    """The sha256 (hex) a key's request is recognised by."""
    return hashlib.sha256(json.dumps([payer, payment_type]).encode()).hexdigest()


def claim(conn: db.Conn, key: str, request_hash: str) -> dict[str, Any] | None:
    """Take ``key`` for a new request (None: the caller queues it and stores its answer in the
    same transaction), or the stored answer of the same request under it. Raises
    ``errors.IdempotencyConflict`` when the key was used for another request (or its first
    request has not answered yet)."""
    if db.one(conn, "claim_idempotency_key", {"key": key, "request_hash": request_hash}) is not None:
        return None
    previous = db.one(conn, "idempotent_response", {"key": key})
    if previous is None or previous["request_hash"] != request_hash or previous["response"] is None:
        raise errors.IdempotencyConflict(
            "this Idempotency-Key was already used for a different request; use a new key"
        )
    answer: dict[str, Any] = previous["response"]
    return answer


def prune_idempotency_keys(conn: db.Conn, *, retention_hours: float, limit: int = 5000) -> int:
    """Delete up to ``limit`` keys older than the retention (floored at 24 h); the count deleted."""
    hours = max(retention_hours, IDEMPOTENCY_MIN_RETENTION_HOURS)
    return db.execute(conn, "prune_idempotency_keys", {"retention_seconds": hours * 3600, "limit": limit})


class IdempotencyKeyPruner:
    """Batch-worker housekeeping: prune expired idempotency keys every few minutes, in slices
    small enough that no cycle stalls, and skip entirely in between so idle cycles stay one query."""

    def __init__(
        self,
        *,
        every_seconds: float = 300,
        slice_rows: int = 5000,
        max_slices: int = 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.every_seconds = every_seconds
        self.slice_rows = slice_rows
        self.max_slices = max_slices
        self.clock = clock
        self._last: float | None = None

    def __call__(self, conn: db.Conn, settings: QueueSettings) -> int:
        now = self.clock()
        if self._last is not None and now - self._last < self.every_seconds:
            return 0
        self._last = now
        pruned = 0
        for _ in range(self.max_slices):
            deleted = prune_idempotency_keys(
                conn, retention_hours=settings.idempotency_key_retention_hours, limit=self.slice_rows
            )
            pruned += deleted
            if deleted < self.slice_rows:
                break
        return pruned
