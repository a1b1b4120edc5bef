"""Least-privilege database roles (migration 0010), against the real PostgreSQL.

Every table, view, sequence and function of the schema has a decision for each role in
``GRANTS``; the database must grant exactly that, so an object a later migration adds without
a decision fails here. Then the roles are used as deployments use them, through LOGIN users
IN ROLE mintq_api / mintq_worker: what the API must never do is refused, and enqueue, status,
a real batch on anvil and the payment reconciler each work under their own role.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from mintq import config, db, migrations, queue, retention
from tests.support import roles
from tests.support.chain import AMOUNT, ChainEnv, drain, fresh_addresses
from tests.support.events import http_event, invoke
from tests.support.payment_rows import insert_payment
from tests.support.queue_stats import counted_by_scan

API, WORKER = "mintq_api", "mintq_worker"


def cols(privilege: str, columns: str) -> set[str]:
    return {f"{privilege}({c})" for c in columns.split()}


PAID_REQUEST_COLUMNS = (
    "id queue_position enqueue_position payer_address payment_type payment_id payment_tx_hash tx_hash_bytes32"
)
#: object -> (what mintq_api holds, what mintq_worker holds). PUBLIC holds nothing on any of them.
#: A new object needs a line here, and migrations/grants.sql the grants it states.
GRANTS: dict[str, tuple[set[str], set[str]]] = {
    # tables
    "mint_queue": (
        {"SELECT"} | cols("INSERT", PAID_REQUEST_COLUMNS),
        {"SELECT"}
        | cols("INSERT", PAID_REQUEST_COLUMNS)
        | cols("UPDATE", "status batch_id retry_count error_message processed_at mint_tx_hash"),
    ),
    "mint_history": ({"SELECT"}, {"SELECT", "INSERT"}),
    "batch_mints": (
        {"SELECT"},
        {"SELECT", "INSERT"}
        | cols(
            "UPDATE",
            "status batch_tx_hash sent_at confirmed_at block_number gas_used effective_gas_price"
            " error_message max_fee_per_gas max_priority_fee_per_gas",
        ),
    ),
    "batch_attempts": (cols("SELECT", "batch_id tx_hash attempt"), {"SELECT", "INSERT", "UPDATE(status)"}),
    "system_settings": ({"SELECT"}, {"SELECT"}),
    "queue_cursor": ({"SELECT"}, {"SELECT", "UPDATE(claimed_through)"}),
    # written by the owner's triggers and mintq_enqueue, read through queue_stats
    "queue_counts": (set(), set()),
    "payer_pending": ({"SELECT"}, set()),
    # mirrored from system_settings by the owner's trigger, read by mintq_enqueue (as the owner)
    "enqueue_settings": (set(), set()),
    "idempotency_keys": (
        {"SELECT"} | cols("INSERT", "key request_hash") | cols("UPDATE", "queue_id status_code response"),
        {"SELECT", "DELETE", "UPDATE(created_at)"},
    ),
    "payments": (
        {"SELECT"}
        | cols(
            "INSERT",
            "payer_address auth_nonce x402_version network asset pay_to amount valid_before"
            " signature_hash payload requirements from_block lease_until",
        )
        | cols("UPDATE", "status settlement_tx_hash settled_at lease_until error_reason"),
        {"SELECT"}
        | cols("UPDATE", "status settlement_tx_hash settled_at lease_until error_reason checked_at"),
    ),
    "schema_migrations": (set(), set()),
    "worker_refusals": (
        {"SELECT"},
        {"SELECT", "INSERT", "DELETE"} | cols("UPDATE", "code reason since last_seen_at"),
    ),
    "mint_throughput": (
        {"SELECT"},
        {"SELECT"}
        | cols("UPDATE", "mints_per_second confirm_seconds mints_per_batch batch_period_seconds measured_at"),
    ),
    # views
    "queue_stats": ({"SELECT"}, {"SELECT"}),
    "refunds_due": (set(), set()),  # operators only
    # sequences
    "mint_queue_position_seq": ({"USAGE"}, {"USAGE"}),
    "mint_history_id_seq": (set(), {"USAGE"}),
    # functions
    "mintq_enqueue(text,text,integer)": ({"EXECUTE"}, set()),
    "mintq_queue_position(bigint)": ({"EXECUTE"}, {"EXECUTE"}),
    "mintq_apply_counts(jsonb,jsonb)": (set(), set()),  # only the owner's counter triggers call it
    "mint_queue_count_insert()": (set(), set()),
    "mint_queue_count_update()": (set(), set()),
    "mint_queue_count_delete()": (set(), set()),
    "mint_queue_count_truncate()": (set(), set()),
    "mintq_touch_updated_at()": (set(), set()),
    "mintq_mirror_enqueue_settings()": (set(), set()),  # a trigger: fired, never called
    "mintq_measure_throughput()": (set(), set()),  # a trigger: fired, never called
    # x402, run as the owner: a payment the facilitator never saw, while it is settling only
    "mintq_forget_payment(uuid)": ({"EXECUTE"}, set()),
    # retention, run as the owner: finished rows only
    "mintq_delete_expired_queue_rows(double precision,integer)": (set(), {"EXECUTE"}),
}

_OBJECTS = """
SELECT c.relname AS name, c.relkind::text AS kind,
       coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner)) AS acl
  FROM pg_class c
 WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                   AND d.deptype = 'e')
