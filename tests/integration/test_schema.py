"""The schema: migrations, the seed's SQL as written, and the O(1) counters."""

from __future__ import annotations

import random
import threading
import uuid
from typing import Any

import pytest

from mintq import db, migrations
from tests.support.queue_stats import counted_by_scan

ADDRESSES = [f"0x{i:040x}" for i in range(1, 30)]

SEED_QUERIES = [
    "SELECT * FROM queue_stats;",
    "SELECT * FROM mint_queue WHERE status = 'pending' ORDER BY created_at;",
    "SELECT * FROM batch_mints ORDER BY created_at DESC LIMIT 10;",
    "SELECT * FROM mint_queue WHERE status = 'failed';",
    "SELECT * FROM mint_history WHERE payer_address = '0x...' ORDER BY completed_at DESC;",
    "UPDATE system_settings SET value = '5' WHERE key = 'batch_interval_seconds';",
    "UPDATE system_settings SET value = '100' WHERE key = 'max_batch_size';",
    "UPDATE system_settings SET value = '5' WHERE key = 'retry_max_attempts';",
    "SELECT COUNT(*) FROM mint_queue WHERE status = 'pending';",
    "UPDATE mint_queue SET status = 'pending', error_message = NULL WHERE status = 'failed' AND retry_count < 3;",
    "DELETE FROM mint_queue WHERE status = 'completed' AND processed_at < NOW() - INTERVAL '30 days';",
    "VACUUM ANALYZE mint_queue;",
    "VACUUM ANALYZE mint_history;",
]


def test_migrations_are_recorded_and_applying_again_changes_nothing(database_url: str, conn: Any) -> None:
    assert migrations.apply(database_url) == []
    names = [r["name"] for r in conn.execute("SELECT name FROM schema_migrations ORDER BY version")]
    assert names == [m.name for m in migrations.available()]


def test_concurrent_migrators_wait_for_each_other(pg_server: Any) -> None:
    from devstack import postgres

    name = f"mintq_test_migrate_{uuid.uuid4().hex[:8]}"
    url = postgres.ensure_database(pg_server.admin_url, name)
    try:
        results: list[list[str]] = []
        threads = [threading.Thread(target=lambda: results.append(migrations.apply(url))) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(len(r) for r in results) == [0, 0, 0, len(migrations.available())]
    finally:
        postgres.drop_database(pg_server.admin_url, name)


def test_settings_are_seeded(conn: Any) -> None:
    rows = {r["key"]: r["value"] for r in conn.execute("SELECT key, value FROM system_settings")}
    assert rows["batch_interval_seconds"] == "10"
    assert rows["max_batch_size"] == "50"
    assert rows["retry_max_attempts"] == "3"


@pytest.mark.parametrize("statement", SEED_QUERIES)
def test_every_seed_query_runs_as_written(conn: Any, statement: str) -> None:
    conn.execute(statement)


def _oldest_pending_created_at(conn: Any) -> Any:
    return conn.execute("SELECT min(created_at) FROM mint_queue WHERE status = 'pending'").fetchone()["min"]


def test_queue_stats_counters_match_a_full_count_through_every_kind_of_change(conn: Any) -> None:
    rng = random.Random(7)
    for _ in range(120):
        conn.execute(
            "INSERT INTO mint_queue (payer_address, payment_type) VALUES (%(p)s, 'free')",
            {"p": rng.choice(ADDRESSES)},
        )
    claimed = db.rows(conn, "claim_requests", {"limit": 40, "batch_id": uuid.uuid4()})
    db.execute(conn, "release_requests", {"ids": [r["id"] for r in claimed[:10]]})
    db.execute(conn, "fail_requests", {"ids": [r["id"] for r in claimed[10:20]], "reason": "x"})
    # Charge one attempt each (what revert_batch does to a reverted batch's requests).
    conn.execute(
        "UPDATE mint_queue SET retry_count = retry_count + 1, error_message = 'y',"
        " status = CASE WHEN retry_count + 1 >= 3 THEN 'failed'::mint_status ELSE 'pending'::mint_status END,"
        " processed_at = CASE WHEN retry_count + 1 >= 3 THEN now() END"
        " WHERE id = ANY(%(ids)s::uuid[]) AND status = 'processing'",
        {"ids": [r["id"] for r in claimed[20:25]]},
    )
    conn.execute(
        "UPDATE mint_queue SET status = 'completed', processed_at = now() - interval '40 days'"
        " WHERE status = 'processing'"
    )
    conn.execute(
        "UPDATE mint_queue SET status = 'pending', error_message = NULL"
        " WHERE status = 'failed' AND retry_count < 3"
    )
    conn.execute(
        "DELETE FROM mint_queue WHERE status = 'completed' AND processed_at < NOW() - INTERVAL '30 days'"
    )
    with conn.transaction():
        conn.execute(
            "INSERT INTO mint_queue (payer_address, payment_type) VALUES (%(p)s, 'free')", {"p": ADDRESSES[0]}
        )
        conn.execute("DELETE FROM mint_queue WHERE id IN (SELECT id FROM mint_queue LIMIT 3)")
    stats = conn.execute("SELECT * FROM queue_stats").fetchone()
    assert stats == counted_by_scan(conn, oldest_pending=True)
    assert stats["oldest_pending"] == _oldest_pending_created_at(conn)
    conn.execute("TRUNCATE mint_queue")
    assert conn.execute("SELECT * FROM queue_stats").fetchone() == counted_by_scan(conn, oldest_pending=True)


def test_counters_stay_exact_under_concurrent_writers(database_url: str, conn: Any) -> None:
    def writer(seed: int) -> None:
        rng = random.Random(seed)
        with db.connect(database_url) as own:
            for _ in range(60):
                own.execute(
                    "INSERT INTO mint_queue (payer_address, payment_type) VALUES (%(p)s, 'free')",
                    {"p": rng.choice(ADDRESSES)},
                )
            db.rows(own, "claim_requests", {"limit": 15, "batch_id": uuid.uuid4()})

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = conn.execute("SELECT * FROM queue_stats").fetchone()
    assert stats == counted_by_scan(conn, oldest_pending=True)
    # oldest_pending is the head of the line's enqueue time: concurrent inserts can take
    # tickets in a slightly different order than their transactions started, so it may
    # trail the absolute minimum by that race, never by more.
    drift = stats["oldest_pending"] - _oldest_pending_created_at(conn)
    assert drift.total_seconds() < 1.0


def test_one_batch_per_nonce_is_enforced_by_the_database(conn: Any) -> None:
    params = {
        "tx_hash": "0x" + "11" * 32,
        "mint_count": 1,
        "chain_id": 1,
        "signer": "0xS",
        "token": "0xT",
        "nonce": 7,
        "gas_limit": 1,
        "max_fee_per_gas": 1,
        "max_priority_fee_per_gas": 1,
        "amount_per_mint": None,
    }
    db.execute(conn, "insert_batch", {**params, "id": uuid.uuid4()})
    from mintq import errors

    with pytest.raises(errors.DatabaseError, match="UniqueViolation"):
        db.execute(conn, "insert_batch", {**params, "id": uuid.uuid4(), "tx_hash": "0x" + "22" * 32})
