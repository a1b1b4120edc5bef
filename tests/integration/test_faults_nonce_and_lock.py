"""Fault injection on the signer's nonce and lock: a worker killed before broadcasting whose nonce
someone else then takes, and a frozen worker that wakes after another took its lock over.

No accepted request is lost, none minted twice (tests/support/fault_injection.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.chain import (
    MINTER,
    ChainEnv,
    assert_exactly_once,
    batch_statuses,
    enqueue_all,
    fresh_addresses,
    statuses,
    take_nonce,
)
from tests.support.fault_injection import chain_nonce, restart_and_drain, spawn_worker, wait_for
from tests.support.worker_process import application_name

pytestmark = pytest.mark.chain
__all__ = ["spawn_worker"]  # the fixture, used by name


# --- (f) killed between record and broadcast; then the nonce is taken ---------------


def test_a_worker_killed_before_broadcast_whose_nonce_is_then_taken_has_its_batch_dropped_and_reminted(
    chain_env: ChainEnv, conn: Any, database_url: str, set_setting: Any, spawn_worker: Any
) -> None:
    token = chain_env.deploy()
    set_setting("batch_interval_seconds", 1)
    enqueue_all(conn, fresh_addresses(6))
    proc = spawn_worker(token, crash_at="after_record", seconds=30)
    assert proc.wait(timeout=45) == -9, proc.stderr()[-3000:]
    lost = conn.execute("SELECT id, nonce, status::text FROM batch_mints").fetchone()
    assert lost["status"] == "signed"
    assert chain_nonce(chain_env, "pending") == lost["nonce"], "the batch never reached the node"
    take_nonce(chain_env, lost["nonce"])
    restart_and_drain(chain_env, database_url, token)
    batches = conn.execute("SELECT id, nonce, status::text FROM batch_mints ORDER BY nonce").fetchall()
    assert (batches[0]["id"], batches[0]["status"]) == (lost["id"], "dropped")
    assert [b["status"] for b in batches[1:]] == ["confirmed"]
    assert batches[1]["nonce"] == lost["nonce"] + 1
    rows = conn.execute("SELECT status::text, retry_count FROM mint_queue").fetchall()
    assert {(r["status"], r["retry_count"]) for r in rows} == {("completed", 0)}, "a drop charges nobody"
    assert assert_exactly_once(chain_env, conn, token) == 6


# --- (g) a frozen worker loses its lock, another takes over, then the frozen one wakes ---


@pytest.mark.parametrize("point", ["after_claim", "after_sign", "after_record", "after_broadcast"])
def test_a_frozen_worker_that_wakes_after_another_took_over_sends_nothing_that_conflicts(
    chain_env: ChainEnv, conn: Any, database_url: str, set_setting: Any, spawn_worker: Any, point: str
) -> None:
    """A Lambda frozen mid-batch: its session dies (keepalives, a database restart), a new
    worker takes the lock and mints, and only then does the frozen one resume at ``point``
    with the transaction it had signed for the same nonce, possibly for other items."""
    token = chain_env.deploy()
    set_setting("batch_interval_seconds", 1)
    enqueue_all(conn, fresh_addresses(6))
    first_block = chain_env.w3.eth.block_number + 1
    frozen = spawn_worker(token, stall_at=point, stall_seconds=8, seconds=25)
    wait_for(lambda: {"stalled_at": point} in frozen.events(), timeout=20, what=f"a stall at {point}")
    terminated = conn.execute(
        "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = %(name)s",
        {"name": application_name(frozen.pid)},
    ).fetchall()
    assert [r["ok"] for r in terminated] == [True]
    enqueue_all(conn, fresh_addresses(3))  # the next batch at that nonce holds other items too
    restart_and_drain(chain_env, database_url, token)
    assert frozen.proc.poll() is None, "the takeover must finish while the frozen worker still sleeps"
    # It woke, and its next database call found the session gone: it stopped there.
    assert frozen.wait(timeout=40) == 1
    assert "DatabaseError: AdminShutdown" in frozen.stderr(), frozen.stderr()[-2000:]
    assert chain_env.w3.eth.get_transaction_count(MINTER, "pending") == chain_nonce(chain_env)
    assert assert_exactly_once(chain_env, conn, token) == 9
    assert statuses(conn) == {"completed": 9}
    # Every transaction the signer ever got mined is one the database recorded before sending.
    recorded = {r["tx_hash"] for r in conn.execute("SELECT tx_hash FROM batch_attempts").fetchall()}
    mined = [
        "0x" + bytes(tx["hash"]).hex()
        for n in range(first_block, chain_env.w3.eth.block_number + 1)
        for tx in chain_env.w3.eth.get_block(n, full_transactions=True)["transactions"]
        if tx["from"] == MINTER
    ]
    assert mined and set(mined) <= recorded
    assert len(mined) == len(batch_statuses(conn)) == batch_statuses(conn).count("confirmed")
