"""What the worker reports: one ``Telemetry.event`` call writes the structured log line,
the CloudWatch metric and the run summary's counter for one thing that happened."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger

from mintq import metrics

logger = Logger(child=True)

_QUEUE_STATS = (
    "pending_count",
    "processing_count",
    "completed_count",
    "failed_count",
    "unique_payers_pending",
)


@dataclass
class RunSummary:
    """What one run (or one invocation's runs, added up) did; counts of batches and requests."""

    locked: bool = False
    cycles: int = 0
    batches_sent: int = 0
    batches_confirmed: int = 0
    batches_reverted: int = 0
    batches_dropped: int = 0
    batches_replaced: int = 0
    mints_completed: int = 0
    requests_failed: int = 0
    faults: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The summary as a JSON-able dict (field name → count, ``locked`` a bool)."""
        return asdict(self)

    def add(self, other: RunSummary) -> None:
        """Add ``other``'s counts into this one (``locked`` if either was)."""
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            setattr(self, f.name, (mine or theirs) if isinstance(mine, bool) else mine + theirs)


class Telemetry:
    """The run summary of one worker and the calls that feed it, the log and the metrics."""

    def __init__(self) -> None:
        self.summary = RunSummary()

    def reset(self) -> RunSummary:
        """Start a new run's summary and return it."""
        self.summary = RunSummary()
        return self.summary

    def event(
        self,
        action: str,
        message: str,
        *,
        level: int = logging.INFO,
        metric: Mapping[str, float] | None = None,
        summary: Mapping[str, int] | None = None,
        **fields: Any,
    ) -> None:
        """Log ``message`` at ``level`` with ``action`` and ``fields``; add each of ``metric``
        (name → value) to its CloudWatch count and each of ``summary`` (``RunSummary`` field →
        value) to the run summary."""
        for name, value in (summary or {}).items():
            setattr(self.summary, name, getattr(self.summary, name) + value)
        for name, amount in (metric or {}).items():
            metrics.count(name, amount)
        write = {logging.ERROR: logger.error, logging.WARNING: logger.warning}.get(level, logger.info)
        write(message, extra={"action": action, **fields})

    def queue_stats(self, probe: Mapping[str, Any]) -> None:
        """The queue's gauges and stats line from a cycle's probe (``cycle_probe``). Sampled
        every cycle, so a missing datapoint means the worker is not running."""
        metrics.gauge("QueuePending", probe.get("pending_count") or 0)
        oldest = probe.get("oldest_pending")
        metrics.gauge("OldestPendingSeconds", _age_seconds(oldest), seconds=True)
        stats: dict[str, Any] = {k: probe.get(k) for k in _QUEUE_STATS}
        self.event("queue_stats", "queue stats", **stats, oldest_pending=str(oldest) if oldest else None)


def _age_seconds(since: datetime | None) -> float:
    return 0.0 if since is None else max(0.0, (datetime.now(UTC) - since).total_seconds())
