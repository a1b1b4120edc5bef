"""Least-privilege database roles in use: what each must never do (delete or rewrite history,
skip the counting, change the schema) is refused to a LOGIN user IN ROLE mintq_api or
mintq_worker, the way a deployment makes its logins.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.support import roles
from tests.support.roles import API, WORKER

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
