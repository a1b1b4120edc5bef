"""Fault injection: no accepted request is ever lost, none is minted twice.

Every scenario breaks something real at a chosen instant (a ``kill -9`` of a worker
process, a cut or refused TCP connection to the node or to PostgreSQL, a terminated
backend, a crashed PostgreSQL server, the signer's nonce taken by someone else) and then
lets a fresh worker recover. Each ends with ``assert_exactly_once``, which checks the
chain and the database against each other.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from devstack import postgres
from mintq import db, errors, migrations
from mintq.worker.faults import CRASH_POINTS
from tests.support.chain import (
    MINTER,
    MINTER_KEY,
    ChainEnv,
    assert_exactly_once,
    batch_statuses,
    drain,
    enqueue_all,
    fresh_addresses,
    statuses,
    take_nonce,
)
from tests.support.embedded_pg import crash_and_restart
from tests.support.tcp_proxy import TcpProxy
from tests.support.worker_process import WorkerProcess, application_name, spawn

pytestmark = pytest.mark.chain


class Crash(Exception):
    """An in-process crash: not a chain fault, so nothing in the worker catches it."""


# --- assertions --------------------------------------------------------------------


# --- helpers -------------------------------------------------------------------------


def restart_and_drain(chain_env: ChainEnv, database_url: str, token: str, *, seconds: float = 30) -> Any:
    """A fresh worker takes the signer's lock (the dead one's session must have let go) and drains."""
    worker = chain_env.worker(database_url, token)
    deadline = time.monotonic() + 10
    while not worker.try_lock():
        assert time.monotonic() < deadline, "the dead worker's session still holds the signer lock"
        time.sleep(0.05)
    try:
        drain(worker, seconds=seconds)
    finally:
        db.one(worker.conn, "release_signer_lock", {"lock_name": worker.lock_name})
        worker.conn.close()
    return worker


def chain_nonce(chain_env: ChainEnv, block: str = "latest") -> int:
    return int(chain_env.w3.eth.get_transaction_count(MINTER, block))  # type: ignore[arg-type]


def wait_for(predicate: Callable[[], Any], *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def spawn_worker(
    chain_env: ChainEnv, database_url: str, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []
    chain_id = int(chain_env.w3.eth.chain_id)

    def start(token: str, **kwargs: Any) -> WorkerProcess:
        proc = spawn(
            tmp_path / "workers",
            database_url=database_url,
            rpc_url=chain_env.rpc_url,
            token=token,
            key=MINTER_KEY,
            chain_id=chain_id,
            **kwargs,
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()


def tcp_endpoint(url: str) -> tuple[str, int]:
    """The PostgreSQL server's TCP address in ``url``; skips the test for a unix socket."""
    parts = urlsplit(url)
    if not parts.hostname:
        pytest.skip("PostgreSQL is reached through a unix socket; a TCP proxy cannot sit in front")
    return parts.hostname, parts.port or 5432


def via(url: str, proxy: TcpProxy) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    auth = netloc[0] + "@" if len(netloc) == 2 else ""
    return urlunsplit(parts._replace(netloc=f"{auth}127.0.0.1:{proxy.port}"))


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


# --- (e) PostgreSQL goes away mid-batch ---------------------------------------------


def test_a_terminated_database_backend_right_after_broadcast_stops_the_worker_and_a_new_one_finishes(
    chain_env: ChainEnv, conn: Any, database_url: str
) -> None:
    token = chain_env.deploy()
    enqueue_all(conn, fresh_addresses(5))
    victim: list[int] = []

    def terminate_backend(point: str) -> None:
        if point == "after_broadcast":
            pid = doomed.conn.info.backend_pid
            victim.append(pid)
            conn.execute("SELECT pg_terminate_backend(%(pid)s)", {"pid": pid})

    doomed = chain_env.worker(database_url, token, fault=terminate_backend)
    with pytest.raises(errors.DatabaseError):
        doomed.run(time.monotonic() + 20)
    assert victim and doomed.conn.broken
    assert statuses(conn) == {"processing": 5}
    assert batch_statuses(conn) == ["pending"]
    restart_and_drain(chain_env, database_url, token)
    assert assert_exactly_once(chain_env, conn, token) == 5
    assert batch_statuses(conn) == ["confirmed"]


@pytest.mark.parametrize("point", ["after_claim", "after_record", "after_broadcast", "mid_record"])
def test_a_cut_database_connection_mid_batch_stops_the_worker_and_a_new_one_finishes(
    chain_env: ChainEnv, conn: Any, database_url: str, point: str
) -> None:
    token = chain_env.deploy()
    enqueue_all(conn, fresh_addresses(5))
    with TcpProxy(*tcp_endpoint(database_url)) as proxy:
        cuts: list[str] = []

        def cut(at: str) -> None:
            if at == point:
                cuts.append(at)
                assert proxy.drop_all() >= 2

        doomed = chain_env.worker(via(database_url, proxy), token, fault=cut)
        with pytest.raises(errors.DatabaseError):
            doomed.run(time.monotonic() + 20)
        assert cuts == [point], "the worker must have died of the cut, not of something earlier"
        assert doomed.conn.broken
    restart_and_drain(chain_env, database_url, token)
    assert assert_exactly_once(chain_env, conn, token) == 5
    assert batch_statuses(conn) == ["confirmed"]


@pytest.fixture(scope="module")
def embedded_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[postgres.Server, Path]]:
    """Our own PostgreSQL server (pgserver), which we may crash and restart at will.

    Never the machine's shared server: that one is not ours to restart.
    """
    pytest.importorskip("pgserver")
    state_dir = tmp_path_factory.mktemp("embedded-pg")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINTQ_PG", "embedded")
        server = postgres.resolve_server(state_dir)
    yield server, (state_dir / "pgdata").resolve()
    server.stop()


@pytest.mark.parametrize("point", ["after_record", "mid_record"])
def test_a_postgresql_server_crash_and_restart_mid_batch_loses_nothing(
    chain_env: ChainEnv, embedded_pg: tuple[postgres.Server, Path], point: str
) -> None:
    server, pgdata = embedded_pg
    name = f"mintq_faults_{point}"
    postgres.drop_database(server.admin_url, name)
    url = postgres.ensure_database(server.admin_url, name)
    migrations.apply(url)
    token = chain_env.deploy()
    with db.connect(url) as setup:
        enqueue_all(setup, fresh_addresses(5))

    def crash(at: str) -> None:
        if at == point:
            crash_and_restart(pgdata)

    doomed = chain_env.worker(url, token, fault=crash)
    with pytest.raises(errors.DatabaseError):
        doomed.run(time.monotonic() + 20)
    with db.connect(url) as after:
        if point == "after_record":
            # The write-ahead record was committed before the crash: WAL recovery kept it.
            assert batch_statuses(after) == ["signed"]
        else:
            assert batch_statuses(after) == ["pending"]
        assert statuses(after) == {"processing": 5}
    restart_and_drain(chain_env, url, token)
    with db.connect(url) as check:
        assert assert_exactly_once(chain_env, check, token) == 5
        assert batch_statuses(check) == ["confirmed"]
    postgres.drop_database(server.admin_url, name)


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
