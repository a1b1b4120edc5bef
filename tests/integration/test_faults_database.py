"""Fault injection at PostgreSQL: a backend terminated right after a broadcast, the connection
cut mid-batch, and the server itself crashed and restarted mid-batch.

No accepted request is lost, none minted twice (tests/support/fault_injection.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack import postgres
from mintq import db, errors, migrations
from tests.support.chain import (
    ChainEnv,
    assert_exactly_once,
    batch_statuses,
    enqueue_all,
    fresh_addresses,
    statuses,
)
from tests.support.embedded_pg import crash_and_restart
from tests.support.fault_injection import restart_and_drain, tcp_endpoint, via
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.chain


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
