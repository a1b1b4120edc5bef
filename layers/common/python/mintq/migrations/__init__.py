"""Versioned, forward-only schema migrations.

Files ``NNNN_description.sql`` in this folder are applied in name order, each in its own
transaction, and recorded in ``schema_migrations``. A session advisory lock makes
concurrent callers (a deploy step, the local stack, a test run) wait for each other
instead of racing. Then ``grants.sql`` (what the roles mintq_api and mintq_worker may do on
each object) is applied again, every run, so that it holds for objects a migration created
or recreated.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import psycopg

from mintq import db, errors

_NAME = re.compile(r"^(?P<version>\d{4})_[a-z0-9_]+\.sql$")
# pg_advisory_lock key shared by every migrator of every mintq database.
LOCK_KEY = 0x6D696E74_71_6D6967  # "mintq" + "mig"


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available() -> list[Migration]:
    found = []
    for entry in resources.files(__name__).iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(match["version"], entry.name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise errors.ConfigurationError("two migrations share a version number")
    return found


def grants() -> str:
    """The roles' privileges (``grants.sql``): revokes everything, then grants it again."""
    return resources.files(__name__).joinpath("grants.sql").read_text(encoding="utf-8")


def apply(conninfo: str | None = None) -> list[str]:
    """Bring the database up to date; returns the names of the migrations applied now."""
    applied_now: list[str] = []
    # The migrator's lock is a session lock: lock_holder refuses a pooled connection.
    conn = db.connect(conninfo, application_name="mintq-migrate", lock_holder=True)
    try:
        with db.wrap_errors():
            conn.execute("SELECT pg_advisory_lock(%(key)s)", {"key": LOCK_KEY})
            try:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    " version text PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now())"
                )
                rows = conn.execute("SELECT version, name, checksum FROM schema_migrations").fetchall()
                done = {row["version"]: row for row in rows}
                for migration in available():
                    previous = done.get(migration.version)
                    if previous is not None:
                        if previous["checksum"] != migration.checksum:
                            raise errors.ConfigurationError(
                                f"migration {migration.name} changed after it was applied"
                            )
                        continue
                    with conn.transaction():
                        conn.execute(migration.sql.encode())
                        conn.execute(
                            "INSERT INTO schema_migrations (version, name, checksum)"
                            " VALUES (%(version)s, %(name)s, %(checksum)s)",
                            {
                                "version": migration.version,
                                "name": migration.name,
                                "checksum": migration.checksum,
                            },
                        )
                    applied_now.append(migration.name)
                with conn.transaction():
                    conn.execute(grants().encode())
            finally:
                if not conn.broken:
                    conn.execute("SELECT pg_advisory_unlock(%(key)s)", {"key": LOCK_KEY})
    except psycopg.Error as exc:  # pragma: no cover - wrap_errors converts these
        raise errors.DatabaseError(str(exc)) from exc
    finally:
        conn.close()
    return applied_now


def status(conninfo: str | None = None) -> list[dict[str, object]]:
    """Every known migration with its state: ``applied`` (with ``applied_at``), ``pending``,
    or ``changed`` (applied, but the file differs from what ran: ``apply`` would refuse)."""
    conn = db.connect(conninfo, application_name="mintq-migrate")
    try:
        with db.wrap_errors():
            exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL AS present").fetchone()
            rows = (
                conn.execute("SELECT version, checksum, applied_at FROM schema_migrations").fetchall()
                if exists and exists["present"]
                else []
            )
    finally:
        conn.close()
    done = {row["version"]: row for row in rows}
    out: list[dict[str, object]] = []
    for migration in available():
        row = done.get(migration.version)
        state = (
            "pending" if row is None else "applied" if row["checksum"] == migration.checksum else "changed"
        )
        out.append(
            {
                "version": migration.version,
                "name": migration.name,
                "state": state,
                "applied_at": row["applied_at"].isoformat() if row is not None else None,
            }
        )
    return out
