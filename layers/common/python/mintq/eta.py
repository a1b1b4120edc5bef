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
    300 s); ``confirm_seconds``: a batch's mean time from broadcast to recorded receipt.
    """

    mints_per_second: float
    confirm_seconds: float

    @classmethod
    def from_row(cls, row: Mapping[str, Any] | None) -> Throughput | None:
        """The measurement in a row with ``mints_per_second`` / ``confirm_seconds``, or None
        when nothing confirmed within the window (both NULL) or the rate is not positive."""
        if row is None:
            return None
        rate, confirm = row.get("mints_per_second"), row.get("confirm_seconds")
        if rate is None or float(rate) <= 0:
            return None
        return cls(mints_per_second=float(rate), confirm_seconds=max(float(confirm or 0.0), 0.0))


def estimate_wait_seconds(position: int, batch_size: int, interval_seconds: float) -> int:
    """Nominal seconds until the batch that carries ``position`` starts: one interval per batch ahead."""
    batches = math.ceil(max(position, 1) / max(batch_size, 1))
    return math.ceil(batches * interval_seconds)


def estimate(position: int, settings: QueueSettings, throughput: Throughput | None) -> int:
    """Seconds until the request at ``position`` (1 = next) is minted; 0 when not in line.

    Measured: ``position / mints_per_second + confirm_seconds`` (the line ahead drains at the
    measured rate, then one batch confirms). Without a measurement: the nominal estimate
    from ``max_batch_size`` and ``batch_interval_seconds``.
    """
    if position <= 0:
        return 0
    if throughput is None:
        return estimate_wait_seconds(position, settings.max_batch_size, settings.batch_interval_seconds)
    return math.ceil(position / throughput.mints_per_second + throughput.confirm_seconds)
