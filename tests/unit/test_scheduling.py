"""The tests ``make test`` keeps out of its parallel part still exist under the names it lists."""

from __future__ import annotations

from pathlib import Path

from tests.support import scheduling

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_every_serial_entry_names_a_test_function() -> None:
    # A renamed test would silently run among the parallel workers again.
    assert scheduling.serial_entries_exist(REPO_ROOT) == []
