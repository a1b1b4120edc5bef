"""mintq_enqueue counts its own row (migration 0016): the counters stay exact beside the trigger
that counts every other INSERT, the per-payer cap holds under concurrent requests, and the
settings it reads follow every change of system_settings at once."""

from __future__ import annotations

import random
import threading
import uuid
from typing import Any

from mintq import db
from tests.support.queue_stats import counted_by_scan

PAYERS = [f"0x{i:040x}" for i in range(1, 12)]


def _enqueue(conn: Any, payer: str, default_cap: int = 10) -> dict[str, Any]:
    row = db.one(
        conn, "enqueue_request", {"payer": payer, "payment_type": "free", "default_max_pending": default_cap}
    )
    assert row is not None
    return row


def _counted_stats(conn: Any) -> dict[str, Any]:
    return conn.execute(
        "SELECT pending_count, processing_count, completed_count, failed_count, unique_payers_pending"
        " FROM queue_stats"
    ).fetchone()


def _payer_counts(conn: Any) -> tuple[dict[str, int], dict[str, int]]:
    counted = {r["payer_address"]: r["pending_count"] for r in conn.execute("SELECT * FROM payer_pending")}
    true = {
        r["payer_address"]: r["n"]
        for r in conn.execute(
            "SELECT payer_address, count(*) AS n FROM mint_queue WHERE status = 'pending' GROUP BY 1"
        )
    }
    return counted, true


def test_enqueues_direct_inserts_and_claims_at_once_keep_every_counter_exact(
    database_url: str, conn: Any, set_setting: Any
) -> None:
    set_setting("max_pending_per_payer", 100_000)

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        with db.connect(database_url) as own:
            for i in range(80):
                payer = rng.choice(PAYERS)
                if seed % 3 == 0 and i % 2:
                    own.execute(
                        "INSERT INTO mint_queue (payer_address, payment_type) VALUES (%(p)s, 'free')",
                        {"p": payer},
                    )
                else:
                    assert _enqueue(own, payer)["id"] is not None
                if i % 20 == 19:
                    claimed = db.rows(own, "claim_requests", {"limit": 7, "batch_id": uuid.uuid4()})
                    db.execute(own, "release_requests", {"ids": [r["id"] for r in claimed[:2]]})

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _counted_stats(conn) == counted_by_scan(conn)
    counted, true = _payer_counts(conn)
    assert counted == true


def test_the_per_payer_cap_holds_when_one_payer_sends_many_requests_at_once(
    database_url: str, conn: Any, set_setting: Any
) -> None:
    set_setting("max_pending_per_payer", 3)
    payer = PAYERS[0]
    start = threading.Barrier(12)
    accepted: list[bool] = []

    def request() -> None:
        with db.connect(database_url) as own:
            start.wait()
            accepted.append(_enqueue(own, payer)["id"] is not None)

    threads = [threading.Thread(target=request) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(accepted) == [False] * 9 + [True] * 3
    assert conn.execute(
        "SELECT count(*) AS n FROM mint_queue WHERE payer_address = %(p)s", {"p": payer}
    ).fetchone() == {"n": 3}
    assert _counted_stats(conn) == counted_by_scan(conn)


def test_the_enqueue_follows_every_kind_of_settings_change_at_once(conn: Any, set_setting: Any) -> None:
    set_setting("max_pending_per_payer", 1)  # INSERT ... ON CONFLICT DO UPDATE
    assert _enqueue(conn, PAYERS[1])["id"] is not None
    refused = _enqueue(conn, PAYERS[1])
    assert (refused["id"], refused["max_pending"]) == (None, 1)

    conn.execute("UPDATE system_settings SET value = '2' WHERE key = 'max_pending_per_payer'")
    assert _enqueue(conn, PAYERS[1])["id"] is not None

    conn.execute("DELETE FROM system_settings WHERE key = 'max_pending_per_payer'")
    assert _enqueue(conn, PAYERS[1], default_cap=4)["max_pending"] == 4  # unset: the caller's default

    conn.execute("UPDATE system_settings SET value = 'yes' WHERE key = 'api_closed'")
    closed = _enqueue(conn, PAYERS[2])
    assert closed["api_closed"] is True and closed["id"] is None
    conn.execute("UPDATE system_settings SET value = 'false' WHERE key = 'api_closed'")

    set_setting("max_batch_size", 7)
    set_setting("batch_interval_seconds", 3)
    row = _enqueue(conn, PAYERS[2])
    assert (row["max_batch_size"], row["batch_interval_seconds"], row["api_closed"]) == ("7", "3", False)


def test_a_setting_changed_in_an_open_transaction_is_not_seen_before_it_commits(
    database_url: str, conn: Any
) -> None:
    with db.connect(database_url) as operator, operator.transaction():
        operator.execute("UPDATE system_settings SET value = 'true' WHERE key = 'api_closed'")
        assert _enqueue(conn, PAYERS[3])["id"] is not None  # the mirror row is the operator's until commit
    assert _enqueue(conn, PAYERS[3])["id"] is None


#: The enqueue query of the release before migration 0016: functions are updated after the
#: migrations run, so the previous code sends it to the new schema for a while.
PREVIOUS_ENQUEUE_QUERY = """
SELECT e.id, e.queue_position, e.created_at, e.payer_pending, e.max_pending, e.max_batch_size,
       e.batch_interval_seconds, e.api_closed, t.mints_per_second, t.confirm_seconds,
       t.mints_per_batch, t.batch_period_seconds
  FROM mintq_enqueue(%(payer)s, 'free', 10) e
  LEFT JOIN mint_throughput t ON t.measured_at > now() - make_interval(secs => t.window_seconds)
"""


def test_the_previous_release_can_still_enqueue_while_the_functions_roll_out(conn: Any) -> None:
    row = conn.execute(PREVIOUS_ENQUEUE_QUERY, {"payer": PAYERS[4]}).fetchone()
    assert row["id"] is not None and row["created_at"] is not None
    assert (row["queue_position"], row["payer_pending"], row["api_closed"]) == (1, 1, False)
    assert _counted_stats(conn) == counted_by_scan(conn)
