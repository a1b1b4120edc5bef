"""Keep the local stack's database with the chain it was made for.

The database records which requests were minted at which nonce of which signer; that record
is only true of one chain. anvil's chain lives in ``.local/anvil-state.json`` while the
database may live on a shared PostgreSQL server, so the two can part: ``make clean``, a fresh
clone or an anvil killed before it saved its state start a new chain at nonce 0 beside a
database that remembers nonce 37, and the worker (rightly) refuses to reuse a nonce forever.

So each database the stack uses carries the identity of its chain — the chain id and the hash
of block 0, which a fresh anvil draws anew (its genesis holds the start time) and an anvil
restarted from its state file keeps — as the database's own comment (``COMMENT ON DATABASE``:
no table, no migration, and it goes wherever the database goes). On start:

* same chain: the database is used as it is;
* another chain, or a database from before this record: the stack's own database is renamed
  aside (``<name>_<chain id>_<old genesis>_<unix time>``, nothing is dropped) and a fresh one
  takes its name; the stack does the same when the database records nonces its own chain has
  not reached (anvil reloaded an older state file after a hard stop: same genesis, shorter
  history) — ``nonce_refusal`` below;
* a database given with ``DATABASE_URL`` is never renamed: a mismatch is an error saying so.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from devstack import postgres

log = logging.getLogger("devstack")

_MARK = "mintq-devstack-chain"


class ChainMismatch(RuntimeError):
    """A database given to the stack belongs to another chain."""


@dataclass(frozen=True)
class ChainIdentity:
    chain_id: int
    genesis_hash: str

    def comment(self) -> str:
        return json.dumps({_MARK: {"chain_id": self.chain_id, "genesis_hash": self.genesis_hash}})

    @property
    def tag(self) -> str:
        return f"{self.chain_id}_{self.genesis_hash[2:10]}"

    def __str__(self) -> str:
        return f"chain {self.chain_id} (genesis {self.genesis_hash[:10]}…)"


def parse_comment(comment: str | None) -> ChainIdentity | None:
    """The identity a database comment records, or None if it records none."""
    try:
        mark = json.loads(comment or "")[_MARK]
        return ChainIdentity(chain_id=int(mark["chain_id"]), genesis_hash=str(mark["genesis_hash"]))
    except (ValueError, TypeError, KeyError):
        return None


def _recorded(conn: psycopg.Connection[Any], name: str) -> tuple[bool, ChainIdentity | None]:
    row = conn.execute(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", (name,)
    ).fetchone()
    return (row is not None, parse_comment(row[0]) if row is not None else None)


def _stamp(conn: psycopg.Connection[Any], name: str, identity: ChainIdentity) -> None:
    # A utility statement takes no bind parameters: the comment goes in as a quoted literal.
    conn.execute(
        sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), sql.Literal(identity.comment()))
    )


def bind_database(
    server: postgres.Server, name: str, identity: ChainIdentity, *, renew_because: str | None = None
) -> str:
    """The URL of a database made for ``identity``'s chain: ``name`` on ``server``, created or
    renewed as the module docstring says (``renew_because``: set it aside even though it records
    this chain, for that reason). For a ``DATABASE_URL`` server, ``name`` is ignored and the
    given database is checked (``ChainMismatch`` if it records another chain) and stamped."""
    if not server.can_create_databases:
        return _check_given(server.admin_url, identity)
    with postgres.admin_connection(server.admin_url) as conn:
        exists, recorded = _recorded(conn, name)
        if exists and recorded == identity and renew_because is None:
            return postgres.database_url(server.admin_url, name)
        if exists:
            # The time keeps names apart when one chain's database is set aside twice (a rollback).
            aside = f"{name}_{recorded.tag if recorded else 'unbound'}_{int(time.time())}"[:63]
            postgres.terminate_sessions(conn, name)
            conn.execute(
                sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(name), sql.Identifier(aside))
            )
            log.warning(
                "database %s %s: kept it as %s, and a fresh %s starts with this chain",
                name,
                renew_because or f"was made for {recorded or 'an unrecorded chain'}, not for this {identity}",
                aside,
                name,
            )
        with contextlib.suppress(psycopg.errors.DuplicateDatabase):
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        _stamp(conn, name, identity)
    return postgres.database_url(server.admin_url, name)


def _check_given(url: str, identity: ChainIdentity) -> str:
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        name = str(conn.execute("SELECT current_database()").fetchone()[0])  # type: ignore[index]
        _, recorded = _recorded(conn, name)
        if recorded is not None and recorded != identity:
            raise ChainMismatch(
                f"DATABASE_URL's database {name} was made for {recorded}, but the chain is {identity}:"
                " point DATABASE_URL at a fresh database, or at the chain it was made for"
            )
        if recorded is None:
            try:
                _stamp(conn, name, identity)
            except psycopg.errors.InsufficientPrivilege:
                log.warning("cannot record the chain on database %s (not its owner)", name)
    return url


def nonce_refusal(database_url: str, w3: Any, chain_id: int, signer: str) -> str | None:
    """Why the batch worker would refuse to send for ``signer`` (checksummed address), or None.

    The worker's own rule (``mintq.worker.dispatch.Dispatcher._next_nonce``, same named query): a nonce the
    database records as used on chain that the chain has not reached means the chain is not the
    one the database was made for, and sending would reuse a nonce.
    """
    from mintq import db

    with db.connect(database_url, application_name="mintq-devstack") as conn:
        row = db.one(conn, "highest_used_nonce", {"chain_id": chain_id, "signer": signer})
    used = row["nonce"] if row else None
    pending = int(w3.eth.get_transaction_count(signer, "pending"))
    if used is None or used < pending:
        return None
    return (
        f"the chain reports nonce {pending} for signer {signer} but the database records nonce {used}"
        " as mined: the worker refuses to reuse a nonce (was the chain reset?)"
    )
