"""What the database holds about one signer's worker: its lock, its cycle probe, its refusal.

One worker per signer: a PostgreSQL session advisory lock keyed by chain and signer. A second
run for the same wallet finds the lock taken and exits at once. The lock only keeps workers
from getting in each other's way; what makes a lost lock harmless is the nonce, unique per
signer in ``batch_mints``: a worker that lost it can never record a second transaction for a
nonce.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mintq import db, errors


def lock_name(chain_id: int, signer: str) -> str:
    """The lock's name for ``signer`` (any case) on ``chain_id``."""
    return f"mintq:batch:{chain_id}:{signer.lower()}"


class PooledSession(errors.ConfigurationError):
    """The connection goes through a transaction pooler: the lock would land on a backend other
    clients share, two workers could both "hold" it, and it would outlive the run."""


def try_lock(conn: db.Conn, name: str) -> bool:
    """Take the session advisory lock ``name`` if it is free; False if another session holds
    it. Raises ``PooledSession`` (and takes nothing) when ``conn`` is not on its own backend."""
    row = db.one(conn, "try_signer_lock", {"lock_name": name, "backend_pid": conn.info.backend_pid})
    if row is not None and not row["own_session"]:
        raise PooledSession(
            "the batch worker must connect to PostgreSQL directly, not through a transaction pooler"
            " (set MINTQ_WORKER_DATABASE_URL / MINTQ_WORKER_DATABASE_SECRET_ARN to the database itself)"
        )
    return bool(row and row["locked"])


def release(conn: db.Conn, name: str) -> None:
    """Give the lock back, unless the connection is gone (its session took the lock with it)."""
    if not conn.broken and not conn.closed:
        db.one(conn, "release_signer_lock", {"lock_name": name})


def probe(conn: db.Conn, *, chain_id: int, signer: str) -> Mapping[str, Any]:
    """Everything an idle cycle needs, in one query (``cycle_probe``): ``settings`` (name →
    text), the queue's counters and ``oldest_pending``, and whether this signer ``has_inflight``
    batches, whether any request ``has_pending``, and whether the signer is ``refusing``."""
    return db.one(conn, "cycle_probe", {"chain_id": chain_id, "signer": signer}) or {}


def record_refusal(conn: db.Conn, *, chain_id: int, signer: str, code: str, reason: str) -> None:
    """Say why this signer's worker holds work back (the status endpoints read it); ``since``
    keeps the first cycle that refused with the same ``code``."""
    params = {"chain_id": chain_id, "signer": signer, "code": code, "reason": reason}
    db.execute(conn, "record_worker_refusal", params)


def clear_refusal(conn: db.Conn, *, chain_id: int, signer: str) -> None:
    """The signer's worker went through a cycle: it no longer refuses."""
    db.execute(conn, "clear_worker_refusal", {"chain_id": chain_id, "signer": signer})
