"""The wait estimate's arithmetic (the measurement itself is tested against PostgreSQL)."""

from __future__ import annotations

import pytest

from mintq.eta import Throughput, estimate
from mintq.settings import QueueSettings

SETTINGS = QueueSettings(max_batch_size=10, batch_interval_seconds=6)
BATCHES_OF_5 = Throughput(mints_per_second=2, confirm_seconds=1, mints_per_batch=5, batch_period_seconds=2.5)


@pytest.mark.parametrize(
    ("position", "throughput", "wait"),
    [
        (0, None, 0),  # not in line
        (0, Throughput(mints_per_second=1, confirm_seconds=5), 0),
        (1, None, 6),  # nominal: one interval per batch ahead
        (11, None, 12),
        (1, Throughput(mints_per_second=4, confirm_seconds=2), 3),  # 0.25 + 2, rounded up
        (40, Throughput(mints_per_second=4, confirm_seconds=2), 12),  # 10 + 2
        (41, Throughput(mints_per_second=4, confirm_seconds=2), 13),
        # In whole batches of 5 leaving every 2.5 s: batch k confirms (k - 0.5) * 2.5 + 1 s in.
        (1, BATCHES_OF_5, 3),  # 0.5 * 2.5 + 1 = 2.25
        (5, BATCHES_OF_5, 3),  # same batch, same wait
        (6, BATCHES_OF_5, 5),  # 1.5 * 2.5 + 1 = 4.75
        (10, BATCHES_OF_5, 5),
        (11, BATCHES_OF_5, 8),  # 2.5 * 2.5 + 1 = 7.25
        # Low traffic: a rare big batch, small ones every 6 s; the rate (arrivals) says nothing of
        # when the next batch leaves, the period does: 0.5 * 6 + 2, not 0.5 * 1000 / 0.5 + 2.
        (
            1,
            Throughput(mints_per_second=0.5, confirm_seconds=2, mints_per_batch=1000, batch_period_seconds=6),
            5,
        ),
    ],
)
def test_estimate(position: int, throughput: Throughput | None, wait: int) -> None:
    assert estimate(position, SETTINGS, throughput) == wait


@pytest.mark.parametrize(
    "row",
    [
        None,
        {},
        {"mints_per_second": None, "confirm_seconds": 3.0},
        {"mints_per_second": 0, "confirm_seconds": 1},
    ],
)
def test_no_usable_measurement_means_none(row: dict[str, object] | None) -> None:
    assert Throughput.from_row(row) is None


def test_a_measurement_row_reads_as_floats() -> None:
    measured = Throughput.from_row({"mints_per_second": 2, "confirm_seconds": None})
    assert measured == Throughput(mints_per_second=2.0, confirm_seconds=0.0, mints_per_batch=None)
    row = {"mints_per_second": 2, "confirm_seconds": 1, "mints_per_batch": 7, "batch_period_seconds": 3}
    assert Throughput.from_row(row) == Throughput(
        mints_per_second=2.0, confirm_seconds=1.0, mints_per_batch=7.0, batch_period_seconds=3.0
    )


@pytest.mark.parametrize(("per_batch", "period"), [(0, 3), (7, 0), (None, 3), (7, None)])
def test_batches_are_counted_only_with_both_a_size_and_a_period(
    per_batch: float | None, period: float | None
) -> None:
    row = {
        "mints_per_second": 2,
        "confirm_seconds": 1,
        "mints_per_batch": per_batch,
        "batch_period_seconds": period,
    }
    measured = Throughput.from_row(row)
    assert measured is not None
    assert (measured.mints_per_batch, measured.batch_period_seconds) == (None, None)
