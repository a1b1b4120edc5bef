"""PostgreSQL access: one reused connection, named queries, and error translation.

All runtime SQL lives in ``sql/queries.sql`` as ``-- name: <query>`` blocks with
``%(param)s`` placeholders; code refers to queries by name only. psycopg errors
never leave this module: they become ``errors.DatabaseError``.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Callable, Iterator, Mapping
from importlib import resources
from typing import Any, LiteralString

import psycopg
from psycopg.rows import dict_row

from mintq import credentials, errors

Row = dict[str, Any]
Params = Mapping[str, Any]
#: A connection whose rows are dicts (every connection ``connect`` opens).
Conn = psycopg.Connection[Row]

_QUERY_HEADER = re.compile(r"^-- name: (?P<name>[a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


def parse_queries(text: str) -> dict[str, LiteralString]:
    """Split a file of ``-- name: x`` blocks into ``{name: sql}``."""
    queries: dict[str, LiteralString] = {}
    headers = list(_QUERY_HEADER.finditer(text))
    for header, following in zip(headers, [*headers[1:], None], strict=True):
        end = following.start() if following else len(text)
        body = text[header.end() : end].strip()
        name = header["name"]
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        if not body:
            raise ValueError(f"query {name!r} is empty")
        queries[name] = body  # type: ignore[assignment]  # read from our own file, never user input
    return queries


@functools.cache
def queries() -> dict[str, LiteralString]:
    text = resources.files("mintq").joinpath("sql/queries.sql").read_text(encoding="utf-8")
    return parse_queries(text)


def query(name: str) -> LiteralString:
    try:
        return queries()[name]
    except KeyError as exc:
        raise errors.ConfigurationError(f"unknown query {name!r}") from exc


# A worker's session holds its signer's advisory lock: if the worker vanishes without
# closing (frozen Lambda, partition), the server must notice within minutes, not hours.
_SERVER_KEEPALIVES = (
    "SELECT set_config('tcp_keepalives_idle', '30', false),"
    " set_config('tcp_keepalives_interval', '10', false),"
    " set_config('tcp_keepalives_count', '3', false),"
    " set_config('idle_in_transaction_session_timeout', '120000', false)"
)


def connect(
    conninfo: str | None = None, *, application_name: str = "mintq", lock_holder: bool = False
) -> Conn:
    """Open an autocommit connection; transactions are explicit (``with transaction(conn)``).

    ``prepare_threshold=None`` keeps psycopg from preparing statements, which would pin
    sessions behind RDS Proxy. ``lock_holder`` sessions (batch workers, the migrator) hold
    session advisory locks: they must own their backend, so a connection through a transaction
    pooler is refused with ``errors.ConfigurationError`` (see ``own_session``), and they get
    server-side keepalives so a dead holder's lock is released promptly.
    """
    try:
        conn = psycopg.connect(
            conninfo or credentials.database_url(),
            autocommit=True,
            row_factory=dict_row,
            prepare_threshold=None,
            application_name=application_name,
            connect_timeout=10,
            keepalives=1,
            keepalives_idle=30,
            keepalives_interval=10,
            keepalives_count=3,
        )
        if lock_holder:
            if not own_session(conn):
                conn.close()
                raise errors.ConfigurationError(
                    "this connection goes through a transaction pooler (RDS Proxy, PgBouncer): a session"
                    " advisory lock taken on it would stay on a shared backend. Connect the batch worker"
                    " (MINTQ_WORKER_DATABASE_URL / MINTQ_WORKER_DATABASE_SECRET_ARN) and the migrator"
                    " to PostgreSQL directly"
                )
            conn.execute(_SERVER_KEEPALIVES)
        return conn
    except psycopg.Error as exc:
        raise errors.DatabaseError(f"cannot connect to PostgreSQL: {exc}") from exc


def own_session(conn: Conn) -> bool:
    """Whether statements on ``conn`` run on the backend it connected to, i.e. not through a
    transaction pooler.

    The server names its backend (BackendKeyData) when the connection starts; a pooler that
    multiplexes backends answers the client with a key of its own, so the backend that runs a
    statement is not the one the client was told about. A plain TCP relay passes the key through.
    """
    row = conn.execute("SELECT pg_backend_pid() AS pid").fetchone()
    return row is not None and row["pid"] == conn.info.backend_pid


_shared: Conn | None = None


def shared_connection() -> Conn:
    """The execution environment's connection, reopened if it broke between invocations."""
    global _shared  # noqa: PLW0603 - one connection per Lambda execution environment
    if _shared is None or _shared.closed or _shared.broken:
        _shared = connect()
    return _shared


_reader: Conn | None = None


def reader_connection() -> Conn:
    """The connection status reads use: the read replica's when one is configured
    (``credentials.database_reader_url``), else the primary's shared connection."""
    global _reader  # noqa: PLW0603 - one connection per Lambda execution environment
    url = credentials.database_reader_url()
    if url is None:
        return shared_connection()
    if _reader is None or _reader.closed or _reader.broken:
        _reader = connect(url, application_name="mintq-reader")
    return _reader


def primary_fallback() -> Callable[[], Conn] | None:
    """Where a read that found nothing on the replica looks again (the primary), or None
    when reads already go to the primary."""
    return shared_connection if credentials.database_reader_url() is not None else None


def close_shared_connection() -> None:
    global _shared, _reader  # noqa: PLW0603
    for conn in (_shared, _reader):
        if conn is not None:
            conn.close()
    _shared = _reader = None


@contextlib.contextmanager
def wrap_errors() -> Iterator[None]:
    try:
        yield
    except psycopg.Error as exc:
        raise errors.DatabaseError(f"{type(exc).__name__}: {exc}".strip()) from exc


@contextlib.contextmanager
def transaction(conn: Conn) -> Iterator[Conn]:
    with wrap_errors(), conn.transaction():
        yield conn


def one(conn: Conn, name: str, params: Params | None = None) -> Row | None:
    with wrap_errors(), conn.cursor() as cur:
        cur.execute(query(name), params or {})
        return cur.fetchone()


def rows(conn: Conn, name: str, params: Params | None = None) -> list[Row]:
    with wrap_errors(), conn.cursor() as cur:
        cur.execute(query(name), params or {})
        return cur.fetchall()


def execute(conn: Conn, name: str, params: Params | None = None) -> int:
    """Run a statement and return the number of rows it touched."""
    with wrap_errors(), conn.cursor() as cur:
        cur.execute(query(name), params or {})
        return cur.rowcount
