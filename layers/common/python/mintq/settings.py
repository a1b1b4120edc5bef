"""Runtime settings from the ``system_settings`` table, re-read every batch cycle.

Operators change behaviour with plain SQL (``UPDATE system_settings SET value = '5'
WHERE key = 'batch_interval_seconds'``); the next cycle picks it up. A value that does
not parse falls back to its default and is reported, so one typo never stops the queue.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class QueueSettings:
    batch_interval_seconds: float = 10
    max_batch_size: int = 50
    retry_max_attempts: int = 3
    max_pending_per_payer: int = 10
    receipt_wait_seconds: float = 30
    batch_gas_target: int = 15_000_000
    max_inflight_batches: int = 1
    stuck_after_seconds: float = 45
    fee_bump_percent: float = 12.5
    max_fee_per_gas_gwei: float = 500
    idempotency_key_retention_hours: float = 48

    @property
    def pipelined(self) -> bool:
        return self.max_inflight_batches > 1

    @property
    def bump_factor(self) -> float:
        # Nodes refuse replacements below +10 %; never go under it whatever the setting says.
        return 1 + max(self.fee_bump_percent, 10.0) / 100

    @classmethod
    def from_mapping(cls, values: Mapping[str, str | None]) -> QueueSettings:
        parsed: dict[str, float | int] = {}
        for field in dataclasses.fields(cls):
            raw = values.get(field.name)
            if raw is None:
                continue
            kind = int if field.type in (int, "int") else float
            try:
                value = kind(raw)
            except ValueError:
                logger.warning("ignoring bad setting %s=%r", field.name, raw)
                continue
            if value <= 0:
                logger.warning("ignoring non-positive setting %s=%r", field.name, raw)
                continue
            parsed[field.name] = value
        return cls(**parsed)  # type: ignore[arg-type]
