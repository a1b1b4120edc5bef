"""Shared fixtures: a real PostgreSQL (own database per test, cloned from a migrated
template) and a real anvil node (one per session, a fresh token per test)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# The environment must not leak a deployment's configuration into tests.
for _name in [n for n in os.environ if n.startswith("MINTQ_")]:
    del os.environ[_name]
os.environ["POWERTOOLS_SERVICE_NAME"] = "mintq"
os.environ["POWERTOOLS_METRICS_NAMESPACE"] = "MintqTest"
os.environ["POWERTOOLS_TRACE_DISABLED"] = "1"

from devstack import postgres  # noqa: E402
from mintq import config, db, migrations  # noqa: E402
from tests.support import scheduling  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
_counter = itertools.count()


@pytest.hookimpl(tryfirst=True)  # the serial marks must be there before -m selects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    scheduling.arrange(items)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[postgres.Server]:
    server = postgres.resolve_server(REPO_ROOT / ".local" / "test")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def template_db(pg_server: postgres.Server) -> Iterator[str]:
    name = f"mintq_test_{os.getpid()}_template"
    postgres.drop_database(pg_server.admin_url, name)
    url = postgres.ensure_database(pg_server.admin_url, name)
    migrations.apply(url)
    yield name
    postgres.drop_database(pg_server.admin_url, name)


@pytest.fixture
def database_url(
    pg_server: postgres.Server, template_db: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A fresh, migrated database for this test, wired into the handlers' configuration."""
    name = f"mintq_test_{os.getpid()}_{next(_counter)}"
    url = postgres.clone_database(pg_server.admin_url, template_db, name)
    monkeypatch.setenv("MINTQ_DATABASE_URL", url)
    config.reset()
    db.close_shared_connection()
    yield url
    db.close_shared_connection()
    config.reset()
    postgres.drop_database(pg_server.admin_url, name)


@pytest.fixture
def conn(database_url: str) -> Iterator[Any]:
    connection = db.connect(database_url)
    yield connection
    connection.close()


@pytest.fixture
def set_setting(conn: Any) -> Any:
    def setter(key: str, value: object) -> None:
        conn.execute(
            "INSERT INTO system_settings (key, value) VALUES (%(k)s, %(v)s)"
            " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            {"k": key, "v": str(value)},
        )

    return setter


# --- chain ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def anvil_node() -> Iterator[Any]:
    from devstack import anvil

    node = anvil.start_anvil(accounts=20)
    yield node
    node.stop()


@pytest.fixture
def w3(anvil_node: Any) -> Iterator[Any]:
    from web3 import Web3

    web3 = Web3(Web3.HTTPProvider(anvil_node.rpc_url))
    yield web3
    # A test that paused mining must not leave the next test waiting for blocks.
    web3.provider.make_request("evm_setAutomine", [True])


@pytest.fixture
def chain_env(anvil_node: Any) -> Iterator[Any]:
    from tests.support.chain import ChainEnv

    env = ChainEnv(anvil_node.rpc_url)
    yield env
    # A test that paused mining must not leave the next one waiting for blocks.
    env.automine(True)
