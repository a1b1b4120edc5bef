"""The batch worker against a real PostgreSQL and a real anvil."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from mintq import db, metrics
from mintq.settings import QueueSettings
from mintq.worker import invocation
from mintq.worker.faults import CRASH_POINTS
from tests.support.chain import (
    AMOUNT,
    MINTER,
    ChainEnv,
    assert_exactly_once,
    drain,
    enqueue_all,
    fresh_addresses,
    run_threads,
    statuses,
    take_nonce,
)

pytestmark = pytest.mark.chain


def test_a_cycle_mints_every_pending_request_once_and_records_the_batch(
    chain_env: ChainEnv, conn: Any, database_url: str
) -> None:
    token = chain_env.deploy()
    payers = fresh_addresses(20)
    enqueue_all(conn, payers)
    worker = chain_env.worker(database_url, token)
    worker.cycle(time.monotonic() + 30)
    assert statuses(conn) == {"completed": 20}
    assert assert_exactly_once(chain_env, conn, token) == 20
    batch = conn.execute("SELECT * FROM batch_mints").fetchone()
    assert batch["status"] == "confirmed"
    assert batch["mint_count"] == 20
    assert batch["gas_used"] > 0 and batch["block_number"] > 0
    assert batch["nonce"] == chain_env.w3.eth.get_transaction_count(MINTER) - 1
    item = conn.execute("SELECT mint_tx_hash, processed_at FROM mint_queue LIMIT 1").fetchone()
    assert item["mint_tx_hash"] == batch["batch_tx_hash"] and item["processed_at"] is not None
    stats = conn.execute("SELECT * FROM queue_stats").fetchone()
    assert (stats["pending_count"], stats["completed_count"]) == (0, 20)


def test_an_idle_cycle_costs_one_query_and_no_rpc(
    chain_env: ChainEnv, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = chain_env.deploy()
    worker = chain_env.worker(database_url, token)
    calls: list[str] = []
    for name in ("one", "rows", "execute"):
        original = getattr(db, name)
        monkeypatch.setattr(
            db, name, lambda conn, q, p=None, _o=original: (calls.append(q), _o(conn, q, p))[1]
        )
    monkeypatch.setattr(
        worker.chain.w3.provider,
        "make_request",
        lambda *a, **k: pytest.fail("an idle cycle must not call the chain"),
    )
    worker.cycle(time.monotonic() + 10)
    assert calls == ["cycle_probe"]


def test_five_concurrent_invocations_have_one_sender_and_no_nonce_errors(
    chain_env: ChainEnv, conn: Any, database_url: str, set_setting: Any
) -> None:
    token = chain_env.deploy()
    set_setting("batch_interval_seconds", 1)
    set_setting("max_batch_size", 7)
    enqueue_all(conn, fresh_addresses(30))
    workers = [chain_env.worker(database_url, token) for _ in range(5)]
    deadline = time.monotonic() + 9
    summaries = run_threads([lambda w=w: w.run(deadline) for w in workers])
    assert sum(s.locked for s in summaries) == 1
    assert all(s.faults == 0 for s in summaries)
    assert assert_exactly_once(chain_env, conn, token) == 30
    nonces = [r["nonce"] for r in conn.execute("SELECT nonce FROM batch_mints ORDER BY nonce")]
    assert nonces == list(range(nonces[0], nonces[0] + 5))
    assert {r["status"] for r in conn.execute("SELECT status::text FROM batch_mints")} == {"confirmed"}


def test_a_second_worker_exits_while_the_lock_is_held_and_runs_once_it_is_free(
    chain_env: ChainEnv, conn: Any, database_url: str
) -> None:
    token = chain_env.deploy()
    first, second = chain_env.worker(database_url, token), chain_env.worker(database_url, token)
    assert first.try_lock()
    assert second.run(time.monotonic() + 3).locked is False
    pid = first.conn.info.backend_pid
    first.conn.close()  # the holder dies: its session lock goes with it
    # ... once its backend has exited, which PostgreSQL does after the close returns (a busy
    # machine makes that visible).
    deadline = time.monotonic() + 10
    while conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %(p)s", {"p": pid}).fetchone():
        assert time.monotonic() < deadline, "the closed connection's backend did not exit"
        time.sleep(0.05)
    assert second.run(time.monotonic() + 1).locked is True


def test_supply_exhaustion_mints_what_fits_and_fails_the_rest_without_retries(
    chain_env: ChainEnv, conn: Any, database_url: str
) -> None:
    token = chain_env.deploy(max_mints=3)
    ids = enqueue_all(conn, fresh_addresses(5))
    drain(chain_env.worker(database_url, token))
    rows = {
        r["id"]: r
        for r in conn.execute("SELECT id, status::text, retry_count, error_message FROM mint_queue")
    }
    assert [rows[i]["status"] for i in ids] == ["completed"] * 3 + ["failed"] * 2
    assert all(rows[i]["retry_count"] == 0 and "max supply" in rows[i]["error_message"] for i in ids[3:])
    assert chain_env.total_supply(token) == 3 * AMOUNT


def test_a_poisoned_recipient_is_isolated_and_the_rest_mint(
    chain_env: ChainEnv, conn: Any, database_url: str
) -> None:
    token = chain_env.deploy(contract="PoisonMintToken")
    payers = fresh_addresses(9)
    chain_env.admin(token, "setPoisoned", payers[4], True)
    ids = enqueue_all(conn, payers)
    drain(chain_env.worker(database_url, token))
    rows = {r["id"]: r for r in conn.execute("SELECT id, status::text, error_message FROM mint_queue")}
    assert rows[ids[4]]["status"] == "failed"
    assert "PoisonedRecipient" in rows[ids[4]]["error_message"]
    assert [rows[i]["status"] for i in ids if i != ids[4]] == ["completed"] * 8
    assert chain_env.balance(token, payers[4]) == 0
    assert assert_exactly_once(chain_env, conn, token) == 8


def test_a_mined_revert_charges_a_retry_and_fails_after_the_last_attempt(
    chain_env: ChainEnv, conn: Any, database_url: str, set_setting: Any
) -> None:
    token = chain_env.deploy()
    set_setting("retry_max_attempts", 2)
    ids = enqueue_all(conn, fresh_addresses(3))
    worker = chain_env.worker(database_url, token)
    settings = QueueSettings(retry_max_attempts=2, receipt_wait_seconds=5)
    for attempt in (1, 2):
        chain_env.automine(False)
        batch_id = worker.dispatch(settings)
        assert batch_id is not None
        worker.broadcast(batch_id)
        # The admin's pause outbids the batch in the same block: the batch reverts on chain.
        chain_env.admin(token, "pause", wait=False, tip_gwei=50)
        chain_env.mine()
        chain_env.automine(True)
        worker.reconcile(settings, time.monotonic() + 10)
        rows = conn.execute("SELECT status::text, retry_count, error_message FROM mint_queue").fetchall()
        assert {r["retry_count"] for r in rows} == {attempt}
        assert {r["status"] for r in rows} == ({"pending"} if attempt == 1 else {"failed"})
        assert all("EnforcedPause" in r["error_message"] for r in rows)
        chain_env.admin(token, "unpause")
    assert [r["status"] for r in conn.execute("SELECT status::text FROM batch_mints")] == ["failed", "failed"]
    assert chain_env.total_supply(token) == 0
    assert len(ids) == 3


def test_a_paused_contract_is_an_operational_fault_that_charges_nobody(
    chain_env: ChainEnv, conn: Any, database_url: str
) -> None:
    token = chain_env.deploy()
    chain_env.admin(token, "pause")
    enqueue_all(conn, fresh_addresses(4))
    worker = chain_env.worker(database_url, token)
    worker.cycle(time.monotonic() + 10)
    assert worker.summary.faults == 1
    rows = conn.execute("SELECT status::text, retry_count FROM mint_queue").fetchall()
    assert {(r["status"], r["retry_count"]) for r in rows} == {("pending", 0)}
    chain_env.admin(token, "unpause")
    drain(worker)
    assert assert_exactly_once(chain_env, conn, token) == 4


def test_an_unreachable_rpc_leaves_requests_pending_and_uncharged(
    chain_env: ChainEnv, conn: Any, database_url: str
) -> None:
    token = chain_env.deploy()
    enqueue_all(conn, fresh_addresses(3))
    worker = chain_env.worker(database_url, token, rpc_url="http://127.0.0.1:9")
    worker.cycle(time.monotonic() + 10)
    assert worker.summary.faults == 1
    rows = conn.execute("SELECT status::text, retry_count FROM mint_queue").fetchall()
    assert {(r["status"], r["retry_count"]) for r in rows} == {("pending", 0)}
    assert conn.execute("SELECT count(*) AS n FROM batch_mints").fetchone()["n"] == 0


def test_each_cycle_publishes_queue_depth_age_and_faults_as_it_ends(
    chain_env: ChainEnv, conn: Any, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    token = chain_env.deploy()
    enqueue_all(conn, fresh_addresses(3))
    conn.execute("UPDATE mint_queue SET created_at = now() - interval '90 seconds'")
    worker = chain_env.worker(database_url, token, rpc_url="http://127.0.0.1:9")
    metrics.flush()  # whatever earlier tests left in the process-wide buffer
    capsys.readouterr()
    worker.cycle(time.monotonic() + 10)
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert len(emf) == 1, "one EMF document, flushed at the end of the cycle (not of the invocation)"
    [doc] = emf
    assert doc["QueuePending"] == [3] and doc["WorkerFault"] == [1]
    [age] = doc["OldestPendingSeconds"]
    assert 90 <= age < 120
    units = {m["Name"]: m["Unit"] for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert units["OldestPendingSeconds"] == "Seconds" and units["QueuePending"] == "Count"
    worker.conn.close()


def test_settings_changes_take_effect_on_the_next_cycle(
    chain_env: ChainEnv, conn: Any, database_url: str, set_setting: Any
) -> None:
    token = chain_env.deploy()
    enqueue_all(conn, fresh_addresses(7))
    worker = chain_env.worker(database_url, token)
    set_setting("max_batch_size", 2)
    worker.cycle(time.monotonic() + 10)
    set_setting("max_batch_size", 10)
    worker.cycle(time.monotonic() + 10)
    sizes = [r["mint_count"] for r in conn.execute("SELECT mint_count FROM batch_mints ORDER BY nonce")]
    assert sizes == [2, 5]


def test_a_receipt_that_has_not_arrived_is_not_a_failure(
    chain_env: ChainEnv, conn: Any, database_url: str
) -> None:
    token = chain_env.deploy()
    enqueue_all(conn, fresh_addresses(3))
    worker = chain_env.worker(database_url, token)
    settings = QueueSettings(receipt_wait_seconds=0.3)
    chain_env.automine(False)
    batch_id = worker.dispatch(settings)
    assert batch_id is not None
    sent = worker.broadcast(batch_id)
    assert worker.await_receipt(sent[0], settings, time.monotonic() + 5) is False
    assert statuses(conn) == {"processing": 3}
    assert conn.execute("SELECT status::text FROM batch_mints").fetchone()["status"] == "pending"
    chain_env.mine()
    chain_env.automine(True)
    worker.cycle(time.monotonic() + 10)
    assert statuses(conn) == {"completed": 3}


def test_a_batch_whose_nonce_was_taken_by_another_transaction_is_dropped_and_requeued(
    chain_env: ChainEnv, conn: Any, database_url: str
) -> None:
    token = chain_env.deploy()
    ids = enqueue_all(conn, fresh_addresses(3))
    worker = chain_env.worker(database_url, token)
    batch_id = worker.dispatch(QueueSettings())
    assert batch_id is not None
    # Before our batch is broadcast, someone else with the key uses its nonce.
    take_nonce(chain_env, conn.execute("SELECT nonce FROM batch_mints").fetchone()["nonce"])

    def status() -> str:
        row = conn.execute(
            "SELECT status::text FROM batch_mints WHERE id = %(id)s", {"id": batch_id}
        ).fetchone()
        return str(row["status"])

    # A used nonce without a receipt counts as dropped only after the grace: an RPC behind a load
    # balancer may show the nonce before the receipt of a batch that was in fact mined.
    now = [1000.0]
    worker.clock, worker.drop_grace_seconds = (lambda: now[0]), 30.0
    assert [b.id for b in worker.reconcile(QueueSettings(), 1e9, wait=False)] == [batch_id]
    now[0] += 29
    worker.reconcile(QueueSettings(), 1e9, wait=False)
    assert status() == "signed"
    now[0] += 2
    worker.reconcile(QueueSettings(), 1e9, wait=False)
    assert status() == "dropped"
    worker.clock = time.monotonic
    rows = conn.execute("SELECT status::text, retry_count FROM mint_queue").fetchall()
    assert {(r["status"], r["retry_count"]) for r in rows} == {("pending", 0)}
    drain(worker)
    assert assert_exactly_once(chain_env, conn, token) == len(ids)


class Crash(Exception):
    """A simulated crash: not a chain fault, so nothing in the worker catches it."""


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_crash_at_any_step_then_a_restart_mints_everything_exactly_once(
    chain_env: ChainEnv, conn: Any, database_url: str, point: str
) -> None:
    token = chain_env.deploy()
    enqueue_all(conn, fresh_addresses(6))

    def crash(at: str) -> None:
        if at == point:
            raise Crash(at)

    doomed = chain_env.worker(database_url, token, fault=crash)
    with pytest.raises(Crash):
        deadline = time.monotonic() + 10
        for _ in range(3):
            doomed.cycle(deadline)
    doomed.conn.close()  # the process is gone, and its locks and open transaction with it
    drain(chain_env.worker(database_url, token))
    assert assert_exactly_once(chain_env, conn, token) == 6
    assert (
        conn.execute("SELECT count(*) AS n FROM batch_mints WHERE status = 'confirmed'").fetchone()["n"] >= 1
    )
    assert statuses(conn) == {"completed": 6}


def test_the_handler_runs_cycles_until_shortly_before_its_timeout(
    chain_env: ChainEnv, conn: Any, database_url: str, monkeypatch: pytest.MonkeyPatch, set_setting: Any
) -> None:
    from devstack.lambdas import FakeContext, load_handler
    from mintq import config
    from tests.support.chain import MINTER_KEY
    from tests.support.events import REPO_ROOT

    token = chain_env.deploy()
    set_setting("batch_interval_seconds", 1)
    enqueue_all(conn, fresh_addresses(5))
    conn.execute(
        "INSERT INTO idempotency_keys (key, request_hash, created_at)"
        " VALUES ('expired', repeat('0', 64), now() - interval '3 days'),"
        "        ('recent', repeat('0', 64), now() - interval '1 day')"
    )
    monkeypatch.setenv("MINTQ_RPC_URL", chain_env.rpc_url)
    monkeypatch.setenv("MINTQ_TOKEN_ADDRESS", token)
    monkeypatch.setenv("MINTQ_SIGNER_PRIVATE_KEY", MINTER_KEY)
    config.reset()
    monkeypatch.setattr(invocation, "_workers", [])
    handler = load_handler(REPO_ROOT / "functions" / "batch")
    started = time.monotonic()
    result = handler({"source": "aws.scheduler"}, FakeContext(function_name="batch", timeout_s=18))
    elapsed = time.monotonic() - started
    assert result["locked"] is True
    assert result["mints_completed"] == 5
    assert result["cycles"] >= 2
    assert elapsed < 18 - 10, "it must stop before the timeout, keeping its 10 s safety margin"
    assert len(invocation._workers) == 1
    invocation._workers[0].conn.close()
    batches = conn.execute("SELECT id, status::text, mint_count FROM batch_mints").fetchall()
    assert all(isinstance(b["id"], uuid.UUID) and b["status"] == "confirmed" for b in batches)
    assert sum(b["mint_count"] for b in batches) == 5
    # The invocation's housekeeping pruned the idempotency key past its retention, only that one.
    assert [r["key"] for r in conn.execute("SELECT key FROM idempotency_keys").fetchall()] == ["recent"]
