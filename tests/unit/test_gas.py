"""Pure arithmetic of mintq.gas: batch budgets that fill whole blocks, the in-flight window,
and the worst case a batch's gas limit must cover."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from mintq import gas

CAP = 2**24


@pytest.mark.parametrize(
    ("block", "target", "parts"),
    [
        (30_000_000, 14_000_000, 3),  # two of 14M would leave 2M of every block empty
        (30_000_000, 15_000_000, 2),
        (30_000_000, 30_000_000, 2),  # the per-transaction cap splits it
        (150_000_000, 30_000_000, 9),  # Base-sized: nine of 16.67M under the 2**24 cap
        (150_000_000, 10_000_000, 15),
        (10_000_000, 15_000_000, 1),  # a target past the block is the block
    ],
)
def test_batches_split_the_block_into_equal_parts_within_target_and_cap(
    block: int, target: int, parts: int
) -> None:
    budget = gas.batch_gas_budget(block, target, CAP)
    assert budget <= min(target, CAP, block)
    assert block // budget == parts
    assert block - parts * budget < parts  # whole blocks: nothing left but rounding


def test_the_in_flight_window_covers_the_next_blocks() -> None:
    assert gas.inflight_for(30_000_000, 15_000_000) == 4
    assert gas.inflight_for(150_000_000, gas.batch_gas_budget(150_000_000, 30_000_000, CAP)) == 18
    assert gas.inflight_for(150_000_000, 16_000_000, blocks=1) == 10
    assert gas.inflight_for(1, 10) == 2


def _linear(first: int, per_fresh: int, per_repeat: int) -> gas.Estimate:
    """An estimator of the shape the chain gives for fresh recipients."""

    def estimate(recipients: Sequence[str]) -> int:
        distinct = len({r.lower() for r in recipients})
        return first + (distinct - 1) * per_fresh + (len(recipients) - distinct) * per_repeat

    return estimate


def test_the_worst_case_is_measured_from_fresh_recipients_and_counts_repeats() -> None:
    cost = gas.FreshMintCost.measure(_linear(52_000, 24_400, 1_300))
    assert cost == gas.FreshMintCost(first=52_000, per_fresh=24_400, per_repeat=1_300)
    a, b, c = "0x" + "11" * 20, "0x" + "22" * 20, "0x" + "33" * 20
    assert cost.worst_case([a, b, c, a.upper().replace("0X", "0x"), a]) == 52_000 + 2 * 24_400 + 2 * 1_300
    assert cost.worst_case([]) == 0
    assert cost.fits(52_000 + 10 * 24_400) == 11
    assert cost.fits(1) == 1


def test_a_batch_signs_with_its_estimate_raised_to_the_worst_case() -> None:
    cost = gas.FreshMintCost(first=50_000, per_fresh=25_000, per_repeat=1_000)
    recipients = ["0x" + f"{i + 1:02x}" * 20 for i in range(4)]
    # Recipients holding tokens were simulated cheaper: the limit still covers them all fresh.
    assert gas.gas_limit(60_000, recipients, cost, fallback_ratio=1.1) == 125_000
    # An estimate above the model (a dearer state) is kept as it is.
    assert gas.gas_limit(130_000, recipients, cost, fallback_ratio=1.1) == 130_000
    # No model (the token refused the calibration recipients): the ratio.
    assert gas.gas_limit(100_000, recipients, None, fallback_ratio=1.1) == 110_000


def test_calibration_recipients_have_no_zero_byte() -> None:
    seen: list[str] = []

    def estimate(recipients: Sequence[str]) -> int:
        seen.extend(recipients)
        return 50_000 * len(recipients)

    gas.FreshMintCost.measure(estimate)
    assert seen and all("00" not in [r[i : i + 2] for i in range(2, 42, 2)] for r in seen)
