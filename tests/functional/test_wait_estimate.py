"""estimatedWaitSeconds from measured throughput: the worker's confirmations keep one row
(migration 0012), and the enqueue answer, the item answer and /queue/status read it."""

from __future__ import annotations

import uuid
from typing import Any

from tests.support.events import http_event, invoke

ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
BOB = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def enqueue(payer: str) -> dict[str, Any]:
    status, body, _ = invoke("enqueue", http_event("POST", "/mint", body={"payer": payer}))
    assert status == 202, body
    return body


def get(path: str, route: str, params: dict[str, str] | None = None) -> dict[str, Any]:
    status, body, _ = invoke("status", http_event("GET", path, route=route, path_parameters=params))
    assert status == 200, body
    return body


def finish_batches(conn: Any, batches: list[tuple[int, float, float]], status: str = "confirmed") -> None:
    """Batches of ``(mints, broadcast seconds ago, finished seconds ago)``, recorded in one
    transaction so that ``now()`` is one instant for them and for the trigger."""
    with conn.transaction():
        for mints, sent_ago, done_ago in batches:
            row = conn.execute(
                "INSERT INTO batch_mints (batch_tx_hash, mint_count, status, sent_at, chain_id,"
                " signer_address, token_address, nonce, gas_limit, max_fee_per_gas, max_priority_fee_per_gas)"
                " VALUES (%(hash)s, %(mints)s, 'pending', now() - make_interval(secs => %(sent)s), 31337,"
                " %(signer)s, %(token)s, (SELECT count(*) FROM batch_mints), 1000000, 1, 1) RETURNING id",
                {
                    "hash": "0x" + uuid.uuid4().hex * 2,
                    "mints": mints,
                    "sent": sent_ago,
                    "signer": ALICE,
                    "token": TOKEN,
                },
            ).fetchone()
            conn.execute(
                "UPDATE batch_mints SET status = %(status)s, confirmed_at = now() - make_interval(secs => %(done)s)"
                " WHERE id = %(id)s",
                {"status": status, "done": done_ago, "id": row["id"]},
            )


def test_without_history_the_estimate_is_nominal(database_url: str, conn: Any, set_setting: Any) -> None:
    set_setting("max_batch_size", 2)
    set_setting("batch_interval_seconds", 7)
    waits = [enqueue(ALICE)["estimatedWaitSeconds"] for _ in range(3)]
    assert waits == [7, 7, 14]  # one interval per batch ahead
    status = get("/queue/status", "/queue/status")
    assert status["throughput"]["mintsPerSecond"] is None
    assert status["estimatedWaitSeconds"] == 14  # the 4th in line
    # One batch is no rate yet (a rate needs two confirmations to span).
    finish_batches(conn, [(50, 2, 0)])
    assert enqueue(BOB)["estimatedWaitSeconds"] == 14  # still nominal for the 4th in line


def test_confirmed_batches_set_the_rate_and_every_answer_uses_it(
    database_url: str, conn: Any, set_setting: Any
) -> None:
    set_setting("max_batch_size", 2)
    set_setting("batch_interval_seconds", 60)  # the nominal estimate would say minutes
    # 16 mints confirmed in the 8 s after the first confirmation: 2 mints/s; batches of up to
    # 16 leave every 8 s; broadcast to receipt took 1 s and 2 s: 1.5 s per batch.
    finish_batches(conn, [(4, 9, 8), (16, 2, 0)])
    first, second, third = (enqueue(ALICE) for _ in range(3))
    # All three ride the next batch: half a period on average, then its receipt: 4 + 1.5.
    assert [a["estimatedWaitSeconds"] for a in (first, second, third)] == [6, 6, 6]
    path = f"/queue/item/{third['queueId']}"
    assert get(path, "/queue/item/{queueId}", {"queueId": third["queueId"]})["estimatedWaitSeconds"] == 6
    status = get("/queue/status", "/queue/status")
    assert status["throughput"] == {
        "mintsPerSecond": 2.0,
        "confirmSeconds": 1.5,
        "mintsPerBatch": 16,
        "batchPeriodSeconds": 8.0,
        "windowSeconds": 300,
    }
    assert status["estimatedWaitSeconds"] == 6  # the 4th in line, in the same batch
    for n in range(13):
        enqueue(f"0x{n + 1:040x}")  # other payers (each payer may have 10 pending)
    # The 17th in line rides the second batch: 1.5 periods and a receipt, 12 + 1.5.
    assert enqueue(BOB)["estimatedWaitSeconds"] == 14


