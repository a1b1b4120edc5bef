"""``queue_stats`` counted the slow way: a full scan of ``mint_queue``, to hold the O(1) counters to."""

from __future__ import annotations

from typing import Any

_COUNTS = (
    "count(*) FILTER (WHERE status = 'pending') AS pending_count,"
    " count(*) FILTER (WHERE status = 'processing') AS processing_count,"
    " count(*) FILTER (WHERE status = 'completed') AS completed_count,"
    " count(*) FILTER (WHERE status = 'failed') AS failed_count,"
    " count(DISTINCT payer_address) FILTER (WHERE status = 'pending') AS unique_payers_pending"
)
_OLDEST = (
    "(SELECT created_at FROM mint_queue WHERE status = 'pending' ORDER BY queue_position LIMIT 1)"
    " AS oldest_pending"
)


def counted_by_scan(conn: Any, *, oldest_pending: bool = False) -> dict[str, Any]:
    """The view's counters (and, with ``oldest_pending``, its head-of-line time) from a full scan."""
    columns = f"{_COUNTS}, {_OLDEST}" if oldest_pending else _COUNTS
    row: dict[str, Any] = conn.execute(f"SELECT {columns} FROM mint_queue").fetchone()
    return row
