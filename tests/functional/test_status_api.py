"""GET /queue/* through the real handler and a real PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

from mintq.worker import repository
from tests.support.events import http_event, invoke

ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
BOB = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
ITEM_KEYS = {
    "id",
    "payer_address",
    "status",
    "queue_position",
    "created_at",
    "updated_at",
    "processed_at",
    "mint_tx_hash",
    "error_message",
    "retry_count",
    "payment_type",
    "waiting_reason",
    "estimatedWaitSeconds",
}
PAYER_ITEM_KEYS = {
    "id",
    "status",
    "queue_position",
    "created_at",
    "processed_at",
    "mint_tx_hash",
    "error_message",
}


def enqueue(payer: str) -> str:
    status, body, _ = invoke("enqueue", http_event("POST", "/mint", body={"payer": payer}))
    assert status == 202, body
    return str(body["queueId"])


def get(
    path: str, route: str, params: dict[str, str] | None = None, query: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    status, body, _ = invoke(
        "status", http_event("GET", path, route=route, path_parameters=params, query=query)
    )
    return status, body


def payer(address: str, query: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    return get(f"/queue/payer/{address}", "/queue/payer/{address}", {"address": address}, query)


def item(queue_id: str) -> tuple[int, dict[str, Any]]:
    return get(f"/queue/item/{queue_id}", "/queue/item/{queueId}", {"queueId": queue_id})


def test_status_reports_counts_recent_batches_and_live_settings(database_url: str, set_setting: Any) -> None:
    enqueue(ALICE)
    enqueue(ALICE)
    enqueue(BOB)
    set_setting("max_batch_size", 120)
    set_setting("batch_interval_seconds", 7)
    status, body = get("/queue/status", "/queue/status")
    assert status == 200
    assert set(body) == {
        "stats",
        "recentBatches",
        "batchInterval",
        "maxBatchSize",
        "worker",
        "paused",
        "apiClosed",
        "replicaLagSeconds",
        "throughput",
        "estimatedWaitSeconds",
    }
    assert (body["paused"], body["apiClosed"], body["replicaLagSeconds"]) == (False, False, 0)
    assert body["batchInterval"] == 7
    assert body["maxBatchSize"] == 120
    # No batch has confirmed: no measured rate, and the nominal estimate for the 4th in line.
    assert body["throughput"] == {
        "mintsPerSecond": None,
        "confirmSeconds": None,
        "mintsPerBatch": None,
        "batchPeriodSeconds": None,
        "windowSeconds": 300,
    }
    assert body["estimatedWaitSeconds"] == 7
    stats = body["stats"]
    assert stats["pending_count"] == 3
    assert stats["processing_count"] == 0
    assert stats["unique_payers_pending"] == 2
    assert stats["oldest_pending"].endswith("Z")
    assert body["recentBatches"] == []
    assert body["worker"] == {"state": "ok", "reason": None, "since": None, "signers": []}


def test_payer_lookup_is_case_insensitive_newest_first_and_paginated(database_url: str) -> None:
    ids = [enqueue(ALICE) for _ in range(5)]
    enqueue(BOB)
    status, first = payer(ALICE.lower(), {"limit": "2"})
    assert status == 200
    assert first["payer"] == ALICE
    assert [r["id"] for r in first["requests"]] == ids[::-1][:2]
    assert set(first["requests"][0]) == PAYER_ITEM_KEYS
    _, second = payer(ALICE.upper().replace("0X", "0x"), {"limit": "2", "cursor": first["nextCursor"]})
    _, third = payer(ALICE, {"limit": "2", "cursor": second["nextCursor"]})
    assert [r["id"] for r in second["requests"] + third["requests"]] == ids[::-1][2:]
    assert third["nextCursor"] is None
    assert payer(ALICE)[1]["requests"][0]["queue_position"] == 5


def test_payer_lookup_rejects_bad_addresses_limits_and_cursors(database_url: str) -> None:
    assert payer("0x1234")[0] == 400
    assert payer(ALICE[:-1] + "c")[0] == 400
    for limit in ("0", "101", "ten"):
        status, body = payer(ALICE, {"limit": limit})
        # The README's table: a bad limit is 400 invalid_request (a bad request line, not a body).
        assert (status, body["error"]["code"]) == (400, "invalid_request")
    status, body = payer(ALICE, {"cursor": "!!!not-ours"})
    assert status == 400 and body["error"]["code"] == "invalid_request"


def test_item_lookup_shows_public_fields_only(database_url: str, conn: Any) -> None:
    queue_id = enqueue(ALICE)
    conn.execute(
        "UPDATE mint_queue SET authorization_data = %(a)s WHERE id = %(id)s",
        {"a": '{"signature": "0xsecret"}', "id": uuid.UUID(queue_id)},
    )
    status, body = item(queue_id)
    assert status == 200
    assert set(body) == ITEM_KEYS
    assert body["status"] == "pending"
    assert body["queue_position"] == 1
    assert "0xsecret" not in str(body)


def test_item_lookup_answers_400_for_non_uuids_and_404_for_unknown_ids(database_url: str) -> None:
    status, body = item("not-a-uuid")
    assert (status, body["error"]["code"]) == (400, "invalid_queue_id")
    status, body = item(str(uuid.uuid4()))
    assert (status, body["error"]["code"]) == (404, "not_found")


def test_completed_items_stay_visible_after_the_seed_cleanup_deletes_their_queue_rows(
    database_url: str, conn: Any
) -> None:
    queue_id = enqueue(ALICE)
    tx = "0x" + "ab" * 32
    conn.execute(
        "INSERT INTO mint_history (queue_id, payer_address, mint_tx_hash, amount, payment_type, created_at)"
        " SELECT id, payer_address, %(tx)s, '1', payment_type, created_at FROM mint_queue WHERE id = %(id)s",
        {"tx": tx, "id": uuid.UUID(queue_id)},
    )
    conn.execute(
        "UPDATE mint_queue SET status = 'completed', processed_at = now() - interval '31 days',"
        " mint_tx_hash = %(tx)s WHERE id = %(id)s",
        {"tx": tx, "id": uuid.UUID(queue_id)},
    )
    # The seed's maintenance query, as written:
    conn.execute(
        "DELETE FROM mint_queue WHERE status = 'completed' AND processed_at < NOW() - INTERVAL '30 days'"
    )
    status, body = item(queue_id)
    assert status == 200
    assert (body["status"], body["mint_tx_hash"]) == ("completed", tx)


def test_positions_shrink_as_the_worker_claims_and_requeued_requests_count_ahead(
    database_url: str, conn: Any
) -> None:
    ids = [enqueue(ALICE if i % 2 else BOB) for i in range(6)]
    with repository.claiming(conn, limit=2, batch_id=uuid.uuid4()) as claimed:
        pass  # the worker's claim: as its transaction ends, the claim cursor moves past them
    assert [str(c.id) for c in claimed] == ids[:2]
    assert [item(i)[1]["queue_position"] for i in ids[2:]] == [1, 2, 3, 4]
    # One claimed request goes back in line: it is now ahead of everybody.
    repository.release(conn, claimed[:1])
    assert item(ids[0])[1]["queue_position"] == 1
    assert [item(i)[1]["queue_position"] for i in ids[2:]] == [2, 3, 4, 5]
    # And a new request is told the truth.
    _status, body, _ = invoke("enqueue", http_event("POST", "/mint", body={"payer": BOB}))
    assert body["queuePosition"] == 6
