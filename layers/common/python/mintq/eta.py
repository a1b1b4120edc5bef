"""Wait estimates: from measured throughput when the queue has recent history, else nominal.

``estimatedWaitSeconds`` in the enqueue answer, the item answer and ``GET /queue/status``
all come from :func:`estimate`. The measurement is one row (``mint_throughput``, migration
0012) that PostgreSQL rewrites whenever the worker confirms a batch, so reading it costs
the enqueue a join with a single row, whatever the queue's length or history.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mintq.settings import QueueSettings


@dataclass(frozen=True, kw_only=True)
class Throughput:
    """What the recent window of confirmed batches measured.

    ``mints_per_second``: mints confirmed per second over the window (default the last
    300 s); ``confirm_seconds``: a batch's mean time from broadcast to recorded receipt;
    ``mints_per_batch``: the largest batch confirmed in the window; ``batch_period_seconds``:
    the mean time between two confirmations (both None from a row written before migration
    0015: the estimate then treats the line as a continuous flow).
    """

    mints_per_second: float
    confirm_seconds: float
    mints_per_batch: float | None = None
    batch_period_seconds: float | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any] | None) -> Throughput | None:
        """The measurement in a row with ``mints_per_second`` / ``confirm_seconds`` /
        ``mints_per_batch``, or None when nothing confirmed within the window (NULLs) or the
        rate is not positive."""
        if row is None:
            return None
        rate, confirm = row.get("mints_per_second"), row.get("confirm_seconds")
        if rate is None or float(rate) <= 0:
            return None
        per_batch = float(row.get("mints_per_batch") or 0.0)
        period = float(row.get("batch_period_seconds") or 0.0)
        batches = per_batch >= 1 and period > 0  # a size and a period, or neither
        return cls(
            mints_per_second=float(rate),
            confirm_seconds=max(float(confirm or 0.0), 0.0),
            mints_per_batch=per_batch if batches else None,
            batch_period_seconds=period if batches else None,
        )


def estimate_wait_seconds(position: int, batch_size: int, interval_seconds: float) -> int:
    """Nominal seconds until the batch that carries ``position`` starts: one interval per batch ahead."""
    batches = math.ceil(max(position, 1) / max(batch_size, 1))
    return math.ceil(batches * interval_seconds)


def estimate(position: int, settings: QueueSettings, throughput: Throughput | None) -> int:
    """Seconds until the request at ``position`` (1 = next) is minted; 0 when not in line.

    Measured, in whole batches (a request is minted when the batch carrying it confirms, so
    all in one batch wait alike): with ``b = mints_per_batch`` and ``T = batch_period_seconds``
    the request rides batch ``k = ceil(position / b)``; a batch leaves every ``T`` seconds, the
    first on average ``T / 2`` after the request arrived, and confirms ``confirm_seconds``
    later: ``(k - 0.5) * T + confirm_seconds``. Without those (a row from before migration
    0015), the line is a flow: ``position / mints_per_second + confirm_seconds``. Without a
    measurement: the nominal estimate from ``max_batch_size`` and ``batch_interval_seconds``.
    """
    if position <= 0:
        return 0
    if throughput is None:
        return estimate_wait_seconds(position, settings.max_batch_size, settings.batch_interval_seconds)
    per_batch, period = throughput.mints_per_batch, throughput.batch_period_seconds
    if per_batch is None or period is None:
        return math.ceil(position / throughput.mints_per_second + throughput.confirm_seconds)
    batches = math.ceil(position / per_batch)
    return math.ceil((batches - 0.5) * period + throughput.confirm_seconds)
