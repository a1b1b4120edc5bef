"""Least-privilege database roles in use, through LOGIN users IN ROLE mintq_api / mintq_worker
as deployments make them: enqueue, status, a real batch on anvil and the payment reconciler each
work under their own role; the API cannot turn the counting off for its own inserts and forgets
only a payment it is settling.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import psycopg
import pytest

from mintq import db, queue, retention
from tests.support.chain import AMOUNT, ChainEnv, drain, fresh_addresses
from tests.support.events import http_event, invoke, queue_item
from tests.support.payment_rows import insert_payment
from tests.support.queue_stats import counted_by_scan
from tests.support.roles import api_url, as_api_handlers, worker_url

__all__ = ["api_url", "worker_url"]  # fixtures, used by name


def test_enqueue_and_status_work_as_the_api_role(
    api_url: str, conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    as_api_handlers(monkeypatch, api_url)
    [alice, bob] = fresh_addresses(2)
    status, body, _ = invoke("enqueue", http_event("POST", "/mint", body={"payer": alice}))
    assert status == 202, body
    queue_id = body["queueId"]
    headers = {"Idempotency-Key": "roles-1"}
    first = invoke("enqueue", http_event("POST", "/mint", body={"payer": bob}, headers=headers))
    again = invoke("enqueue", http_event("POST", "/mint", body={"payer": bob}, headers=headers))
    assert first[0] == again[0] == 202 and first[1]["queueId"] == again[1]["queueId"]

    status, stats, _ = invoke("status", http_event("GET", "/queue/status"))
    assert status == 200 and stats["stats"]["pending_count"] == 2, stats
    status, listed, _ = invoke(
        "status",
        http_event(
            "GET", f"/queue/payer/{alice}", route="/queue/payer/{address}", path_parameters={"address": alice}
        ),
    )
    assert status == 200 and [i["id"] for i in listed["requests"]] == [queue_id], listed
    item = queue_item(queue_id)  # answered 200
    assert (item["status"], item["queue_position"]) == ("pending", 1), item
    # The session really is the API login, not the owner.
    assert (
        conn.execute(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE usename = %(u)s",
            {"u": psycopg.conninfo.conninfo_to_dict(api_url)["user"]},
        ).fetchone()["n"]
        >= 1
    )


@pytest.mark.chain
def test_a_real_batch_on_anvil_and_its_status_work_under_the_worker_and_api_roles(
    chain_env: ChainEnv, api_url: str, worker_url: str, conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    as_api_handlers(monkeypatch, api_url)
    token = chain_env.deploy()
    payers = fresh_addresses(6)
    ids = []
    for payer in payers:
        status, body, _ = invoke("enqueue", http_event("POST", "/mint", body={"payer": payer}))
        assert status == 202, body
        ids.append(body["queueId"])
    worker = chain_env.worker(worker_url, token)
    try:
        assert worker.try_lock()  # the signer lock, claims, records, receipts: all as the worker
        drain(worker)
        db.one(worker.conn, "release_signer_lock", {"lock_name": worker.lock_name})
        # Housekeeping under the same role: idempotency keys past retention are pruned.
        conn.execute(
            "INSERT INTO idempotency_keys (key, request_hash, created_at) VALUES ('old', %(h)s, now() - interval '30 days')",
            {"h": "0" * 64},
        )
        assert queue.prune_idempotency_keys(worker.conn, retention_hours=24) == 1
        # ... and retention deletes finished rows only, never one still waiting.
        waiting = db.one(
            conn, "enqueue_request", {"payer": payers[0], "payment_type": "free", "default_max_pending": 10}
        )
        conn.execute(
            "UPDATE mint_queue SET processed_at = processed_at - interval '2 days' WHERE status = 'completed'"
        )
        assert retention.delete_expired(worker.conn, older_than_days=1) == len(payers)
        left = conn.execute("SELECT id, status::text AS status FROM mint_queue").fetchall()
        assert left == [{"id": waiting["id"], "status": "pending"}]
    finally:
        worker.conn.close()
    # Every mint once on chain, each in mint_history; the API reads them from there now.
    assert chain_env.total_supply(token) // AMOUNT == len(payers)
    archived = conn.execute("SELECT queue_id::text AS id FROM mint_history").fetchall()
    assert sorted(r["id"] for r in archived) == sorted(ids)
    for queue_id in ids:
        item = queue_item(queue_id)  # answered 200
        assert item["status"] == "completed", item
    status, stats, _ = invoke("status", http_event("GET", "/queue/status"))
    assert stats["recentBatches"] and stats["recentBatches"][0]["status"] == "confirmed"


def test_a_login_cannot_turn_the_counting_off_for_its_own_inserts(api_url: str, conn: Any) -> None:
    """mintq_enqueue's statement skips the insert trigger (it counts its own row) by a setting any
    login can set; a direct insert with it set is counted all the same unless it runs as the owner."""
    with psycopg.connect(api_url, autocommit=True) as api:
        api.execute("SET mintq.enqueue = 'on'")
        api.execute(
            "INSERT INTO mint_queue (payer_address, payment_type)"
            " VALUES ('0x2222222222222222222222222222222222222222', 'free')"
        )
    assert conn.execute("SELECT pending_count, unique_payers_pending FROM queue_stats").fetchone() == {
        "pending_count": 1,
        "unique_payers_pending": 1,
    }
    assert conn.execute("SELECT * FROM queue_stats").fetchone() == counted_by_scan(conn, oldest_pending=True)


def test_the_api_forgets_only_a_payment_it_is_settling(api_url: str, conn: Any) -> None:
    """Forgetting (the facilitator was never reached) is the API's only removal of a payment, and
    a settled, pending or failed one, the record that a payer was or was not charged, stays."""
    ids = {}
    for status in ("settling", "settled", "settlement_pending", "failed"):
        ids[status] = insert_payment(conn, "0x11", status)["id"]
    with psycopg.connect(api_url, autocommit=True, row_factory=psycopg.rows.dict_row) as api:
        forgotten = {status: db.one(api, "forget_payment", {"id": id_}) for status, id_ in ids.items()}
    assert forgotten == {
        "settling": {"forgotten": True},
        "settled": {"forgotten": False},
        "settlement_pending": {"forgotten": False},
        "failed": {"forgotten": False},
    }
    left = {r["status"] for r in conn.execute("SELECT status::text FROM payments")}
    assert left == {"settled", "settlement_pending", "failed"}


@pytest.mark.chain
def test_paid_requests_and_the_payment_reconciler_work_under_the_api_and_worker_roles(
    w3: Any,
    chain_env: ChainEnv,
    database_url: str,
    conn: Any,
    api_url: str,
    worker_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.support.x402_client import pay_v2, post_mint, v2_header
    from tests.support.x402_stack import deploy_stack, rows
    from tests.support.x402_stack import drain as drain_paid

    for stack in deploy_stack(w3, chain_env, database_url, monkeypatch, max_mints=100):
        as_api_handlers(monkeypatch, api_url)
        settled, pending = stack.payer(), stack.payer()
        status, body, _ = post_mint(v2_header(pay_v2(settled, stack)))
        assert (status, body["paymentStatus"]) == (202, "settled"), body
        stack.facilitator.mode = "settle_pending"
        status, body, _ = post_mint(v2_header(pay_v2(pending, stack)))
        assert (status, body["paymentStatus"]) == (202, "settlement_pending"), body
        stack.facilitator.mode = "up"
        # The worker login mints the settled one and reconciles the pending one into a mint.
        drain_paid(dataclasses.replace(stack, database_url=worker_url), reconcile=True)
        assert stack.minted(settled.address) == stack.minted(pending.address) == 1
        assert {p["status"] for p in rows(conn, "payments")} == {"settled"}
        item = queue_item(body["queueId"])  # answered 200
        assert (item["status"], item["payment_status"]) == ("completed", "settled"), item
