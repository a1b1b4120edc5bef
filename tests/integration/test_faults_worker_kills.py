"""Fault injection, the worker process killed: a ``kill -9`` at every crash point (one worker,
a pipelined one, one whose transaction the node then forgot) and five processes racing for the
signer lock while its holder is killed mid-batch.

No accepted request is lost, none minted twice (tests/support/fault_injection.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from mintq.worker.faults import CRASH_POINTS
from tests.support.chain import (
    ChainEnv,
    assert_exactly_once,
    batch_statuses,
    enqueue_all,
    fresh_addresses,
    statuses,
)
from tests.support.fault_injection import chain_nonce, restart_and_drain, spawn_worker, wait_for
from tests.support.worker_process import application_name

pytestmark = pytest.mark.chain
__all__ = ["spawn_worker"]  # the fixture, used by name


# --- (a) kill -9 of a worker process at every crash point ---------------------------


def _state_at_crash(
    conn: Any, chain_env: ChainEnv, nonce_before: int
) -> tuple[dict[str, int], list[str], int]:
    return statuses(conn), batch_statuses(conn), chain_nonce(chain_env) - nonce_before


# What a kill -9 at each point leaves behind: (queue, batches, transactions mined since).
CRASH_LEFTOVERS = {
    "after_claim": ({"pending": 6}, [], 0),  # the claim's transaction dies with the session
    "after_sign": ({"pending": 6}, [], 0),  # signed, never recorded, never sent
    "after_record": ({"processing": 6}, ["signed"], 0),  # recorded, never sent
    "after_broadcast": ({"processing": 6}, ["pending"], 1),
    "after_receipt": ({"processing": 6}, ["pending"], 1),  # mined, not yet recorded
    "mid_record": ({"processing": 6}, ["pending"], 1),  # the recording transaction rolls back
}


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_kill_9_of_the_worker_process_at_any_crash_point_then_a_restart_mints_everything_exactly_once(
    chain_env: ChainEnv, conn: Any, database_url: str, set_setting: Any, spawn_worker: Any, point: str
) -> None:
    assert set(CRASH_LEFTOVERS) == set(CRASH_POINTS), "a new crash point needs its expectation here"
    token = chain_env.deploy()
    set_setting("batch_interval_seconds", 1)
    enqueue_all(conn, fresh_addresses(6))
    nonce_before = chain_nonce(chain_env)
    proc = spawn_worker(token, crash_at=point, seconds=30)
    assert proc.wait(timeout=45) == -9, f"the worker was not killed at {point}:\n{proc.stderr()[-3000:]}"
    assert {"crashing_at": point} in proc.events()
    assert _state_at_crash(conn, chain_env, nonce_before) == CRASH_LEFTOVERS[point]
    restart_and_drain(chain_env, database_url, token)
    assert assert_exactly_once(chain_env, conn, token) == 6
    assert statuses(conn) == {"completed": 6}
    assert batch_statuses(conn) == ["confirmed"]
    assert chain_nonce(chain_env) - nonce_before == 1, "exactly one transaction was mined"


def test_a_worker_killed_after_broadcast_whose_transaction_the_node_then_forgot_gets_it_rebroadcast(
    chain_env: ChainEnv, conn: Any, database_url: str, set_setting: Any, spawn_worker: Any
) -> None:
    token = chain_env.deploy()
    set_setting("batch_interval_seconds", 1)
    enqueue_all(conn, fresh_addresses(4))
    nonce_before = chain_nonce(chain_env)
    chain_env.automine(False)
    try:
        proc = spawn_worker(token, crash_at="after_broadcast", seconds=30)
        assert proc.wait(timeout=45) == -9, proc.stderr()[-3000:]
        recorded = conn.execute("SELECT batch_tx_hash, status::text FROM batch_mints").fetchone()
        assert recorded["status"] == "pending"
        # The node restarts with an empty mempool: the sent transaction is gone for good.
        chain_env.w3.provider.make_request("anvil_dropAllTransactions", [])
        assert chain_nonce(chain_env, "pending") == nonce_before
    finally:
        chain_env.automine(True)
    restart_and_drain(chain_env, database_url, token)
    assert assert_exactly_once(chain_env, conn, token) == 4
    mined = conn.execute("SELECT batch_tx_hash, status::text FROM batch_mints").fetchone()
    assert (mined["batch_tx_hash"], mined["status"]) == (recorded["batch_tx_hash"], "confirmed")
    assert chain_nonce(chain_env) == nonce_before + 1


@pytest.mark.parametrize("point", ["after_record", "after_broadcast"])
def test_a_pipelined_worker_killed_with_several_batches_in_flight_loses_and_doubles_nothing(
    chain_env: ChainEnv, conn: Any, database_url: str, set_setting: Any, spawn_worker: Any, point: str
) -> None:
    token = chain_env.deploy()
    set_setting("batch_interval_seconds", 1)
    set_setting("max_batch_size", 2)
    set_setting("max_inflight_batches", 3)
    enqueue_all(conn, fresh_addresses(8))
    nonce_before = chain_nonce(chain_env)
    chain_env.automine(False)  # nothing is mined: batches pile up in flight
    try:
        proc = spawn_worker(token, crash_at=point, crash_on=3, seconds=30)
        assert proc.wait(timeout=45) == -9, f"never reached {point} three times:\n{proc.stderr()[-3000:]}"
        assert len(batch_statuses(conn)) == 3
    finally:
        chain_env.automine(True)
    chain_env.mine()
    restart_and_drain(chain_env, database_url, token)
    assert assert_exactly_once(chain_env, conn, token) == 8
    nonces = [r["nonce"] for r in conn.execute("SELECT nonce FROM batch_mints WHERE status = 'confirmed'")]
    assert sorted(nonces) == list(range(nonce_before, nonce_before + len(nonces)))


# --- (b) five processes race for the lock; the holder is killed mid-batch ------------


def lock_holder_pid(conn: Any) -> int | None:
    """The OS pid of the worker process whose session holds the signer's advisory lock."""
    row = conn.execute(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database()"
        " AND a.application_name LIKE 'mintq-fault-worker:%%'"
    ).fetchall()
    assert len(row) <= 1, f"more than one session holds an advisory lock: {row}"
    return int(row[0]["application_name"].split(":")[1]) if row else None


