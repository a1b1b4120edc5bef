"""Runtime settings from the ``system_settings`` table, re-read every batch cycle.

Operators change behaviour with ``mintq settings set KEY VALUE`` (or plain SQL:
``UPDATE system_settings SET value = '5' WHERE key = 'batch_interval_seconds'``); the next
cycle picks it up. ``parse_setting`` holds the one set of rules: the command refuses a value
that breaks them, and a value that reached the table anyway (by SQL) falls back to its
default and is reported, so one typo never stops the queue.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass

from mintq import errors

logger = logging.getLogger(__name__)

_TRUE = frozenset({"true", "on", "yes", "1"})
_FALSE = frozenset({"false", "off", "no", "0"})


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
    #: days a completed or failed queue row is kept (``mint_history`` keeps completed mints for good)
    retention_days: float = 30
    #: the worker claims nothing new (it still finishes what is in flight): ``mintq pause``
    worker_paused: bool = False
    #: ``POST /mint`` answers 503 with Retry-After: ``mintq pause --close-api``
    api_closed: bool = False

    @property
    def pipelined(self) -> bool:
        return self.max_inflight_batches > 1

    @property
    def bump_factor(self) -> float:
        # Nodes refuse replacements below +10 %; never go under it whatever the setting says.
        return 1 + max(self.fee_bump_percent, MIN_FEE_BUMP_PERCENT) / 100

    @classmethod
    def from_mapping(cls, values: Mapping[str, str | None]) -> QueueSettings:
        parsed: dict[str, float | int | bool] = {}
        for name in FIELDS:
            raw = values.get(name)
            if raw is None:
                continue
            try:
                parsed[name] = parse_setting(name, raw)
            except errors.InvalidSetting as exc:
                logger.warning("ignoring bad setting %s=%r: %s", name, raw, exc)
        return cls(**parsed)  # type: ignore[arg-type]


FIELDS: dict[str, dataclasses.Field[object]] = {f.name: f for f in dataclasses.fields(QueueSettings)}

#: Nodes refuse a replacement transaction that raises the fees by less than this (%).
MIN_FEE_BUMP_PERCENT = 10.0
#: Clients are promised their Idempotency-Key answers for at least this long (h).
MIN_IDEMPOTENCY_RETENTION_HOURS = 24.0
#: Settings with a floor above 0, and why: a value under it would be stored and then overridden.
MINIMUMS: dict[str, tuple[float, str]] = {
    "fee_bump_percent": (
        MIN_FEE_BUMP_PERCENT,
        "nodes refuse a replacement that raises the fees by less than 10 %",
    ),
    "idempotency_key_retention_hours": (
        MIN_IDEMPOTENCY_RETENTION_HOURS,
        "clients are promised their Idempotency-Key answers for 24 h",
    ),
}


def rule(name: str) -> str:
    """The rule a value of ``name`` must follow, in words (shown when a value is refused)."""
    kind = FIELDS[name].type
    if kind in (bool, "bool"):
        return "true or false"
    if name in MINIMUMS:
        floor, why = MINIMUMS[name]
        return f"a number of at least {format_setting(floor)} ({why})"
    if kind in (int, "int"):
        return "a whole number above 0"
    return "a number above 0"


def parse_setting(name: str, raw: str) -> float | int | bool:
    """The typed value of one setting, by the rules the worker applies.

    Raises ``errors.InvalidSetting`` naming the rule for an unknown key or a value that
    breaks it (not a number, not positive, under its floor in ``MINIMUMS``, not a boolean).
    """
    field = FIELDS.get(name)
    if field is None:
        raise errors.InvalidSetting(f"unknown setting {name!r}; known: {', '.join(sorted(FIELDS))}")
    text = raw.strip()
    kind = field.type
    if kind in (bool, "bool"):
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise errors.InvalidSetting(f"{name} must be {rule(name)}, not {raw!r}")
    try:
        value: float | int = int(text) if kind in (int, "int") else float(text)
    except ValueError:
        raise errors.InvalidSetting(f"{name} must be {rule(name)}, not {raw!r}") from None
    if not 0 < value < math.inf:  # NaN fails both comparisons: neither it nor inf is a setting
        raise errors.InvalidSetting(f"{name} must be {rule(name)}, not {raw!r}")
    if name in MINIMUMS and value < MINIMUMS[name][0]:
        raise errors.InvalidSetting(f"{name} must be {rule(name)}, not {raw!r}")
    return value


def format_setting(value: float | int | bool) -> str:
    """The text stored in ``system_settings`` for a parsed value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
