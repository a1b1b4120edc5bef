"""Stuck-transaction replacement, gas-sized batches, pipelining and the signer pool."""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest
from eth_account import Account

from devstack import anvil
from mintq.settings import QueueSettings
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
)

pytestmark = pytest.mark.chain


def test_a_stuck_transaction_is_replaced_at_the_same_nonce_and_mined_once(
    chain_env: ChainEnv, conn: Any, database_url: str
) -> None:
    token = chain_env.deploy()
    enqueue_all(conn, fresh_addresses(4))
    worker = chain_env.worker(database_url, token)
    settings = QueueSettings(stuck_after_seconds=0.2, receipt_wait_seconds=0.1)
    chain_env.automine(False)
    batch_id = worker.dispatch(settings)
    assert batch_id is not None
    worker.broadcast(batch_id)
    time.sleep(0.3)
    worker.reconcile(settings, time.monotonic() + 5, wait=False)  # stuck: replaced
    time.sleep(0.3)
    worker.reconcile(settings, time.monotonic() + 5, wait=False)  # still stuck: replaced again
    attempts = conn.execute(
        "SELECT attempt, tx_hash, max_fee_per_gas, max_priority_fee_per_gas FROM batch_attempts ORDER BY attempt"
    ).fetchall()
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    for before, after in itertools.pairwise(attempts):
        assert int(after["max_fee_per_gas"]) * 8 >= int(before["max_fee_per_gas"]) * 9  # +12.5 %
        assert int(after["max_priority_fee_per_gas"]) * 8 >= int(before["max_priority_fee_per_gas"]) * 9
    chain_env.mine()
    chain_env.automine(True)
    worker.reconcile(settings, time.monotonic() + 5)
    rows = {
        r["attempt"]: r["status"] for r in conn.execute("SELECT attempt, status::text FROM batch_attempts")
    }
    assert rows == {1: "replaced", 2: "replaced", 3: "mined"}
    batch = conn.execute("SELECT status::text, batch_tx_hash FROM batch_mints").fetchone()
    assert batch == {"status": "confirmed", "batch_tx_hash": attempts[-1]["tx_hash"]}
    assert assert_exactly_once(chain_env, conn, token) == 4


def test_replacement_stops_at_the_fee_ceiling(chain_env: ChainEnv, conn: Any, database_url: str) -> None:
    token = chain_env.deploy()
    enqueue_all(conn, fresh_addresses(2))
    worker = chain_env.worker(database_url, token)
    chain_env.automine(False)
    batch_id = worker.dispatch(QueueSettings())
    assert batch_id is not None
    worker.broadcast(batch_id)
    offered = int(conn.execute("SELECT max_fee_per_gas FROM batch_mints").fetchone()["max_fee_per_gas"])
    ceiling_gwei = offered * 1.05 / 10**9  # a bump of 12.5 % would cross it
    time.sleep(0.2)
    worker.reconcile(
        QueueSettings(stuck_after_seconds=0.1, max_fee_per_gas_gwei=ceiling_gwei),
        time.monotonic() + 5,
        wait=False,
    )
    assert conn.execute("SELECT count(*) AS n FROM batch_attempts").fetchone()["n"] == 1
    # The node then forgets the transaction. Unable to replace it, the worker must still keep
    # its one attempt alive by resending the same bytes, or the batch would wait forever.
    chain_env.w3.provider.make_request("anvil_dropAllTransactions", [])  # type: ignore[arg-type]
    assert chain_env.w3.eth.get_transaction_count(
        MINTER, "pending"
    ) == chain_env.w3.eth.get_transaction_count(MINTER, "latest")
    worker.tracker._last_sent.clear()  # as after REBROADCAST_SECONDS
    worker.reconcile(
        QueueSettings(stuck_after_seconds=0.1, max_fee_per_gas_gwei=ceiling_gwei),
        time.monotonic() + 5,
        wait=False,
    )
    assert conn.execute("SELECT count(*) AS n FROM batch_attempts").fetchone()["n"] == 1
    assert (
        chain_env.w3.eth.get_transaction_count(MINTER, "pending")
        == chain_env.w3.eth.get_transaction_count(MINTER, "latest") + 1
    ), "the stuck attempt is back in the node's pool"
    chain_env.mine()
    chain_env.automine(True)
    drain(worker)
    assert assert_exactly_once(chain_env, conn, token) == 2


def test_batches_are_sized_by_the_gas_target(
    chain_env: ChainEnv, conn: Any, database_url: str, set_setting: Any
) -> None:
    token = chain_env.deploy()
    set_setting("max_batch_size", 1000)
    set_setting("batch_gas_target", 400_000)
    enqueue_all(conn, fresh_addresses(40))
    drain(chain_env.worker(database_url, token))
    batches = conn.execute("SELECT mint_count, gas_used FROM batch_mints ORDER BY nonce").fetchall()
    assert all(b["gas_used"] <= 400_000 for b in batches)
    assert max(b["mint_count"] for b in batches) >= 12  # filled by gas (~25k each), not by a fixed count
    assert assert_exactly_once(chain_env, conn, token) == 40


