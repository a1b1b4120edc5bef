"""Status reads from a real streaming read replica, with read-your-write through the primary."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from mintq import config, db, migrations
from tests.support.chain import fresh_addresses
from tests.support.events import get_queue_item, http_event, invoke
from tests.support.replica import Pair, primary_with_replica


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    with primary_with_replica() as started:
        migrations.apply(started.primary_url)
        yield started


@pytest.fixture
def wired(pair: Pair, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pair]:
    monkeypatch.setenv("MINTQ_DATABASE_URL", pair.primary_url)
    monkeypatch.setenv("MINTQ_DATABASE_READER_URL", pair.replica_url)
    config.reset()
    db.close_shared_connection()
    replica = db.connect(pair.replica_url)
    _wait_caught_up(pair)
    yield pair
    replica.execute("SELECT pg_wal_replay_resume()")
    replica.close()
    db.close_shared_connection()
    config.reset()


def _wait_caught_up(pair: Pair, timeout: float = 20) -> None:
    primary = db.connect(pair.primary_url)
    replica = db.connect(pair.replica_url)
    try:
        replica.execute("SELECT pg_wal_replay_resume()")
        target = primary.execute("SELECT pg_current_wal_lsn() AS lsn").fetchone()["lsn"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = replica.execute(
                "SELECT pg_last_wal_replay_lsn() >= %(t)s::pg_lsn AS done", {"t": target}
            ).fetchone()
            if row["done"]:
                return
            time.sleep(0.05)
        raise AssertionError("the replica did not catch up")
    finally:
        primary.close()
        replica.close()


def test_status_reads_come_from_the_replica_and_say_how_stale_they_may_be(wired: Pair) -> None:
    replica = db.connect(wired.replica_url)
    primary = db.connect(wired.primary_url)
    try:
        assert replica.execute("SELECT pg_is_in_recovery() AS r").fetchone()["r"] is True
        replica.execute("SELECT pg_wal_replay_pause()")
        primary.execute("UPDATE system_settings SET value = '77' WHERE key = 'max_batch_size'")
        time.sleep(1.1)  # the lag is measured against the last replayed transaction's time
        status, body, _ = invoke("status", http_event("GET", "/queue/status"))
        assert status == 200
        assert body["maxBatchSize"] == 50, "served by the replica, which has not replayed the change"
        assert body["replicaLagSeconds"] >= 1.0
        replica.execute("SELECT pg_wal_replay_resume()")
        _wait_caught_up(wired)
        _, body, _ = invoke("status", http_event("GET", "/queue/status"))
        assert body["maxBatchSize"] == 77 and body["replicaLagSeconds"] == 0
    finally:
        primary.execute("UPDATE system_settings SET value = '50' WHERE key = 'max_batch_size'")
        replica.close()
        primary.close()


def test_a_request_just_enqueued_is_found_through_the_primary_while_the_replica_lags(wired: Pair) -> None:
    replica = db.connect(wired.replica_url)
    try:
        replica.execute("SELECT pg_wal_replay_pause()")
        payer = fresh_addresses(1)[0]
        status, body, _ = invoke("enqueue", http_event("POST", "/mint", body={"payer": payer}))
        assert status == 202
        queue_id = body["queueId"]
        assert (
            replica.execute(
                "SELECT count(*) AS n FROM mint_queue WHERE id = %(i)s", {"i": queue_id}
            ).fetchone()["n"]
            == 0
        ), "the replica must not have the request yet for this test to mean anything"
        status, item = get_queue_item(queue_id)
        assert status == 200 and item["id"] == queue_id and item["status"] == "pending"
        status, page, _ = invoke(
            "status",
            http_event(
                "GET",
                f"/queue/payer/{payer}",
                route="/queue/payer/{address}",
                path_parameters={"address": payer},
            ),
        )
        assert status == 200 and [r["id"] for r in page["requests"]] == [queue_id]
        status, missing = get_queue_item("00000000-0000-4000-8000-000000000000")
        assert status == 404 and missing["error"]["code"] == "not_found"
    finally:
        replica.execute("SELECT pg_wal_replay_resume()")
        replica.close()
