"""Fault injection at the node: a send whose answer is lost after the node took it, an RPC that
refuses connections or answers 429 to a third of the calls, and one that goes away between
recording a batch and broadcasting it.

No accepted request is lost, none minted twice (tests/support/fault_injection.py).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.support.chain import (
    ChainEnv,
    assert_exactly_once,
    batch_statuses,
    drain,
    enqueue_all,
    fresh_addresses,
    statuses,
)
from tests.support.fault_injection import chain_nonce, wait_for
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.chain


# --- (c) the RPC drops the connection after the node took the transaction ------------


def test_a_send_whose_answer_is_lost_after_the_node_took_it_is_not_minted_twice(
    chain_env: ChainEnv, conn: Any, database_url: str
) -> None:
    token = chain_env.deploy()
    enqueue_all(conn, fresh_addresses(5))
    nonce_before = chain_nonce(chain_env)
    with TcpProxy.for_url(chain_env.rpc_url, mode="http") as proxy:
        worker = chain_env.worker(database_url, token, rpc_url=proxy.url)
        proxy.lose_send_responses(True)
        worker.cycle(time.monotonic() + 30)
        assert worker.summary.faults == 1, "the worker saw the send fail"
        assert proxy.lost_sends >= 1
        # ...but the node had it: the batch is mined while the database still says "signed".
        wait_for(lambda: chain_nonce(chain_env) == nonce_before + 1, timeout=5, what="the batch to be mined")
        assert batch_statuses(conn) == ["signed"]
        assert statuses(conn) == {"processing": 5}
        proxy.lose_send_responses(False)
        drain(worker)
        worker.conn.close()
    assert assert_exactly_once(chain_env, conn, token) == 5
    assert batch_statuses(conn) == ["confirmed"]
    assert chain_nonce(chain_env) == nonce_before + 1


# --- (d) the RPC refuses connections for a while ------------------------------------


def test_an_rpc_refusing_connections_leaves_requests_pending_and_uncharged_until_it_returns(
    chain_env: ChainEnv, conn: Any, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    token = chain_env.deploy()
    enqueue_all(conn, fresh_addresses(4))
    with TcpProxy.for_url(chain_env.rpc_url, mode="http") as proxy:
        proxy.refuse(True)
        worker = chain_env.worker(database_url, token, rpc_url=proxy.url)
        for _ in range(2):
            worker.cycle(time.monotonic() + 30)
        assert worker.summary.faults == 2
        logged = [r for r in caplog.records if r.getMessage() == "cycle skipped: chain fault"]
        # Logged each time, as a WARNING: it is retried with backoff, and one that persists
        # shows as the signer's refusal (worker_refusals, /queue/status), which calls a person.
        assert len(logged) == 2 and all(r.levelname == "WARNING" for r in logged), "each fault is logged"
        rows = conn.execute("SELECT status::text, retry_count FROM mint_queue").fetchall()
        assert {(r["status"], r["retry_count"]) for r in rows} == {("pending", 0)}
        assert batch_statuses(conn) == []
        proxy.refuse(False)
        drain(worker)
        worker.conn.close()
    assert assert_exactly_once(chain_env, conn, token) == 4


def test_a_rate_limited_rpc_answering_429_to_a_third_of_calls_mints_everything_once_charging_nobody(
    chain_env: ChainEnv, conn: Any, database_url: str, set_setting: Any
) -> None:
    token = chain_env.deploy()
    set_setting("max_batch_size", 10)
    set_setting("max_inflight_batches", 3)
    enqueue_all(conn, fresh_addresses(40))
    with TcpProxy.for_url(chain_env.rpc_url, mode="http") as proxy:
        proxy.throttle(0.33)
        worker = chain_env.worker(database_url, token, rpc_url=proxy.url)
        drain(worker, seconds=90)
        worker.conn.close()
        assert proxy.throttled > 10, "the provider must really have throttled the worker"
    assert assert_exactly_once(chain_env, conn, token) == 40
    # A 429 is the provider's problem, never the request's: no retry was charged to anyone.
    assert conn.execute("SELECT max(retry_count) AS m FROM mint_queue").fetchone()["m"] == 0
    assert statuses(conn) == {"completed": 40}


def test_an_rpc_that_goes_away_between_recording_and_broadcasting_gets_the_same_bytes_later(
    chain_env: ChainEnv, conn: Any, database_url: str
) -> None:
    token = chain_env.deploy()
    enqueue_all(conn, fresh_addresses(4))
    with TcpProxy.for_url(chain_env.rpc_url, mode="http") as proxy:

        def refuse_after_record(point: str) -> None:
            if point == "after_record":
                proxy.refuse(True)
                proxy.drop_all()  # the pooled keep-alive connection goes too

        worker = chain_env.worker(database_url, token, rpc_url=proxy.url, fault=refuse_after_record)
        worker.cycle(time.monotonic() + 30)
        worker.cycle(time.monotonic() + 30)  # reconciling fails too while the node is away
        assert worker.summary.faults == 2
        assert statuses(conn) == {"processing": 4}
        recorded = conn.execute("SELECT batch_tx_hash, status::text FROM batch_mints").fetchone()
        assert recorded["status"] == "signed"
        worker.fault = lambda point: None
        proxy.refuse(False)
        drain(worker)
        worker.conn.close()
    assert assert_exactly_once(chain_env, conn, token) == 4
    mined = conn.execute("SELECT batch_tx_hash FROM batch_mints").fetchone()["batch_tx_hash"]
    assert mined == recorded["batch_tx_hash"], "the very bytes recorded before the outage were mined"
