"""The worker's decisions as pure functions: no database, no chain, no clock.

Units: fees and ceilings in wei (``Wei``), gas in gas units, times in seconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from mintq import errors
from mintq.chain import Fees
from mintq.units import Wei

T = TypeVar("T")


def pause(*, interval: float, consecutive_faults: int, drain: bool, max_backoff: float) -> float:
    """Seconds from one cycle's start to the next's.

    After faults: ``interval`` doubled per consecutive fault, at most ``max_backoff``. While
    pipelining through a deep queue (``drain``): none (the chain, not a timer, sets the pace).
    Otherwise ``interval``.
    """
    if consecutive_faults:
        return min(interval * 2.0 ** (consecutive_faults - 1), max_backoff)
    return 0.0 if drain else interval


def next_start(
    *, started: float, now: float, pause: float, min_cycle: float, deadline: float
) -> float | None:
    """When the next cycle starts (a clock value): ``pause`` after the last one ``started``,
    and never before ``now`` (a cycle that ran long is not followed by one that would end
    past the deadline); ``None`` when it would not have ``min_cycle`` seconds before ``deadline``."""
    at = max(started + pause, now)
    return None if at + min_cycle > deadline else at


def fee_quote(quote: Fees, ceiling: Wei) -> Fees:
    """The fees a new batch is signed with: the node's quote with both fields capped at
    ``ceiling``. Raises ``errors.FeeCeilingReached`` when base fee plus tip is already above
    it (such a batch would wait in the pool until the base fee falls)."""
    if quote.base_fee + quote.max_priority_fee_per_gas > ceiling:
        raise errors.FeeCeilingReached(
            f"the base fee ({quote.base_fee} wei) is above the fee ceiling ({ceiling} wei); holding batches"
        )
    max_fee = min(quote.max_fee_per_gas, ceiling)
    return Fees(
        base_fee=quote.base_fee,
        max_fee_per_gas=Wei(max_fee),
        max_priority_fee_per_gas=Wei(min(quote.max_priority_fee_per_gas, max_fee)),
    )


@dataclass(frozen=True, kw_only=True)
class Replacement:
    """The fees a replacement attempt would carry, and whether they fit under the ceiling."""

    max_fee_per_gas: Wei
    max_priority_fee_per_gas: Wei
    allowed: bool


def replacement_fees(
    *, max_fee_per_gas: Wei, max_priority_fee_per_gas: Wei, quote: Fees, bump_factor: float, ceiling: Wei
) -> Replacement:
    """Fees for re-signing a stuck attempt: both fields raised by at least ``bump_factor``
    (nodes refuse less), the tip at least the node's, the max fee leaving room for the base fee
    to double. ``allowed`` is False when that max fee is above ``ceiling``."""
    tip = max(math.ceil(max_priority_fee_per_gas * bump_factor), quote.max_priority_fee_per_gas)
    max_fee = max(math.ceil(max_fee_per_gas * bump_factor), 2 * quote.base_fee + tip)
    return Replacement(
        max_fee_per_gas=Wei(max_fee), max_priority_fee_per_gas=Wei(tip), allowed=max_fee <= ceiling
    )


def is_stuck(*, age_seconds: float, stuck_after: float, max_fee_per_gas: Wei, base_fee: Wei) -> bool:
    """An attempt to replace: not mined in ``stuck_after`` seconds, or priced out (its max fee
    below the current base fee, so it would wait for the base fee to fall)."""
    return age_seconds >= stuck_after or max_fee_per_gas < base_fee


def batch_limit(*, max_batch_size: int, gas_budget: int, gas_per_mint: float) -> int:
    """How many requests to claim: the operator's cap, or what the gas budget holds (≥ 1)."""
    return max(1, min(max_batch_size, int(gas_budget / gas_per_mint)))


def shrink(*, count: int, gas: int, budget: int) -> int:
    """How many of ``count`` items to keep when their ``gas`` (the gas limit they need) is over
    ``budget``: the share the budget holds, at least one fewer, at least one."""
    return max(1, min(count - 1, int(count * budget / gas)))


@dataclass(frozen=True)
class SupplySplit:
    """Claimed requests by what the token's remaining supply allows: ``fits`` go in the
    batch, ``wait`` go back in line (in-flight batches may fail and give supply back),
    ``fail`` fail for good (the supply is gone)."""

    fits: int
    wait: int
    fail: int


def supply_split(*, claimed: int, remaining_mints: int | None, inflight_mints: int) -> SupplySplit:
    """Split ``claimed`` requests against ``remaining_mints`` (None: the token does not say)
    less the ``inflight_mints`` that unfinished batches will take first."""
    if remaining_mints is None:
        return SupplySplit(claimed, 0, 0)
    room = max(remaining_mints - inflight_mints, 0)
    if claimed <= room:
        return SupplySplit(claimed, 0, 0)
    over = claimed - room
    if inflight_mints and room < remaining_mints:
        return SupplySplit(room, over, 0)
    return SupplySplit(room, 0, over)


def bisect(
    items: Sequence[T], simulate: Callable[[Sequence[T]], str | None]
) -> tuple[list[T], list[tuple[T, str]]]:
    """Split ``items`` into those that ``simulate`` together without a revert and those that
    revert alone, with the reason. ``simulate(group)`` returns None when the group passes,
    else the revert reason. Halves every reverting group, so k bad items among n cost about
    2·k·log2(n) simulations; order is kept."""
    good: list[T] = []
    rejected: list[tuple[T, str]] = []

    def split(group: Sequence[T]) -> None:
        reason = simulate(group)
        if reason is None:
            good.extend(group)
            return
        if len(group) == 1:
            rejected.append((group[0], reason))
            return
        mid = len(group) // 2
        split(group[:mid])
        split(group[mid:])

    split(items)
    return good, rejected


def drop_due(*, first_seen: float, now: float, grace: float) -> bool:
    """A batch whose nonce was first seen used (with no receipt) at ``first_seen`` counts as
    dropped once ``grace`` seconds have passed."""
    return now - first_seen >= grace
