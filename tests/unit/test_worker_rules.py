"""The batch worker's pure rules (``mintq.worker.rules``), table-driven: no database, no chain."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from mintq import errors
from mintq.chain import Fees
from mintq.units import Wei, gwei_to_wei
from mintq.worker import rules

GWEI = 10**9


def fees(base: int, tip: int, max_fee: int | None = None) -> Fees:
    return Fees(
        base_fee=Wei(base),
        max_fee_per_gas=Wei(2 * base + tip if max_fee is None else max_fee),
        max_priority_fee_per_gas=Wei(tip),
    )


@pytest.mark.parametrize(
    ("faults", "drain", "expected"),
    [
        (0, False, 10.0),  # idle or not pipelining: the interval
        (0, True, 0.0),  # draining a deep queue: no pause
        (1, False, 10.0),  # first fault: the interval
        (1, True, 10.0),  # a fault outweighs draining
        (2, False, 20.0),
        (3, False, 40.0),
        (4, False, 60.0),  # capped at max_backoff
        (30, False, 60.0),
    ],
)
def test_the_pause_backs_off_doubling_after_faults_up_to_the_cap(
    faults: int, drain: bool, expected: float
) -> None:
    assert rules.pause(interval=10, consecutive_faults=faults, drain=drain, max_backoff=60) == expected


@pytest.mark.parametrize(
    ("started", "now", "pause", "deadline", "expected"),
    [
        (0.0, 1.0, 10.0, 100.0, 10.0),
        (0.0, 1.0, 10.0, 15.0, 10.0),  # exactly min_cycle left: still starts
        (0.0, 1.0, 10.0, 14.999, None),  # a hair less: stops
        (0.0, 0.0, 0.0, 4.0, None),  # no pause but no room either
        (0.0, 12.0, 1.0, 100.0, 12.0),  # a cycle that ran long: the next starts now, not in the past
        (0.0, 12.0, 1.0, 15.0, None),  # ... and only with room from now
    ],
)
def test_the_next_cycle_starts_only_with_min_cycle_seconds_of_room(
    started: float, now: float, pause: float, deadline: float, expected: float | None
) -> None:
    got = rules.next_start(started=started, now=now, pause=pause, min_cycle=5.0, deadline=deadline)
    assert got == expected


@pytest.mark.parametrize(
    ("quote", "ceiling", "expected"),
    [
        (fees(10, 2), 100, fees(10, 2)),  # under the ceiling: the quote
        (fees(10, 2), 14, fees(10, 2, max_fee=14)),  # max fee capped at the ceiling
        (fees(10, 2), 12, fees(10, 2, max_fee=12)),  # base + tip exactly at the ceiling: still sent
        (fees(0, 5), 3, None),  # the tip alone is above it
        (fees(10, 3), 12, None),  # base + tip one wei over
    ],
)
def test_the_fee_quote_is_capped_at_the_ceiling_or_refused(
    quote: Fees, ceiling: int, expected: Fees | None
) -> None:
    if expected is None:
        with pytest.raises(errors.FeeCeilingReached):
            rules.fee_quote(quote, Wei(ceiling))
    else:
        assert rules.fee_quote(quote, Wei(ceiling)) == expected


def test_the_tip_never_exceeds_the_capped_max_fee() -> None:
    quoted = Fees(base_fee=Wei(0), max_fee_per_gas=Wei(5), max_priority_fee_per_gas=Wei(8))
    capped = rules.fee_quote(quoted, Wei(100))
    assert (capped.max_fee_per_gas, capped.max_priority_fee_per_gas) == (5, 5)


@pytest.mark.parametrize(
    ("old_max", "old_tip", "quote", "bump", "ceiling", "expected"),
    [
        # both raised by the bump (rounded up), the quote lower
        (100, 10, fees(1, 1), 1.125, 1000, (113, 12, True)),
        # the node's tip is higher than the bumped one: the node's tip
        (100, 10, fees(1, 20), 1.125, 1000, (113, 20, True)),
        # the base fee rose: max fee leaves room for it to double plus the tip
        (100, 10, fees(80, 1), 1.125, 1000, (172, 12, True)),
        # exactly at the ceiling: allowed
        (100, 10, fees(1, 1), 1.125, 113, (113, 12, True)),
        # one wei over: not allowed
        (100, 10, fees(1, 1), 1.125, 112, (113, 12, False)),
    ],
)
def test_replacement_fees_raise_both_fields_by_the_bump_within_the_ceiling(
    old_max: int, old_tip: int, quote: Fees, bump: float, ceiling: int, expected: tuple[int, int, bool]
) -> None:
    got = rules.replacement_fees(
        max_fee_per_gas=Wei(old_max),
        max_priority_fee_per_gas=Wei(old_tip),
        quote=quote,
        bump_factor=bump,
        ceiling=Wei(ceiling),
    )
    assert (got.max_fee_per_gas, got.max_priority_fee_per_gas, got.allowed) == expected
    assert got.max_fee_per_gas >= old_max * bump and got.max_priority_fee_per_gas >= old_tip * bump


@pytest.mark.parametrize(
    ("age", "max_fee", "base_fee", "stuck"),
    [(0.0, 100, 50, False), (45.0, 100, 50, True), (44.9, 100, 100, False), (1.0, 99, 100, True)],
)
def test_an_attempt_is_stuck_when_old_or_priced_out(
    age: float, max_fee: int, base_fee: int, stuck: bool
) -> None:
    assert (
        rules.is_stuck(age_seconds=age, stuck_after=45, max_fee_per_gas=Wei(max_fee), base_fee=Wei(base_fee))
        is stuck
    )


@pytest.mark.parametrize(
    ("count", "gas", "budget", "keep"),
    [
        (100, 2_000_000, 1_000_000, 50),  # half fits
        (2, 2_000_000, 1_000_000, 1),  # one item left at least
        (1, 5_000_000, 1_000_000, 1),
        (10, 1_000_001, 1_000_000, 9),  # a hair over: one fewer, never the same count
    ],
)
def test_the_gas_shrink_keeps_what_the_budget_holds_and_at_least_one(
    count: int, gas: int, budget: int, keep: int
) -> None:
    assert rules.shrink(count=count, gas=gas, budget=budget) == keep


@pytest.mark.parametrize(
    ("size", "budget", "per_mint", "limit"),
    [(50, 15_000_000, 26_000, 50), (500, 15_000_000, 26_000, 576), (500, 10_000, 26_000, 1)],
)
def test_the_batch_limit_is_the_cap_or_what_the_budget_holds(
    size: int, budget: int, per_mint: float, limit: int
) -> None:
    assert rules.batch_limit(max_batch_size=size, gas_budget=budget, gas_per_mint=per_mint) == min(
        size, limit
    )


@pytest.mark.parametrize(
    ("claimed", "remaining", "inflight", "expected"),
    [
        (5, None, 0, (5, 0, 0)),  # the token does not say: all fit
        (5, 10, 0, (5, 0, 0)),
        (5, 5, 0, (5, 0, 0)),  # exactly the supply
        (5, 4, 0, (4, 0, 1)),  # one over, nothing in flight: that one fails for good
        (5, 0, 0, (0, 0, 5)),  # zero remaining: every one fails
        (5, 6, 3, (3, 2, 0)),  # in-flight batches may give supply back: the rest waits
        (5, 3, 3, (0, 5, 0)),
        (5, 2, 3, (0, 5, 0)),  # more in flight than remains: all wait
    ],
)
def test_the_supply_split_says_what_fits_waits_and_fails(
    claimed: int, remaining: int | None, inflight: int, expected: tuple[int, int, int]
) -> None:
    split = rules.supply_split(claimed=claimed, remaining_mints=remaining, inflight_mints=inflight)
    assert (split.fits, split.wait, split.fail) == expected
    assert split.fits + split.wait + split.fail == claimed


def _simulator(bad: set[int], calls: list[Sequence[int]]) -> Callable[[Sequence[int]], str | None]:
    def simulate(group: Sequence[int]) -> str | None:
        calls.append(list(group))
        hit = [i for i in group if i in bad]
        return f"bad {hit[0]}" if hit else None

    return simulate


@pytest.mark.parametrize(
    ("items", "bad"),
    [
        ([1], set()),
        ([1], {1}),  # one item, reverting
        ([1, 2, 3, 4, 5, 6, 7, 8], set()),
        ([1, 2, 3, 4, 5, 6, 7, 8], {3}),
        ([1, 2, 3, 4, 5, 6, 7, 8], {1, 8}),
        ([1, 2, 3, 4, 5, 6, 7], {1, 2, 3, 4, 5, 6, 7}),  # all reverting
    ],
)
def test_bisection_keeps_every_good_item_in_order_and_rejects_each_bad_one_with_its_reason(
    items: list[int], bad: set[int]
) -> None:
    calls: list[Sequence[int]] = []
    good, rejected = rules.bisect(items, _simulator(bad, calls))
    assert good == [i for i in items if i not in bad]
    assert rejected == [(i, f"bad {i}") for i in items if i in bad]
    assert calls[0] == items, "the whole group is tried first"


def test_bisection_costs_about_two_log_n_simulations_per_bad_item() -> None:
    calls: list[Sequence[int]] = []
    rules.bisect(list(range(1024)), _simulator({500}, calls))
    assert len(calls) == 1 + 2 * 10


@pytest.mark.parametrize(
    ("first_seen", "now", "due"), [(100.0, 100.0, False), (100.0, 129.9, False), (100.0, 130.0, True)]
)
def test_a_used_nonce_drops_its_batch_only_after_the_grace(first_seen: float, now: float, due: bool) -> None:
    assert rules.drop_due(first_seen=first_seen, now=now, grace=30.0) is due


@pytest.mark.parametrize(
    ("gwei", "wei"),
    [(500, 500 * GWEI), (0.1, 100_000_000), (1.000000001, 1_000_000_001), (0.3, 300_000_000), (0, 0)],
)
def test_gwei_settings_convert_to_wei_by_their_decimal_value(gwei: float, wei: int) -> None:
    assert gwei_to_wei(gwei) == wei
