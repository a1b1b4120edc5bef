"""Retention: finished queue rows are deleted once older than ``retention_days``.

Completed rows are answered from ``mint_history`` afterwards (it is never pruned); failed
rows go for good, except a paid request's, which stays listed in ``refunds_due``. Rows go
oldest first in chunks of a few thousand, each its own short transaction that skips rows
another session holds, so the enqueue path never waits on it, and the statement triggers
behind ``queue_stats`` keep the counters exact as rows go.

Runs three ways: the daily ``RetentionFunction`` schedule, the local stack's worker
housekeeping (``RetentionJob``), and ``mintq cleanup`` by hand.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from aws_lambda_powertools import Logger

from mintq import db, metrics
from mintq.settings import QueueSettings

#: rows per delete statement: small enough that each transaction is short
CHUNK_ROWS = 5000
#: rest between chunks, as a multiple of the chunk's own time (1: the job uses at most half
#: of one backend's time, so on a small instance enqueue latency stays within 2x during it)
PAUSE_RATIO = 1.0
SECONDS_PER_DAY = 86_400

logger = Logger(child=True)


@dataclass(frozen=True, kw_only=True)
class Expired:
    """What retention would delete now: counts of completed and failed rows."""

    completed: int
    failed: int

    @property
    def total(self) -> int:
        return self.completed + self.failed


def count_expired(conn: db.Conn, *, older_than_days: float) -> Expired:
    """Rows finished more than ``older_than_days`` ago that retention may delete."""
    row = db.one(conn, "count_expired_queue_rows", {"retention_seconds": older_than_days * SECONDS_PER_DAY})
    return Expired(completed=int(row["completed"] if row else 0), failed=int(row["failed"] if row else 0))


def delete_expired(
    conn: db.Conn,
    *,
    older_than_days: float,
    chunk_rows: int = CHUNK_ROWS,
    max_chunks: int | None = None,
    deadline: float | None = None,
    pause_ratio: float = PAUSE_RATIO,
    on_chunk: Callable[[int], object] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Delete expired rows chunk by chunk until none are left, ``max_chunks`` ran, or the
    ``deadline`` (a ``time.monotonic()`` value) has passed.

    ``conn`` must be in autocommit mode (every connection from ``db.connect`` is), so each
    chunk commits on its own. After each chunk it rests ``pause_ratio`` times as long as the
    chunk took, leaving the database (and its CPUs) to the requests. ``on_chunk`` is called
    with each chunk's count (progress bars). Returns the number of rows deleted. Raises
    ``errors.DatabaseError``.
    """
    deleted = 0
    chunks = 0
    params = {"retention_seconds": older_than_days * SECONDS_PER_DAY, "limit": chunk_rows}
    while (max_chunks is None or chunks < max_chunks) and (deadline is None or time.monotonic() < deadline):
        started = time.monotonic()
        n = db.execute(conn, "delete_expired_queue_rows", params)
        took = time.monotonic() - started
        chunks += 1
        deleted += n
        if on_chunk is not None:
            on_chunk(n)
        if n < chunk_rows:
            break
        if pause_ratio > 0:
            sleep(took * pause_ratio)
    return deleted


class RetentionJob:
    """Batch-worker housekeeping: run retention once a day (and at the first cycle), a bounded
    number of chunks per cycle so no cycle stalls; idle cycles in between cost nothing."""

    def __init__(
        self,
        *,
        every_seconds: float = SECONDS_PER_DAY,
        chunk_rows: int = CHUNK_ROWS,
        max_chunks_per_cycle: int = 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.every_seconds = every_seconds
        self.chunk_rows = chunk_rows
        self.max_chunks_per_cycle = max_chunks_per_cycle
        self.clock = clock
        self._next: float | None = None

    def __call__(self, conn: db.Conn, settings: QueueSettings) -> int:
        now = self.clock()
        if self._next is not None and now < self._next:
            return 0
        deleted = delete_expired(
            conn,
            older_than_days=settings.retention_days,
            chunk_rows=self.chunk_rows,
            max_chunks=self.max_chunks_per_cycle,
        )
        # A backlog bigger than one cycle's share continues next cycle; otherwise, tomorrow.
        more = deleted >= self.chunk_rows * self.max_chunks_per_cycle
        self._next = now if more else now + self.every_seconds
        return deleted


def run_invocation(remaining_ms: int, *, safety_seconds: float = 10.0) -> dict[str, int | bool]:
    """The daily ``RetentionFunction``'s domain half: delete until done or shortly before the
    invocation's timeout (what is left waits for tomorrow). Returns ``{"deleted", "finished"}``."""
    deadline = time.monotonic() + remaining_ms / 1000 - safety_seconds
    conn = db.connect(application_name="mintq-retention")
    try:
        rows = db.rows(conn, "all_settings")
        settings = QueueSettings.from_mapping({r["key"]: r["value"] for r in rows})
        deleted = delete_expired(conn, older_than_days=settings.retention_days, deadline=deadline)
        finished = count_expired(conn, older_than_days=settings.retention_days).total == 0
    finally:
        conn.close()
    metrics.count("RetentionDeleted", deleted)
    logger.info(
        "retention ran",
        extra={
            "action": "retention",
            "deleted": deleted,
            "finished": finished,
            "retention_days": settings.retention_days,
        },
    )
    return {"deleted": deleted, "finished": finished}