def test_five_worker_processes_race_and_the_survivors_finish_after_the_lock_holder_is_killed_mid_batch(
    chain_env: ChainEnv, conn: Any, database_url: str, set_setting: Any, spawn_worker: Any
) -> None:
    token = chain_env.deploy()
    set_setting("batch_interval_seconds", 0.5)
    set_setting("max_batch_size", 5)
    enqueue_all(conn, fresh_addresses(20))
    nonce_before = chain_nonce(chain_env)
    chain_env.automine(False)  # the first batch is broadcast and then waits for a block
    try:
        procs = {
            p.pid: p
            for p in (
                spawn_worker(token, seconds=40, interval=0.2, run_seconds=3, exit_when_idle=True)
                for _ in range(5)
            )
        }
        wait_for(
            lambda: batch_statuses(conn) == ["pending"], timeout=30, what="a batch broadcast and awaiting"
        )
        holder = lock_holder_pid(conn)
        assert holder in procs, f"the lock holder {holder} is not one of our workers {sorted(procs)}"
        assert application_name(holder) in {
            r["application_name"] for r in conn.execute("SELECT application_name FROM pg_stat_activity")
        }
        procs[holder].kill()  # kill -9 mid-batch: broadcast, not mined, not recorded
        assert procs[holder].proc.returncode == -9
    finally:
        chain_env.automine(True)
    chain_env.mine()
    survivors = [p for pid, p in procs.items() if pid != holder]
    codes = [p.wait(timeout=60) for p in survivors]
    assert codes == [0, 0, 0, 0], [p.stderr()[-2000:] for p in survivors]
    summaries = [p.summary() for p in survivors]
    assert sum(s["mints_completed"] for s in summaries) == 20
    assert assert_exactly_once(chain_env, conn, token) == 20
    nonces = [r["nonce"] for r in conn.execute("SELECT nonce FROM batch_mints ORDER BY nonce")]
    assert nonces == list(range(nonce_before, nonce_before + 4))
    assert set(batch_statuses(conn)) == {"confirmed"}
    assert lock_holder_pid(conn) is None
