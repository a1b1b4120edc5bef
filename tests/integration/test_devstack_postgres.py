"""Resolving a PostgreSQL server and managing throwaway databases on it."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from devstack.postgres import (
    LOCAL_ADMIN_URL,
    PostgresUnavailable,
    Server,
    clone_database,
    database_url,
    drop_database,
    ensure_database,
    resolve_server,
)
from tests.support.embedded_pg import crash_and_restart, postgres_processes


def _local_up() -> bool:
    try:
        with psycopg.connect(LOCAL_ADMIN_URL, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def _db_exists(admin_url: str, name: str) -> bool:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def _unique(prefix: str) -> str:
    # A quote and a space in the name prove identifiers are quoted, not pasted.
    return f'{prefix} "{uuid.uuid4().hex[:8]}'


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("MINTQ_PG", raising=False)


@pytest.fixture
def embedded_dir() -> Iterator[Path]:
    """A directory for an embedded server's data that its postgres processes can reach: run as
    root, pgserver runs them as its own user, who cannot enter pytest's owner-only ``tmp_path``."""
    path = Path(tempfile.mkdtemp(prefix="mintq-embedded-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def server(no_env: None, embedded_dir: Path) -> Iterator[Server]:
    srv = resolve_server(embedded_dir)
    try:
        yield srv
    finally:
        srv.stop()


def test_database_url_swaps_the_database() -> None:
    url = "postgresql://postgres@/postgres?host=%2Ftmp%2Fx&port=5432"
    assert database_url(url, "my db") == "postgresql://postgres@/my%20db?host=%2Ftmp%2Fx&port=5432"
    assert database_url("postgres://u:p@h:1/postgres", "d") == "postgres://u:p@h:1/d"
    assert psycopg.conninfo.conninfo_to_dict(database_url("host=h dbname=postgres", "d"))["dbname"] == "d"


def test_database_url_env_is_used_as_is(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    url = "postgresql://someone@db.example:6543/app"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.delenv("MINTQ_PG", raising=False)
    srv = resolve_server(tmp_path)  # no connection attempt: the URL is the user's promise
    assert (srv.admin_url, srv.kind, srv.can_create_databases) == (url, "env", False)
    srv.stop()


def test_bad_mode_and_missing_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("MINTQ_PG", "bogus")
    with pytest.raises(ValueError, match="MINTQ_PG"):
        resolve_server(tmp_path)
    monkeypatch.setenv("MINTQ_PG", "env")
    with pytest.raises(PostgresUnavailable, match="DATABASE_URL"):
        resolve_server(tmp_path)


def test_missing_pgserver_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MINTQ_PG", "embedded")
    # A None entry in sys.modules makes the import raise ImportError, as if it were not installed.
    monkeypatch.setitem(sys.modules, "pgserver", None)
    monkeypatch.setitem(sys.modules, "pgserver.postgres_server", None)
    with pytest.raises(PostgresUnavailable, match="pip install pgserver"):
        resolve_server(tmp_path)
    assert not (tmp_path / "pgdata").exists()


def test_resolves_the_local_server(server: Server) -> None:
    if not _local_up():
        pytest.skip("no PostgreSQL at 127.0.0.1:5432")
    assert server.kind == "local"
    assert server.admin_url == LOCAL_ADMIN_URL
    with psycopg.connect(server.admin_url) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("postgres",)


def test_ensure_clone_drop(server: Server) -> None:
    template, clone = _unique("mintq_tpl"), _unique("mintq_clone")
    try:
        url = ensure_database(server.admin_url, template)
        assert ensure_database(server.admin_url, template) == url  # idempotent
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == (template,)
            conn.execute("CREATE TABLE t (v text)")
            conn.execute("INSERT INTO t VALUES ('from template')")

        clone_url = clone_database(server.admin_url, template, clone)
        with psycopg.connect(clone_url) as conn:
            assert conn.execute("SELECT v FROM t").fetchall() == [("from template",)]

        # A session left open must not block the drop.
        lingering = psycopg.connect(clone_url)
        try:
            drop_database(server.admin_url, clone)
        finally:
            lingering.close()
        assert not _db_exists(server.admin_url, clone)
        drop_database(server.admin_url, clone)  # dropping a missing database is a no-op
    finally:
        drop_database(server.admin_url, clone)
        drop_database(server.admin_url, template)
    assert not _db_exists(server.admin_url, template)


@pytest.mark.slow
def test_embedded_server_when_forced(monkeypatch: pytest.MonkeyPatch, embedded_dir: Path) -> None:
    pytest.importorskip("pgserver")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("MINTQ_PG", "embedded")

    first = resolve_server(embedded_dir)
    second = resolve_server(embedded_dir)  # same data dir: shares the running server
    try:
        assert first.kind == "embedded"
        assert first.admin_url == second.admin_url
        assert (embedded_dir / "pgdata" / "PG_VERSION").exists()
        with psycopg.connect(first.admin_url) as conn:
            assert conn.execute("SELECT current_user, current_database()").fetchone() == (
                "postgres",
                "postgres",
            )
        name = _unique("mintq_emb")
        url = ensure_database(first.admin_url, name)
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 40 + 2").fetchone() == (42,)
        drop_database(first.admin_url, name)
        assert not _db_exists(first.admin_url, name)

        first.stop()
        first.stop()  # idempotent, and must not stop the server under `second`
        with psycopg.connect(second.admin_url) as conn:
            conn.execute("SELECT 1")
    finally:
        first.stop()
        second.stop()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(second.admin_url, connect_timeout=2).close()


@pytest.mark.slow
def test_an_embedded_server_restarted_behind_its_handle_is_stopped_by_its_last_user(
    monkeypatch: pytest.MonkeyPatch, embedded_dir: Path
) -> None:
    """The fault suite crashes and restarts its embedded server; stopping it afterwards must stop
    the server that runs then, not only the one that ran first (a suite stops what it starts)."""
    pytest.importorskip("pgserver")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("MINTQ_PG", "embedded")
    server = resolve_server(embedded_dir)
    pgdata = (embedded_dir / "pgdata").resolve()
    try:
        first = postgres_processes(pgdata)
        assert first, "the embedded server should be running"
        crash_and_restart(pgdata)
        restarted = postgres_processes(pgdata)
        assert restarted and not set(first) & set(restarted), "the restart should be a new server"
        # As in the fault suite, where a whole test runs after the restart: the crashed server is
        # reaped by then (a zombie would still look alive to pgserver and hide the fault).
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{pid}").exists() for pid in first) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        server.stop()
    deadline = time.monotonic() + 10
    while postgres_processes(pgdata) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert postgres_processes(pgdata) == []
