"""What the dispatcher and tracker read about batches besides the batches themselves: the
recipients of one, supply promised to those in flight, the nonce floor, recent gas per mint.
Each raises ``errors.DatabaseError`` when PostgreSQL fails."""

from __future__ import annotations

import uuid

from mintq import db


def recipients(conn: db.Conn, batch_id: uuid.UUID) -> list[str]:
    """A batch's recipients in the order they were sent."""
    return [r["payer_address"] for r in db.rows(conn, "batch_recipients", {"batch_id": batch_id})]


def inflight_mints(conn: db.Conn, *, chain_id: int, token: str) -> int:
    """Mints every signer's unfinished batches of ``token`` will take when mined."""
    row = db.one(conn, "inflight_mints", {"chain_id": chain_id, "token": token})
    return int(row["n"]) if row else 0


def highest_used_nonce(conn: db.Conn, *, chain_id: int, signer: str) -> int | None:
    """The highest nonce the signer's finished (mined) batches consumed."""
    row = db.one(conn, "highest_used_nonce", {"chain_id": chain_id, "signer": signer})
    return row["nonce"] if row else None


def recent_gas_per_mint(conn: db.Conn, *, chain_id: int, token: str) -> float | None:
    """Gas per mint of the token's recent confirmed batches, or None before the first."""
    row = db.one(conn, "recent_gas_per_mint", {"chain_id": chain_id, "token": token})
    return float(row["per_mint"]) if row and row["per_mint"] else None
