"""Least-privilege database roles (migration 0010), against the real PostgreSQL: the grants.

Every table, view, sequence and function of the schema has a decision for each role in
``GRANTS``; the database must grant exactly that, so an object a later migration adds without
a decision fails here. Every migration run restores exactly those grants, and neither role may
create anything or owns anything.
"""

from __future__ import annotations

from typing import Any

from mintq import migrations
from tests.support.roles import API, WORKER


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
