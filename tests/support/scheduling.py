"""How ``make test`` spreads the suite over pytest-xdist workers, and which tests it keeps out.

Most tests wait (for anvil's blocks, a stack's start-up, a deadline) rather than compute, so
several workers finish the suite in a fraction of its serial wall time even on two cores. The
Makefile runs ``pytest -n N --dist loadscope -m "not serial"`` first, then ``pytest -m serial``
alone; :func:`arrange` (called from tests/conftest.py at collection) prepares the items for that.

``loadscope`` hands out whole modules, so a module-scoped fixture (a local stack with Chromium's
page on it, a replica, a deployed contract) starts once. (``loadgroup`` with ``xdist_group``
marks would be finer, but pytest-xdist 3.8 cannot group under pytest 9.2: pytest-xdist#1386.)
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: Tests whose assertions hold only when the machine gives them its time: each measures a rate
#: or must get through a fixed amount of work before a fixed deadline, so three other workers
#: competing for two cores can fail them without any bug. Marked ``serial``: ``make test`` runs
#: them after the parallel part, one at a time. (module path, test function name)
SERIAL: tuple[tuple[str, str, str], ...] = (
    (
        "tests/integration/test_measured_eta.py",
        "test_the_estimate_behind_a_backlog_is_within_half_of_the_observed_wait",
        "compares the wait it predicted from the measured mint rate with the wait observed next",
    ),
    (
        "tests/integration/test_faults_worker_kills.py",
        "test_five_worker_processes_race_and_the_survivors_finish_after_the_lock_holder_is_killed_mid_batch",
        "five worker processes start at once (each imports web3) and must hand the lock over in time",
    ),
    (
        "tests/integration/test_throughput_and_replacement.py",
        "test_a_signer_pool_sends_in_parallel_without_sharing_a_nonce_or_an_item",
        "three signers must mint 60 requests within 8 s, each confirming a batch",
    ),
    (
        "tests/integration/test_batcher.py",
        "test_five_concurrent_invocations_have_one_sender_and_no_nonce_errors",
        "the one sender must mint 30 requests in 5 batches, 1 s apart, within 9 s",
    ),
)


def _is_serial(item: pytest.Item) -> bool:
    path, _, name = item.nodeid.partition("::")
    function = name.split("[", 1)[0]
    return any(path == module and function == test for module, test, _ in SERIAL)


def arrange(items: list[pytest.Item]) -> None:
    """Mark the :data:`SERIAL` tests; in a worker, put the modules that hold a ``slow`` test
    first, so that no long module starts last and stretches the run."""
    for item in items:
        if _is_serial(item):
            item.add_marker(pytest.mark.serial)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # Every worker sorts alike (xdist checks that all collected the same list), and the
        # Makefile keeps xdist from reordering modules by their number of tests.
        slow_modules = {_module(item) for item in items if item.get_closest_marker("slow")}
        items.sort(key=lambda item: _module(item) not in slow_modules)


def _module(item: pytest.Item) -> str:
    return item.nodeid.partition("::")[0]


def serial_entries_exist(repo_root: Path) -> list[str]:
    """The :data:`SERIAL` entries that name no test function (renamed or removed tests)."""
    missing = []
    for module, test, _ in SERIAL:
        path = repo_root / module
        if not path.exists() or f"def {test}(" not in path.read_text():
            missing.append(f"{module}::{test}")
    return missing