def test_reverted_batches_do_not_count_and_old_history_falls_back_to_nominal(
    database_url: str, conn: Any, set_setting: Any
) -> None:
    set_setting("max_batch_size", 5)
    set_setting("batch_interval_seconds", 30)
    finish_batches(conn, [(50, 11, 10), (50, 2, 1)], status="failed")
    assert enqueue(ALICE)["estimatedWaitSeconds"] == 30
    finish_batches(conn, [(10, 5, 4), (10, 2, 0)])
    # Batches of 10 every 4 s (the reverted ones are not counted), 1.5 s per confirmation;
    # Bob is 2nd in line, in the next batch: 4 / 2 + 1.5 = 3.5, rounded up.
    assert enqueue(BOB)["estimatedWaitSeconds"] == 4
    # Five minutes without a confirmation: the measurement is stale, the nominal estimate is back.
    conn.execute("UPDATE mint_throughput SET measured_at = now() - interval '301 seconds'")
    assert enqueue(BOB)["estimatedWaitSeconds"] == 30
    assert get("/queue/status", "/queue/status")["throughput"]["mintsPerSecond"] is None


def test_a_steady_cadence_measures_batch_size_over_period_whatever_the_count(
    database_url: str, conn: Any
) -> None:
    # Batches of 5 every 10 s, each confirming 1 s after broadcast: 0.5 mints/s, for 2 or 4 batches.
    finish_batches(conn, [(5, 31, 30), (5, 21, 20)])
    assert conn.execute("SELECT mints_per_second FROM mint_throughput").fetchone()["mints_per_second"] == 0.5
    finish_batches(conn, [(5, 11, 10), (5, 1, 0)])
    row = conn.execute(
        "SELECT mints_per_second, confirm_seconds, mints_per_batch, batch_period_seconds FROM mint_throughput"
    ).fetchone()
    # The first two were recorded a moment earlier, so their "30 s ago" is slightly more.
    assert abs(row["mints_per_second"] - 0.5) < 0.01
    assert abs(row["confirm_seconds"] - 1.0) < 0.01
    assert row["mints_per_batch"] == 5
    assert abs(row["batch_period_seconds"] - 10.0) < 0.1


def test_a_confirmation_never_waits_for_another_worker_holding_the_measurement(
    database_url: str, conn: Any
) -> None:
    from mintq import db

    other = db.connect(database_url)  # another signer's worker, stuck inside its transaction
    try:
        other.execute("BEGIN")
        other.execute("SELECT * FROM mint_throughput FOR UPDATE")
        conn.execute("SET statement_timeout = '3s'")  # waiting would raise QueryCanceled
        finish_batches(conn, [(5, 11, 10), (5, 1, 0)])
        assert (
            conn.execute("SELECT count(*) AS n FROM batch_mints WHERE status = 'confirmed'").fetchone()["n"]
            == 2
        )
        other.execute("ROLLBACK")
    finally:
        other.close()
    finish_batches(conn, [(5, 1, 0)])  # the next confirmation measures as usual
    row = conn.execute("SELECT mints_per_second FROM mint_throughput").fetchone()
    # 10 mints in the 10 s (and the moment between the two transactions) after the first
    assert 0.9 < row["mints_per_second"] <= 1.0
