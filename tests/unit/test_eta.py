"""The wait estimate's arithmetic (the measurement itself is tested against PostgreSQL)."""

from __future__ import annotations

import pytest

from mintq.eta import Throughput, estimate
from mintq.settings import QueueSettings

SETTINGS = QueueSettings(max_batch_size=10, batch_interval_seconds=6)


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
    assert measured == Throughput(mints_per_second=2.0, confirm_seconds=0.0)
