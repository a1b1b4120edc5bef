"""mintq behind a transaction pooler: a private PgBouncer (``pool_mode = transaction``) stands in
for RDS Proxy, against the real PostgreSQL and anvil.

The API keeps no state in its session (no prepared statements, only transaction-scoped
advisory locks), so it answers through the pooler. The batch worker's signer lock is a
session advisory lock, which a pooler would leave on a backend other clients share: the
worker connects directly (its own URL) and refuses, loudly and before taking anything, a
session that a pooler multiplexes.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from mintq import config, db, errors, migrations
from mintq.worker import invocation
from tests.support import roles
from tests.support.chain import MINTER_KEY, ChainEnv, assert_exactly_once, fresh_addresses
from tests.support.events import http_event, invoke
from tests.support.pgbouncer import PgBouncer

pytestmark = pytest.mark.slow


@pytest.fixture
def api_user(pg_server: Any) -> Iterator[str]:
    with roles.login(pg_server.admin_url, "mintq_api") as user:
        yield user


@pytest.fixture
def pooler(database_url: str, api_user: str) -> Iterator[PgBouncer]:
    """PgBouncer with ONE server connection per database and user: every client shares it."""
    host, port, _ = roles.upstream(database_url)
    bouncer = PgBouncer(host, port, ["postgres", api_user], pool_size=1).start()
    yield bouncer
    bouncer.stop()


def pooled(pooler: PgBouncer, database_url: str, user: str = "postgres") -> str:
    return pooler.url(roles.upstream(database_url)[2], user)


def advisory_locks(conn: Any) -> int:
    row = conn.execute(
        "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory'"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    ).fetchone()
    return int(row["n"])


def test_the_fault_is_real_session_locks_through_the_pooler_are_shared_and_outlive_their_clients(
    pooler: PgBouncer, database_url: str, conn: Any
) -> None:
    """The control for the tests below: what a session advisory lock does through PgBouncer."""
    url = pooled(pooler, database_url)
    with (
        psycopg.connect(url, autocommit=True, prepare_threshold=None) as a,
        psycopg.connect(url, autocommit=True, prepare_threshold=None) as b,
    ):
        took = [c.execute("SELECT pg_try_advisory_lock(4242)").fetchone()[0] for c in (a, b)]
    assert took == [True, True], "two clients 'hold' one exclusive lock"
    assert advisory_locks(conn) == 1, "and it stays on the pooled backend after both left"


def test_workers_through_the_pooler_refuse_their_lock_send_nothing_and_leave_no_lock(
    chain_env: ChainEnv, pooler: PgBouncer, database_url: str, conn: Any, set_setting: Any
) -> None:
    token = chain_env.deploy()
    set_setting("batch_interval_seconds", 1)
    for payer in fresh_addresses(12):
        db.one(conn, "enqueue_request", {"payer": payer, "payment_type": "free", "default_max_pending": 10})
    url = pooled(pooler, database_url)
    workers = [chain_env.worker(url, token) for _ in range(2)]
    outcomes: list[object] = [None, None]

    def run(i: int) -> None:
        try:
            outcomes[i] = workers[i].run(time.monotonic() + 5)
        except errors.ConfigurationError as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for w in workers:
        w.conn.close()
    assert all(isinstance(o, errors.ConfigurationError) for o in outcomes), outcomes
    assert "directly" in str(outcomes[0])
    assert conn.execute("SELECT count(*) AS n FROM batch_mints").fetchone()["n"] == 0
    assert advisory_locks(conn) == 0, "a refused worker left a lock on a pooled backend"
    # The same misconfiguration through the connection a deployed worker opens fails before anything.
    with pytest.raises(errors.ConfigurationError, match="pooler"):
        db.connect(url, lock_holder=True)
    with pytest.raises(errors.ConfigurationError, match="pooler"):
        migrations.apply(url)

    # Two workers connecting directly, as the template wires them: one holds the lock at a time,
    # and the whole queue is minted once, at distinct nonces.
    direct = [chain_env.worker(database_url, token) for _ in range(2)]
    summaries: list[Any] = [None, None]

    def run_direct(i: int) -> None:
        summaries[i] = direct[i].run(time.monotonic() + 8)

    threads = [threading.Thread(target=run_direct, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for w in direct:
        w.conn.close()
    assert sorted(s.locked for s in summaries) == [False, True]
    assert assert_exactly_once(chain_env, conn, token) == 12
    nonces = [r["nonce"] for r in conn.execute("SELECT nonce FROM batch_mints")]
    assert len(nonces) == len(set(nonces))
    assert advisory_locks(conn) == 0


def test_the_deployed_worker_uses_its_own_direct_url_and_fails_loudly_on_a_pooled_one(
    chain_env: ChainEnv, pooler: PgBouncer, database_url: str, conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = chain_env.deploy()
    db.one(
        conn,
        "enqueue_request",
        {"payer": fresh_addresses(1)[0], "payment_type": "free", "default_max_pending": 10},
    )
    monkeypatch.setenv("MINTQ_DATABASE_URL", pooled(pooler, database_url))  # the API's, through the proxy
    monkeypatch.setenv("MINTQ_RPC_URL", chain_env.rpc_url)
    monkeypatch.setenv("MINTQ_TOKEN_ADDRESS", token)
    monkeypatch.setenv("MINTQ_SIGNER_PRIVATE_KEY", MINTER_KEY)
    monkeypatch.setattr(invocation, "_workers", [])
    config.reset()
    with pytest.raises(errors.ConfigurationError, match="pooler"):
        invocation.run_invocation(12_000)
    monkeypatch.setenv("MINTQ_WORKER_DATABASE_URL", database_url)
    config.reset()
    try:
        # 10 s of safety margin and 5 s of room for a cycle leave this run one cycle or more.
        summary = invocation.run_invocation(20_000)
    finally:
        for worker in invocation._workers:
            worker.conn.close()
    assert summary.locked and summary.mints_completed == 1
    assert advisory_locks(conn) == 0


def in_execution_environments(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run each call in a forked process of its own, all released at once: like Lambda, one
    execution environment (and one database connection) per concurrent request. Threads would
    share one Powertools resolver, which is not made for concurrent requests."""
    ctx = multiprocessing.get_context("fork")
    start = ctx.Barrier(len(calls))
    results = ctx.Queue()
    db.close_shared_connection()  # a child must open its own, never write on an inherited socket

    def child(i: int) -> None:
        db.shared_connection()  # connected before the barrier: every client is in at once
        start.wait(timeout=60)
        try:
            results.put((i, calls[i]()))
        except BaseException as exc:  # reported, not lost: the parent fails the test with it
            results.put((i, (599, {"exception": repr(exc)})))

    processes = [ctx.Process(target=child, args=(i,)) for i in range(len(calls))]
    for p in processes:
        p.start()
    answers = dict(results.get(timeout=120) for _ in processes)
    for p in processes:
        p.join(timeout=30)
    return [answers[i] for i in range(len(calls))]


