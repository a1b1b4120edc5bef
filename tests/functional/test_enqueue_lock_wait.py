"""A free POST /mint whose row is locked by a stuck transaction: a 503 in time, nothing queued.

The enqueue statement waits for row locks on its payer's count (payer_pending) and on its
counters' shard (queue_counts), which the worker's claim and finalising transactions also
take. A worker that dies inside such a transaction holds them until the server notices (its
keepalives: about a minute). Without a bound, the API's statement waited for them past the
function's timeout: the client got API Gateway's 503, not ours, and the request was queued
anyway when the lock went, so a client retrying after the error was minted twice. Migration
0019 bounds those waits (lock_timeout on mintq_enqueue), so the answer is our 503
``database_error`` and the request is not queued.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from mintq import db
from tests.support.events import http_event, invoke

PAYER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"

#: How long the stuck transaction holds its lock: past mintq_enqueue's lock_timeout (3 s), so
#: a bounded wait answers 503 first, while an unbounded one answers 202 once it is released.
HOLD_SECONDS = 6.0

LOCKS = {
    "the payer's count": "SELECT 1 FROM payer_pending WHERE payer_address = %(payer)s FOR UPDATE",
    "every counters' shard": "SELECT 1 FROM queue_counts WHERE %(payer)s::text IS NOT NULL FOR UPDATE",
}


@pytest.fixture
def stuck_transaction(database_url: str) -> Iterator[Any]:
    """A session that takes a lock in an open transaction and ends it after HOLD_SECONDS."""
    holder = db.connect(database_url, application_name="stuck-worker")
    timer: threading.Timer | None = None

    def hold(sql: Any, params: dict[str, Any]) -> None:
        nonlocal timer
        holder.execute("BEGIN")
        assert holder.execute(sql, params).fetchall(), "the lock must be taken on a row"
        timer = threading.Timer(HOLD_SECONDS, holder.execute, ("ROLLBACK",))
        timer.start()

    try:
        yield hold
    finally:
        if timer is not None:
            timer.join()
        holder.close()


def mint(payer: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    return invoke("enqueue", http_event("POST", "/mint", body={"payer": payer}))


def pending_of(database_url: str, payer: str) -> int:
    with db.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) AS n FROM mint_queue WHERE payer_address = %(p)s AND status = 'pending'",
            {"p": payer},
        ).fetchone()
    return int(row["n"]) if row else 0


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_an_enqueue_blocked_by_a_stuck_lock_answers_503_and_queues_nothing(
    database_url: str, stuck_transaction: Any, lock: str
) -> None:
    assert mint(PAYER)[0] == 202  # the payer's count row exists now
    stuck_transaction(LOCKS[lock], {"payer": PAYER})

    status, body, headers = mint(PAYER)

    assert status == 503, body
    assert body["success"] is False
    assert body["error"]["code"] == "database_error"
    assert headers.get("Retry-After")
    # Once the lock is gone (this waits for the holder's ROLLBACK), the refused request is
    # still not in the line.
    with db.connect(database_url) as conn:
        conn.execute(LOCKS[lock], {"payer": PAYER})
    assert pending_of(database_url, PAYER) == 1
    # And the next request goes through.
    assert mint(PAYER)[0] == 202
    assert pending_of(database_url, PAYER) == 2
