"""On a steady local stack, estimatedWaitSeconds predicts the real wait behind a backlog.

The stack (devstack: API, batch worker, anvil with 1-second blocks) first drains a warm-up
backlog, so the worker has measured its rate; then a second backlog is enqueued at once and
each request's estimate is compared with its observed time from enqueue to mint
(``processed_at - created_at``, both PostgreSQL's clock).
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.support import stack

pytestmark = [pytest.mark.slow, pytest.mark.chain]

BATCH = 5
INTERVAL = 3
WARM_UP = 20
BACKLOG = 30


def random_payer() -> str:
    return "0x" + secrets.token_hex(20)  # all lower case: no checksum to satisfy


def enqueue_many(api_url: str, count: int) -> list[dict[str, Any]]:
    answers = []
    for _ in range(count):
        status, body = stack.request("POST", f"{api_url}/mint", {"payer": random_payer()})
        assert status == 202, body
        answers.append(body)
    return answers


def wait_until_minted(database_url: str, ids: list[str], timeout: float) -> dict[str, float]:
    """Seconds from enqueue to mint for each id, once all are completed."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(database_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            rows = conn.execute(
                "SELECT id::text, status::text, extract(epoch FROM processed_at - created_at)::float8"
                " FROM mint_queue WHERE id = ANY(%s::uuid[])",
                (ids,),
            ).fetchall()
            if len(rows) == len(ids) and all(r[1] == "completed" for r in rows):
                return {r[0]: float(r[2]) for r in rows}
            assert not any(r[1] == "failed" for r in rows), rows
            time.sleep(0.5)
    raise AssertionError(f"not all {len(ids)} requests were minted within {timeout} s")


@pytest.fixture
def steady_stack(pg_server: Any, tmp_path: Path) -> Any:
    with stack.running(
        pg_server.admin_url, f"mintq_test_{os.getpid()}_eta", tmp_path / "stack", block_time=1.0
    ) as running:
        with psycopg.connect(running.info["database_url"], autocommit=True) as conn:
            conn.execute("UPDATE system_settings SET value = %s WHERE key = 'max_batch_size'", (str(BATCH),))
            conn.execute(
                "UPDATE system_settings SET value = %s WHERE key = 'batch_interval_seconds'", (str(INTERVAL),)
            )
        yield running


def test_the_estimate_behind_a_backlog_is_within_half_of_the_observed_wait(steady_stack: stack.Stack) -> None:
    api, database_url = steady_stack.api_url, steady_stack.info["database_url"]
    warm = enqueue_many(api, WARM_UP)
    wait_until_minted(database_url, [a["queueId"] for a in warm], timeout=120)
    measured = stack.request("GET", f"{api}/queue/status")[1]["throughput"]
    assert measured["mintsPerSecond"] is not None and measured["mintsPerSecond"] > 0

    answers = enqueue_many(api, BACKLOG)
    observed = wait_until_minted(database_url, [a["queueId"] for a in answers], timeout=180)
    behind = [a for a in answers if a["queuePosition"] > BATCH]  # not in the very next batch
    assert len(behind) >= BACKLOG - 2 * BATCH
    misses, pairs = [], []
    for answer in behind:
        estimate, actual = answer["estimatedWaitSeconds"], observed[answer["queueId"]]
        pairs.append((answer["queuePosition"], estimate, round(actual, 1)))
        if not 0.5 * actual <= estimate <= 1.5 * actual:
            misses.append(pairs[-1])
    assert misses == [], f"rate {measured}: (position, estimate, observed) outside ±50 %: {misses} of {pairs}"