def test_the_api_answers_50_concurrent_requests_through_the_pooler_without_a_5xx(
    pooler: PgBouncer, database_url: str, api_user: str, conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """50 clients, each with its own connection to PgBouncer as the API login, over one backend."""
    url = pooled(pooler, database_url, api_user)
    monkeypatch.setenv("MINTQ_DATABASE_URL", url)
    config.reset()
    payers = fresh_addresses(10)
    seeded = [
        str(
            db.one(conn, "enqueue_request", {"payer": p, "payment_type": "free", "default_max_pending": 10})[
                "id"
            ]
        )
        for p in payers
    ]

    def enqueue(i: int) -> tuple[int, dict[str, Any]]:
        headers = {"Idempotency-Key": f"pool-{i % 5}"} if i % 3 == 0 else None
        status, body, _ = invoke(
            "enqueue", http_event("POST", "/mint", body={"payer": payers[i % 10]}, headers=headers)
        )
        return status, body

    def status_page(i: int) -> tuple[int, dict[str, Any]]:
        if i % 3 == 0:
            status, body, _ = invoke("status", http_event("GET", "/queue/status"))
        elif i % 3 == 1:
            p = payers[i % 10]
            status, body, _ = invoke(
                "status",
                http_event(
                    "GET", f"/queue/payer/{p}", route="/queue/payer/{address}", path_parameters={"address": p}
                ),
            )
        else:
            q = seeded[i % 10]
            status, body, _ = invoke(
                "status",
                http_event(
                    "GET", f"/queue/item/{q}", route="/queue/item/{queueId}", path_parameters={"queueId": q}
                ),
            )
        return status, body

    calls = [(lambda i=i: enqueue(i)) if i % 2 == 0 else (lambda i=i: status_page(i)) for i in range(50)]
    answers = in_execution_environments(calls)
    statuses = [s for s, _ in answers]
    assert not [a for a in answers if a[0] >= 500], answers
    assert statuses.count(202) == 25 and statuses.count(200) == 25, statuses
    # Through the pooler, one backend served all 50 API clients.
    backends = conn.execute(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE usename = %(u)s", {"u": api_user}
    )
    assert backends.fetchone()["n"] == 1
    # Each idempotency key queued one request, every other enqueue its own; the counters agree.
    keyed = len({i % 5 for i in range(0, 50, 2) if i % 3 == 0})
    unkeyed = len([i for i in range(0, 50, 2) if i % 3 != 0])
    queued = conn.execute("SELECT count(*) AS n FROM mint_queue").fetchone()["n"]
    assert queued == len(seeded) + keyed + unkeyed
    assert conn.execute("SELECT pending_count FROM queue_stats").fetchone()["pending_count"] == queued
    assert advisory_locks(conn) == 0


@pytest.mark.chain
def test_paid_requests_admitted_concurrently_through_the_pooler_settle_and_mint_once(
    w3: Any,
    chain_env: ChainEnv,
    pooler: PgBouncer,
    database_url: str,
    api_user: str,
    conn: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The x402 admission lock is transaction-scoped, so it holds on a multiplexed backend."""
    from tests.support.x402_client import pay_v2, post_mint, v2_header
    from tests.support.x402_stack import deploy_stack, drain

    for stack in deploy_stack(w3, chain_env, database_url, monkeypatch, max_mints=100):
        url = pooled(pooler, database_url, api_user)
        payers = [stack.payer() for _ in range(6)]
        headers = [v2_header(pay_v2(p, stack)) for p in payers]
        monkeypatch.setenv("MINTQ_DATABASE_URL", url)
        config.reset()
        answers = in_execution_environments([lambda h=h: post_mint(h) for h in headers])
        assert [(s, b.get("paymentStatus")) for s, b, _ in answers] == [(202, "settled")] * 6, answers
        assert len({b["queueId"] for _, b, _ in answers}) == 6
        drain(stack)
        assert [stack.minted(p.address) for p in payers] == [1] * 6
        assert advisory_locks(conn) == 0