UNION ALL
SELECT replace(p.oid::regprocedure::text, ', ', ','), 'function', coalesce(p.proacl, acldefault('f', p.proowner))
  FROM pg_proc p
 WHERE p.pronamespace = current_schema()::regnamespace
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                   AND d.deptype = 'e')
"""

_GRANTED = """
SELECT o.name, coalesce(r.rolname, 'PUBLIC') AS grantee, a.privilege_type
  FROM objects o CROSS JOIN LATERAL aclexplode(o.acl) a
  LEFT JOIN pg_roles r ON r.oid = a.grantee
UNION ALL
SELECT c.relname, coalesce(r.rolname, 'PUBLIC'), a.privilege_type || '(' || att.attname || ')'
  FROM pg_attribute att JOIN pg_class c ON c.oid = att.attrelid
 CROSS JOIN LATERAL aclexplode(att.attacl) a
  LEFT JOIN pg_roles r ON r.oid = a.grantee
 WHERE c.relnamespace = current_schema()::regnamespace AND att.attacl IS NOT NULL
"""


def schema_objects(conn: Any) -> dict[str, str]:
    return {r["name"]: r["kind"] for r in conn.execute(_OBJECTS)}


def granted(conn: Any) -> dict[tuple[str, str], set[str]]:
    found: dict[tuple[str, str], set[str]] = {}
    for r in conn.execute(f"WITH objects AS ({_OBJECTS}) {_GRANTED}"):
        found.setdefault((r["name"], r["grantee"]), set()).add(r["privilege_type"])
    return found


def test_every_schema_object_has_a_grant_decision_for_each_role_and_the_database_grants_exactly_that(
    conn: Any,
) -> None:
    objects = schema_objects(conn)
    undecided = sorted(set(objects) - set(GRANTS))
    assert not undecided, (
        f"no grant decision for {undecided}: grant them to mintq_api / mintq_worker (or not) in their"
        " migration and classify them in GRANTS"
    )
    assert not sorted(set(GRANTS) - set(objects)), "GRANTS names objects the schema no longer has"
    actual = granted(conn)
    for name in objects:
        api, worker = GRANTS[name]
        assert actual.get((name, API), set()) == api, name
        assert actual.get((name, WORKER), set()) == worker, name
        assert actual.get((name, "PUBLIC"), set()) == set(), f"PUBLIC may use {name}"


def test_every_migration_run_restores_exactly_the_granted_privileges(database_url: str, conn: Any) -> None:
    """grants.sql is re-applied on every run: a stray grant goes, a lost one comes back (0013
    recreates mintq_enqueue after 0010; a recreated object would otherwise lose its grants)."""
    before = granted(conn)
    conn.execute("GRANT DELETE ON mint_queue TO mintq_worker")
    conn.execute("GRANT UPDATE (payer_address) ON mint_queue TO mintq_api")
    conn.execute("REVOKE EXECUTE ON FUNCTION mintq_enqueue(text, text, integer) FROM mintq_api")
    assert granted(conn) != before
    assert migrations.apply(database_url) == []
    assert granted(conn) == before


def test_neither_role_can_create_in_the_schema_nor_owns_anything(conn: Any) -> None:
    for role in (API, WORKER):
        row = conn.execute(
            "SELECT has_schema_privilege(%(r)s, current_schema(), 'CREATE') AS can_create,"
            " (SELECT count(*) FROM pg_class WHERE relowner = %(r)s::regrole)"
            " + (SELECT count(*) FROM pg_proc WHERE proowner = %(r)s::regrole) AS owned,"
            " (SELECT rolcanlogin OR rolsuper OR rolcreaterole OR rolcreatedb FROM pg_roles"
            "   WHERE rolname = %(r)s) AS powers",
            {"r": role},
        ).fetchone()
        assert row == {"can_create": False, "owned": 0, "powers": False}, role


# --- the roles in use ----------------------------------------------------------------------


@pytest.fixture
def api_url(pg_server: Any, database_url: str) -> Iterator[str]:
    with roles.login(pg_server.admin_url, API) as user:
        yield roles.as_user(database_url, user)


@pytest.fixture
def worker_url(pg_server: Any, database_url: str) -> Iterator[str]:
    with roles.login(pg_server.admin_url, WORKER) as user:
        yield roles.as_user(database_url, user)


def as_api_handlers(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """The enqueue and status handlers connect with ``url`` from now on."""
    monkeypatch.setenv("MINTQ_DATABASE_URL", url)
    config.reset()
    db.close_shared_connection()


REFUSED_TO_THE_API = [
    "UPDATE batch_mints SET status = 'failed'",
    "UPDATE mint_queue SET status = 'completed'",
    "UPDATE mint_queue SET retry_count = 0",
    "DELETE FROM mint_queue",
    "DELETE FROM mint_history",
    "INSERT INTO mint_queue (payer_address, payment_type, status) VALUES ('0x00', 'free', 'completed')",
    "INSERT INTO mint_history (queue_id, payer_address, mint_tx_hash, payment_type, created_at)"
    " VALUES (gen_random_uuid(), '0x00', '0x00', 'free', now())",
    "INSERT INTO batch_mints (batch_tx_hash, mint_count, chain_id, signer_address, token_address, nonce,"
    " gas_limit, max_fee_per_gas, max_priority_fee_per_gas) VALUES ('0x', 1, 1, '0x', '0x', 0, 1, 1, 1)",
    "SELECT raw_tx FROM batch_attempts",
    "UPDATE queue_counts SET pending = 0",
    "UPDATE queue_cursor SET claimed_through = 0",
    "UPDATE system_settings SET value = '1'",
    "DELETE FROM idempotency_keys",
    "DELETE FROM payments",  # forgetting goes through mintq_forget_payment: settling rows only
    "SELECT mintq_apply_counts('{\"pending\": 5}', '{}')",
    "SELECT * FROM refunds_due",
    "SELECT * FROM mintq_delete_expired_queue_rows(0, 100)",
    "DELETE FROM worker_refusals",
    "TRUNCATE mint_queue",
    "ALTER TABLE mint_queue ADD COLUMN sneaky int",
    "ALTER TABLE batch_mints DROP CONSTRAINT batch_mints_nonce_key",
    "DROP TABLE mint_history",
    "CREATE TABLE sneaky (x int)",
    "CREATE FUNCTION sneaky() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "CREATE OR REPLACE FUNCTION mintq_touch_updated_at() RETURNS trigger LANGUAGE plpgsql"
    " AS 'BEGIN RETURN NULL; END'",
]
REFUSED_TO_THE_WORKER = [
    "DELETE FROM mint_queue",
    "DELETE FROM mint_history",
    "UPDATE mint_history SET mint_tx_hash = '0x00'",
    "DELETE FROM batch_mints",
    "UPDATE batch_mints SET nonce = nonce + 1",
    "UPDATE mint_queue SET payer_address = '0x00'",
    "INSERT INTO payments (payer_address, auth_nonce, x402_version, network, asset, pay_to, amount,"
    " valid_before, signature_hash, payload, requirements) VALUES ('0x', '0x', 2, 'n', '0x', '0x', 1, 1,"
    " 'h', '{}', '{}')",
    "DELETE FROM payments",
    "UPDATE system_settings SET value = '1'",
    "UPDATE queue_counts SET pending = 0",
    "SELECT mintq_apply_counts('{\"pending\": 5}', '{}')",
    "SELECT * FROM mintq_enqueue('0x00', 'free', 10)",
    "SELECT mintq_forget_payment(gen_random_uuid())",
    "DELETE FROM mint_queue WHERE status = 'completed'",  # retention goes through its function
    "TRUNCATE mint_queue",
    "ALTER TABLE mint_queue ADD COLUMN sneaky int",
    "DROP VIEW queue_stats",
    "CREATE TABLE sneaky (x int)",
]


@pytest.mark.parametrize(
    ("role", "statement"),
    [(API, s) for s in REFUSED_TO_THE_API] + [(WORKER, s) for s in REFUSED_TO_THE_WORKER],
)
def test_each_role_is_refused_what_it_must_never_do(
    pg_server: Any, database_url: str, conn: Any, role: str, statement: str
) -> None:
    # Rows to act on, so a granted UPDATE or DELETE could not pass for a refusal by matching nothing.
    queue_id = conn.execute(
        "SELECT id FROM mintq_enqueue('0x1111111111111111111111111111111111111111', 'free', 10)"
    ).fetchone()["id"]
    conn.execute(
        "INSERT INTO mint_history (queue_id, payer_address, mint_tx_hash, payment_type, created_at)"
        " VALUES (%(id)s, '0x11', '0x22', 'free', now())",
        {"id": queue_id},
    )
    with (
        roles.login(pg_server.admin_url, role) as user,
        psycopg.connect(roles.as_user(database_url, user), autocommit=True) as session,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        session.execute(statement.encode())


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
    status, item, _ = invoke(
        "status",
        http_event(
            "GET",
            f"/queue/item/{queue_id}",
            route="/queue/item/{queueId}",
            path_parameters={"queueId": queue_id},
        ),
    )
    assert (status, item["status"], item["queue_position"]) == (200, "pending", 1), item
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
        status, item, _ = invoke(
            "status",
            http_event(
                "GET",
                f"/queue/item/{queue_id}",
                route="/queue/item/{queueId}",
                path_parameters={"queueId": queue_id},
            ),
        )
        assert (status, item["status"]) == (200, "completed"), item
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
        status, item, _ = invoke(
            "status",
            http_event(
                "GET",
                f"/queue/item/{body['queueId']}",
                route="/queue/item/{queueId}",
                path_parameters={"queueId": body["queueId"]},
            ),
        )
        assert (status, item["status"], item["payment_status"]) == (200, "completed", "settled"), item
