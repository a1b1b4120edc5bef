"""payments rows written straight into a test's database, for tests that need a payment in a given
state without a facilitator or a chain to take it there."""

from __future__ import annotations

import os
from typing import Any

from tests.support import x402_env


def insert_payment(
    conn: Any, payer: str, status: str, *, settlement_tx_hash: str | None = None
) -> dict[str, Any]:
    """A v2 payment of ``payer`` in ``status`` on the Base Sepolia terms of ``x402_env``, with a
    fresh nonce and an empty payload: its ``id`` and ``queue_id``."""
    row: dict[str, Any] = conn.execute(
        "INSERT INTO payments (payer_address, auth_nonce, status, x402_version, network, asset, pay_to,"
        " amount, valid_before, signature_hash, payload, requirements, settlement_tx_hash)"
        " VALUES (%(payer)s, %(nonce)s, %(status)s, 2, %(network)s, %(asset)s, %(pay_to)s, %(amount)s, 0,"
        " %(signature_hash)s, '{}', '{}', %(settlement_tx_hash)s)"
        " RETURNING id, queue_id",
        {
            "payer": payer,
            "nonce": "0x" + os.urandom(32).hex(),
            "status": status,
            "network": x402_env.NETWORK,
            "asset": x402_env.USDC,
            "pay_to": x402_env.PAY_TO,
            "amount": x402_env.PRICE,
            "signature_hash": "ab" * 32,
            "settlement_tx_hash": settlement_tx_hash,
        },
    ).fetchone()
    return row
