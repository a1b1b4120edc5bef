"""LOGIN users made members of mintq's group roles, the way a deployment makes its three logins.

Roles are cluster-wide while each test has its own database, so every login gets a name of
its own and is dropped when the test ends (the group roles mintq_api / mintq_worker, made by
migration 0010, stay: every test database grants to them).
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from mintq import config, db

API, WORKER = "mintq_api", "mintq_worker"
_serial = itertools.count()


def as_user(url: str, user: str) -> str:
    """``url`` (URL or key=value conninfo) with its user replaced."""
    return make_conninfo(url, user=user)


def upstream(url: str) -> tuple[str, int, str]:
    """(host, port, dbname) of a conninfo, for pointing a pooler at the same server."""
    parts = conninfo_to_dict(url)
    return str(parts.get("host") or "127.0.0.1"), int(parts.get("port") or 5432), str(parts["dbname"])


@contextlib.contextmanager
def login(admin_url: str, group: str) -> Iterator[str]:
    """A new LOGIN user IN ROLE ``group`` (trust auth, so no password); yields its name."""
    name = f"mintq_t_{group.removeprefix('mintq_')}_{os.getpid()}_{next(_serial)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(sql.Identifier(name), sql.Identifier(group))
        )
    try:
        yield name
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (name,))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.fixture
def api_url(pg_server: Any, database_url: str) -> Iterator[str]:
    """The test database's URL as a new login IN ROLE mintq_api. (A fixture: import it by name.)"""
    with login(pg_server.admin_url, API) as user:
        yield as_user(database_url, user)


@pytest.fixture
def worker_url(pg_server: Any, database_url: str) -> Iterator[str]:
    """The same as a new login IN ROLE mintq_worker."""
    with login(pg_server.admin_url, WORKER) as user:
        yield as_user(database_url, user)


def as_api_handlers(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """The enqueue and status handlers connect with ``url`` from now on."""
    monkeypatch.setenv("MINTQ_DATABASE_URL", url)
    config.reset()
    db.close_shared_connection()
