"""The fault suite's tools (tests/integration/test_faults_*.py).

Every scenario there breaks something real at a chosen instant (a ``kill -9`` of a worker
process, a cut or refused TCP connection to the node or to PostgreSQL, a terminated backend, a
crashed PostgreSQL server, the signer's nonce taken by someone else), then lets a fresh worker
recover and ends with ``assert_exactly_once``, which checks the chain and the database against
each other: no accepted request is ever lost, none is minted twice.

Here: a fresh worker that takes over from a dead one and drains, worker processes to kill
(``spawn_worker``, a fixture: import it by name), TCP proxies in front of PostgreSQL, and
waiting for a condition with a deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from mintq import db
from tests.support.chain import MINTER, MINTER_KEY, ChainEnv, drain
from tests.support.tcp_proxy import TcpProxy
from tests.support.worker_process import WorkerProcess, spawn


class Crash(Exception):
    """An in-process crash: not a chain fault, so nothing in the worker catches it."""


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
