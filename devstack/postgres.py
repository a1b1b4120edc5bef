"""Find (or start) a PostgreSQL server for the local stack and the test suite.

Resolution order, first hit wins:

1. ``DATABASE_URL`` — used as is; the caller must not create or drop databases on it.
2. ``127.0.0.1:5432`` as user ``postgres`` with trust auth (a developer's or CI's server).
3. An embedded server from the ``pgserver`` wheel, data under ``state_dir / "pgdata"``.

``MINTQ_PG=env|local|embedded`` forces one source (and fails loudly if it is unavailable);
unset or ``auto`` means the order above.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

log = logging.getLogger(__name__)

ServerKind = Literal["env", "local", "embedded"]

LOCAL_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# libpq's connect_timeout is whole seconds and treats values below 2 as 2.
_PROBE_TIMEOUT_S = 2


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server could be found or started."""


@dataclass
class Server:
    """A resolved server. ``admin_url`` points at the maintenance DB (or, for "env", the given DB)."""

    admin_url: str
    kind: ServerKind
    _stop: Callable[[], None] | None = field(default=None, repr=False)

    @property
    def can_create_databases(self) -> bool:
        # A DATABASE_URL is someone else's database: use it, never create/drop next to it.
        return self.kind != "env"

    def stop(self) -> None:
        """Release the server; only an embedded one is actually shut down (when its last user leaves)."""
        stop, self._stop = self._stop, None
        if stop is not None:
            stop()


def resolve_server(state_dir: Path) -> Server:
    mode = os.environ.get("MINTQ_PG", "auto").strip().lower() or "auto"
    if mode not in ("auto", "env", "local", "embedded"):
        raise ValueError(f"MINTQ_PG must be one of auto, env, local, embedded; got {mode!r}")

    if mode in ("auto", "env"):
        url = os.environ.get("DATABASE_URL", "").strip()
        if url:
            return Server(admin_url=url, kind="env")
        if mode == "env":
            raise PostgresUnavailable("MINTQ_PG=env but DATABASE_URL is not set")

    if mode in ("auto", "local"):
        if _can_connect(LOCAL_ADMIN_URL):
            return Server(admin_url=LOCAL_ADMIN_URL, kind="local")
        if mode == "local":
            raise PostgresUnavailable(f"MINTQ_PG=local but nothing answers at {LOCAL_ADMIN_URL}")

    return _start_embedded(state_dir / "pgdata")


def _can_connect(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=_PROBE_TIMEOUT_S, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        log.debug("no PostgreSQL at %s: %s", url, exc)
        return False
    return True


# pgserver keeps one handle per pgdata per process and stops the server on the first cleanup();
# count our own users so one Server.stop() cannot pull the database from under another.
_embedded_lock = threading.Lock()
_embedded_refs: dict[Path, int] = {}


def _start_embedded(pgdata: Path) -> Server:
    try:
        from pgserver.postgres_server import get_server
        from pgserver.utils import PostmasterInfo
    except ImportError as exc:
        raise PostgresUnavailable(
            "No PostgreSQL found: DATABASE_URL is unset, nothing answers at 127.0.0.1:5432, and the "
            "'pgserver' package (embedded PostgreSQL) is not installed. Install it with "
            "`pip install pgserver`, start a local PostgreSQL, or set DATABASE_URL."
        ) from exc

    pgdata = pgdata.expanduser().resolve()
    pg_log = logging.getLogger("pgserver")
    if pg_log.level == logging.NOTSET:
        pg_log.setLevel(logging.WARNING)  # it logs every pg_ctl/initdb output at INFO
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with _embedded_lock:
        # Starts the server (initdb on first use) or attaches to one already running on this pgdata,
        # possibly owned by another process; pgserver stops it when the last process lets go.
        handle: Any = get_server(pgdata, cleanup_mode="stop")
        _embedded_refs[pgdata] = _embedded_refs.get(pgdata, 0) + 1
    info: Any = handle.get_postmaster_info()
    admin_url = _embedded_url(info.socket_dir, info.port, info.hostname)
    log.info("embedded PostgreSQL (pgserver) at %s, data in %s", admin_url, pgdata)

    def stop() -> None:
        with _embedded_lock:
            _embedded_refs[pgdata] -= 1
            if _embedded_refs[pgdata] == 0:
                del _embedded_refs[pgdata]
                # pgserver stops the postmaster it saw at start and skips the stop when that process
                # is gone; a server restarted since (crash recovery, pg_ctl restart) would outlive us.
                # Tell it which postmaster runs on this data directory now.
                running = PostmasterInfo.read_from_pgdata(pgdata)
                if running is not None and running.is_running():
                    handle._postmaster_info = running
                handle.cleanup()

    return Server(admin_url=admin_url, kind="embedded", _stop=stop)


def _embedded_url(socket_dir: Path | None, port: int | None, hostname: str | None) -> str:
    # pgserver listens on a unix socket only (postgres -h ""), the socket dir lives in postmaster.pid.
    # libpq URLs take the socket directory as a percent-encoded ?host= parameter.
    if socket_dir is not None:
        query = f"host={quote(str(socket_dir), safe='')}"
        if port is not None:
            query += f"&port={port}"  # the socket file is named .s.PGSQL.<port>
        return f"postgresql://postgres@/postgres?{query}"
    if hostname and port:  # Windows: pgserver falls back to TCP on a free port
        return f"postgresql://postgres@{hostname}:{port}/postgres"
    raise PostgresUnavailable("pgserver started but postmaster.pid has neither a socket dir nor a port")


def database_url(url: str, name: str) -> str:
    """``url`` with its database replaced by ``name`` (URL or key=value conninfo)."""
    if url.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(url)
        return urlunsplit(parts._replace(path="/" + quote(name, safe="")))
    return make_conninfo(url, dbname=name)


def admin_connection(admin_url: str) -> psycopg.Connection[Any]:
    """An autocommit session on the maintenance database (CREATE/DROP/ALTER DATABASE cannot run
    inside a transaction block)."""
    return psycopg.connect(admin_url, autocommit=True, connect_timeout=10)


def terminate_sessions(conn: psycopg.Connection[Any], name: str) -> None:
    """End every session on database ``name`` but ours (a database in use cannot be renamed or dropped)."""
    conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
        (name,),
    )


def _exists(conn: psycopg.Connection[Any], name: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def ensure_database(admin_url: str, name: str) -> str:
    """Create database ``name`` unless it exists; return its URL."""
    with admin_connection(admin_url) as conn:
        if not _exists(conn, name):
            # A concurrent creator may win the race; the database then exists, which is all we want.
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return database_url(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    """Drop ``name`` if it exists, disconnecting its sessions first."""
    with admin_connection(admin_url) as conn:
        # WITH (FORCE) (PG13+) terminates sessions itself; the explicit terminate keeps older servers working.
        terminate_sessions(conn, name)
        force = conn.info.server_version >= 130000
        stmt = sql.SQL("DROP DATABASE IF EXISTS {}{}").format(
            sql.Identifier(name), sql.SQL(" WITH (FORCE)") if force else sql.SQL("")
        )
        conn.execute(stmt)


def clone_database(admin_url: str, template: str, name: str) -> str:
    """Create ``name`` as a copy of ``template`` (which must have no other sessions); return its URL."""
    with admin_connection(admin_url) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
        )
    return database_url(admin_url, name)
