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

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

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
