"""A worker that refuses to send says so: operational faults leave requests pending and
uncharged, and ``GET /queue/status`` / ``GET /queue/item/{id}`` tell why the line waits."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from eth_account import Account

from mintq import db
from mintq.worker.loop import Worker
from tests.support.chain import (
    MINTER,
    ChainEnv,
    assert_exactly_once,
    drain,
    enqueue_all,
    fresh_addresses,
    statuses,
)
from tests.support.events import http_event, invoke, queue_item
from tests.support.ports import free_port

pytestmark = pytest.mark.chain


def queue_status() -> dict[str, Any]:
    code, body, _ = invoke("status", http_event("GET", "/queue/status"))
    assert code == 200, body
    return body


def poor_minter(chain_env: ChainEnv, token: str) -> Any:
    """A fresh signer with the minter role and no ether."""
    poor = Account.create()
    role = chain_env.token(token).functions.MINTER_ROLE().call()
    chain_env.admin(token, "grantRole", role, poor.address)
    return poor


def set_balance(chain_env: ChainEnv, address: str, wei: int) -> None:
    chain_env.w3.provider.make_request("anvil_setBalance", [address, hex(wei)])


def test_an_underfunded_signer_leaves_requests_pending_says_why_and_mints_once_funded(
    chain_env: ChainEnv, conn: Any, database_url: str
) -> None:
    token = chain_env.deploy()
    poor = poor_minter(chain_env, token)
    ids = enqueue_all(conn, fresh_addresses(3))
    worker = chain_env.worker(database_url, token, key=poor.key.hex())
    for _ in range(2):
        worker.cycle(time.monotonic() + 10)
    assert worker.summary.faults == 2
    # Nothing recorded, nothing claimed, nothing charged: the requests are plainly pending.
    assert statuses(conn) == {"pending": 3}
    assert {r["retry_count"] for r in conn.execute("SELECT retry_count FROM mint_queue")} == {0}
    assert conn.execute("SELECT count(*) AS n FROM batch_mints").fetchone()["n"] == 0
    refusing = queue_status()["worker"]
    assert refusing["state"] == "refusing"
    assert "pending until it is funded" in refusing["reason"]
    [signer] = refusing["signers"]
    assert signer["signer_address"] == poor.address
    assert signer["code"] == "signer_underfunded"
    assert signer["since"] <= signer["last_seen_at"]
    item = queue_item(ids[0])
    assert item["status"] == "pending"
    assert item["waiting_reason"] == refusing["reason"]

    set_balance(chain_env, poor.address, 10**18)
    drain(worker)
    assert assert_exactly_once(chain_env, conn, token) == 3
    assert queue_status()["worker"] == {"state": "ok", "reason": None, "since": None, "signers": []}
    done = queue_item(ids[0])
    assert (done["status"], done["waiting_reason"]) == ("completed", None)
    worker.conn.close()


def test_a_signed_batch_the_node_refuses_for_funds_says_why_its_items_wait_and_mints_once(
    chain_env: ChainEnv, conn: Any, database_url: str
) -> None:
    """Funds gone between recording and broadcast: the recorded batch must keep its items
    (its bytes may already be in some node's pool), so they wait in ``processing`` and say why."""
    token = chain_env.deploy()
    poor = poor_minter(chain_env, token)
    set_balance(chain_env, poor.address, 10**18)
    ids = enqueue_all(conn, fresh_addresses(2))

    def drain_funds(point: str) -> None:
        if point == "after_record":
            set_balance(chain_env, poor.address, 0)

    worker = chain_env.worker(database_url, token, key=poor.key.hex(), fault=drain_funds)
    worker.cycle(time.monotonic() + 10)
    assert worker.summary.faults == 1
    assert statuses(conn) == {"processing": 2}
    refusal = queue_status()["worker"]["signers"][0]
    assert refusal["code"] == "signer_underfunded"
    assert "the signer cannot pay" in refusal["reason"]
    item = queue_item(ids[1])
    assert item["status"] == "processing"
    assert item["waiting_reason"] == refusal["reason"]

    set_balance(chain_env, poor.address, 10**18)
    drain(worker)
    assert conn.execute("SELECT count(*) AS n FROM batch_mints").fetchone()["n"] == 1
    assert assert_exactly_once(chain_env, conn, token) == 2
    assert queue_status()["worker"]["state"] == "ok"
    worker.conn.close()


def test_an_unreachable_rpc_is_a_refusal_until_a_cycle_goes_through(
    chain_env: ChainEnv, conn: Any, database_url: str
) -> None:
    token = chain_env.deploy()
    ids = enqueue_all(conn, fresh_addresses(1))
    dead_url = f"http://127.0.0.1:{free_port()}"  # nobody listens there: connections are refused
    down = chain_env.worker(database_url, token, rpc_url=dead_url)
    down.cycle(time.monotonic() + 10)
    down.conn.close()
    refusing = queue_status()["worker"]
    assert (refusing["state"], refusing["signers"][0]["code"]) == ("refusing", "chain_unavailable")
    assert queue_item(ids[0])["waiting_reason"] == refusing["reason"]

    worker = chain_env.worker(database_url, token)
    drain(worker)
    assert assert_exactly_once(chain_env, conn, token) == 1
    # The queue is empty now; an idle cycle of a worker that refuses nothing writes nothing.
    assert queue_status()["worker"]["state"] == "ok"
    worker.cycle(time.monotonic() + 10)
    assert isinstance(worker, Worker) and worker.summary.faults == 0
    worker.conn.close()


def test_a_batch_held_at_the_fee_ceiling_is_a_refusal_its_items_explain(
    chain_env: ChainEnv, conn: Any, database_url: str, set_setting: Any
) -> None:
    """Not a fault (the latest attempt keeps being resent), but the line waits: say why."""
    token = chain_env.deploy()
    ids = enqueue_all(conn, fresh_addresses(2))
    set_setting("receipt_wait_seconds", 0.1)
    worker = chain_env.worker(database_url, token)
    chain_env.automine(False)
    worker.cycle(time.monotonic() + 10)
    assert statuses(conn) == {"processing": 2}
    assert queue_status()["worker"]["state"] == "ok", "a batch waiting for its block is no refusal"
    offered = int(conn.execute("SELECT max_fee_per_gas FROM batch_mints").fetchone()["max_fee_per_gas"])
    set_setting("max_fee_per_gas_gwei", offered * 1.05 / 10**9)  # a 12.5 % bump would cross it
    set_setting("stuck_after_seconds", 0.1)
    time.sleep(0.2)
    worker.cycle(time.monotonic() + 10)
    assert worker.summary.faults == 0
    refusing = queue_status()["worker"]
    assert (refusing["state"], refusing["signers"][0]["code"]) == ("refusing", "fee_ceiling")
    assert "above the ceiling" in refusing["reason"]
    assert queue_item(ids[0])["waiting_reason"] == refusing["reason"]

    chain_env.mine()
    chain_env.automine(True)
    drain(worker)
    assert assert_exactly_once(chain_env, conn, token) == 2
    assert queue_status()["worker"]["state"] == "ok"
    worker.conn.close()


def _paused(chain_env: ChainEnv, conn: Any, token: str, set_setting: Any) -> Callable[[], None]:
    chain_env.admin(token, "pause")
    return lambda: chain_env.admin(token, "unpause")


def _chain_reset(chain_env: ChainEnv, conn: Any, token: str, set_setting: Any) -> Callable[[], None]:
    """The database remembers a nonce far beyond what the chain reports (a chain reset)."""
    db.execute(
        conn,
        "insert_batch",
        {
            "id": uuid.uuid4(),
            "tx_hash": "0x" + "ab" * 32,
            "mint_count": 0,
            "chain_id": chain_env.w3.eth.chain_id,
            "signer": MINTER,
            "token": token,
            "nonce": 10**6,
            "gas_limit": 21_000,
            "max_fee_per_gas": 1,
            "max_priority_fee_per_gas": 1,
            "amount_per_mint": None,
        },
    )
    conn.execute("UPDATE batch_mints SET status = 'confirmed' WHERE nonce = 1000000")

    def forget() -> None:
        conn.execute("DELETE FROM batch_mints WHERE nonce = 1000000")

    return forget


def _fees_over_the_ceiling(
    chain_env: ChainEnv, conn: Any, token: str, set_setting: Any
) -> Callable[[], None]:
    set_setting("max_fee_per_gas_gwei", 0.000001)
    return lambda: set_setting("max_fee_per_gas_gwei", 500)


@pytest.mark.parametrize(
    ("cause", "code", "words"),
    [
        (_paused, "batch_blocked", "reverts for any recipient"),
        (_chain_reset, "nonce_conflict", "was the chain reset?"),
        (_fees_over_the_ceiling, "fee_ceiling", "above the fee ceiling"),
    ],
    ids=["paused", "chain_reset", "fee_ceiling"],
)
def test_each_refusal_is_named_until_a_cycle_goes_through(
    chain_env: ChainEnv,
    conn: Any,
    database_url: str,
    set_setting: Any,
    cause: Callable[..., Callable[[], None]],
    code: str,
    words: str,
) -> None:
    token = chain_env.deploy()
    ids = enqueue_all(conn, fresh_addresses(2))
    undo = cause(chain_env, conn, token, set_setting)
    worker = chain_env.worker(database_url, token)
    worker.cycle(time.monotonic() + 10)
    assert statuses(conn) == {"pending": 2}
    refusing = queue_status()["worker"]
    assert (refusing["state"], refusing["signers"][0]["code"]) == ("refusing", code)
    assert words in refusing["reason"]
    assert queue_item(ids[0])["waiting_reason"] == refusing["reason"]
    undo()
    drain(worker)
    assert assert_exactly_once(chain_env, conn, token) == 2
    assert queue_status()["worker"]["state"] == "ok"
    worker.conn.close()