def test_pipelining_keeps_several_batches_in_flight_at_consecutive_nonces(
    chain_env: ChainEnv, conn: Any, database_url: str, set_setting: Any
) -> None:
    token = chain_env.deploy()
    set_setting("max_batch_size", 5)
    set_setting("max_inflight_batches", 3)
    enqueue_all(conn, fresh_addresses(23))
    worker = chain_env.worker(database_url, token)
    chain_env.automine(False)
    worker.cycle(time.monotonic() + 10)
    inflight = conn.execute("SELECT nonce, status::text FROM batch_mints ORDER BY nonce").fetchall()
    assert len(inflight) == 3
    assert [b["nonce"] for b in inflight] == list(range(inflight[0]["nonce"], inflight[0]["nonce"] + 3))
    assert {b["status"] for b in inflight} == {"pending"}
    assert statuses(conn) == {"processing": 15, "pending": 8}
    chain_env.mine()
    chain_env.automine(True)
    drain(worker)
    nonces = [r["nonce"] for r in conn.execute("SELECT nonce FROM batch_mints ORDER BY nonce")]
    assert nonces == list(range(nonces[0], nonces[0] + len(nonces)))
    assert assert_exactly_once(chain_env, conn, token) == 23


def test_a_signer_pool_sends_in_parallel_without_sharing_a_nonce_or_an_item(
    chain_env: ChainEnv, conn: Any, database_url: str, set_setting: Any
) -> None:
    token = chain_env.deploy()
    keys = [anvil.dev_private_key(1), anvil.dev_private_key(2), anvil.dev_private_key(3)]
    role = chain_env.token(token).functions.MINTER_ROLE().call()
    for key in keys[1:]:
        chain_env.admin(token, "grantRole", role, Account.from_key(key).address)
    set_setting("max_batch_size", 4)
    set_setting("batch_interval_seconds", 0.5)
    enqueue_all(conn, fresh_addresses(60))
    workers = [chain_env.worker(database_url, token, key=key) for key in keys]
    deadline = time.monotonic() + 8
    summaries = run_threads([lambda w=w: w.run(deadline) for w in workers])
    assert all(s.locked and s.faults == 0 for s in summaries)
    assert all(s.batches_confirmed > 0 for s in summaries)
    per_signer = conn.execute(
        "SELECT signer_address, count(*) AS n, count(DISTINCT nonce) AS d FROM batch_mints GROUP BY 1"
    ).fetchall()
    assert len(per_signer) == 3 and all(r["n"] == r["d"] for r in per_signer)
    assert assert_exactly_once(chain_env, conn, token) == 60


def test_a_signer_leaves_the_supply_another_signers_batch_in_flight_will_take(
    chain_env: ChainEnv, conn: Any, database_url: str
) -> None:
    token = chain_env.deploy(max_mints=5)
    other = anvil.dev_private_key(2)
    chain_env.admin(
        token,
        "grantRole",
        chain_env.token(token).functions.MINTER_ROLE().call(),
        Account.from_key(other).address,
    )
    enqueue_all(conn, fresh_addresses(4))
    first = chain_env.worker(database_url, token)
    second = chain_env.worker(database_url, token, key=other)
    chain_env.automine(False)
    try:
        assert first.dispatch(QueueSettings(max_batch_size=4)) is not None  # 4 of 5 in flight
        enqueue_all(conn, fresh_addresses(3))
        assert second.dispatch(QueueSettings(max_batch_size=3)) is not None
        sizes = [
            r["mint_count"] for r in conn.execute("SELECT mint_count FROM batch_mints ORDER BY created_at")
        ]
        assert sizes == [4, 1], "the second signer may take only the one mint left"
        # The other two wait in line: the first batch may still fail and give its supply back.
        assert (
            conn.execute("SELECT count(*) AS n FROM mint_queue WHERE status = 'pending'").fetchone()["n"] == 2
        )
    finally:
        chain_env.mine()
        chain_env.automine(True)
    deadline = time.monotonic() + 30
    while conn.execute(
        "SELECT count(*) AS n FROM mint_queue WHERE status IN ('pending', 'processing')"
    ).fetchone()["n"]:
        assert time.monotonic() < deadline, "the two signers did not finish"
        for worker in (first, second):
            worker.cycle(deadline)
    assert chain_env.total_supply(token) == 5 * AMOUNT
    assert {
        r["status"]: r["n"]
        for r in conn.execute("SELECT status::text, count(*) AS n FROM mint_queue GROUP BY 1")
    } == {"completed": 5, "failed": 2}


def test_a_pipelined_worker_dispatches_into_the_open_window_before_it_finalises_mined_batches(
    chain_env: ChainEnv, conn: Any, database_url: str, set_setting: Any
) -> None:
    """The window counts batches not yet mined: a mined batch waiting to be finalised holds no
    dispatch back, and finalising waits until the window is full again."""
    token = chain_env.deploy()
    set_setting("max_batch_size", 5)
    set_setting("max_inflight_batches", 6)
    enqueue_all(conn, fresh_addresses(15))
    worker = chain_env.worker(database_url, token)
    chain_env.automine(False)
    try:
        worker.cycle(time.monotonic() + 10)
        first = [r["id"] for r in conn.execute("SELECT id FROM batch_mints ORDER BY nonce")]
        assert len(first) == 3, "the line ran out before the window filled"
        enqueue_all(conn, fresh_addresses(15))
        chain_env.mine()  # the three are mined, none finalised yet
        worker.cycle(time.monotonic() + 10)
    finally:
        chain_env.automine(True)
    rows = conn.execute("SELECT id, status::text, created_at, confirmed_at FROM batch_mints").fetchall()
    old = [r for r in rows if r["id"] in first]
    new = [r for r in rows if r["id"] not in first]
    assert {r["status"] for r in old} == {"confirmed"} and len(new) == 3
    assert max(r["created_at"] for r in new) < min(r["confirmed_at"] for r in old), "dispatched first"
    drain(worker)
    assert assert_exactly_once(chain_env, conn, token) == 30
