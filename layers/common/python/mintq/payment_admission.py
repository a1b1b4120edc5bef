"""A paid request's one admission check, and the durable payment record it admits.

Both happen in one transaction under a PostgreSQL advisory lock (``lock_payment_admission``),
after the facilitator verified the payment and before it is asked to settle: the numbers
are read now (``supply.admission``: the payer's open requests and cap, the mints free at
one block), the request is refused (``PayerLimitReached``, then ``SupplyExhausted``) or its
``payments`` row commits in state ``settling`` with a settlement lease. Concurrent payers
therefore cannot all be admitted for the last mint, nor for mints the worker took meanwhile,
and a crash after settlement can never lose a paid request.
"""

from __future__ import annotations

import time
from typing import Any

from psycopg.types.json import Jsonb

from mintq import config, db, errors, supply
from mintq.payments import MIN_CALL_SECONDS
from mintq.x402_challenge import Challenge
from mintq.x402_payment import Payment

#: Seconds the supply read (the chain's ``remainingMints()`` and receipts) may take at most.
SUPPLY_READ_TIMEOUT_SECONDS = 5.0


def admit_and_record(
    conn: db.Conn,
    cfg: config.Config,
    challenge: Challenge,
    payment: Payment,
    *,
    signature_hash: str,
    deadline: float | None,
) -> dict[str, Any] | None:
    """Admit ``payment`` and commit its record; the record's ``{"id", "queue_id"}`` (UUIDs),
    or None when a twin request recorded the same payment first.

    ``signature_hash`` is the hex SHA-256 of the lowercased signature; ``deadline`` a
    ``time.monotonic()`` instant (None: no bound) that cuts the wait for the lock and the
    chain read. Raises ``PayerLimitReached``, ``SupplyExhausted``, ``SupplyUnknown`` (the
    chain cannot be read in time, or too little time is left to try), ``DatabaseError``
    (a lock wait past the deadline included) and ``ConfigurationError``."""
    if cfg.x402 is None:
        raise errors.ConfigurationError("x402 mode without x402 settings")
    terms = cfg.x402
    auth = payment.exact.authorization
    requirements = payment.requirements_for(challenge)
    with db.transaction(conn):
        numbers = _locked_admission(conn, cfg, payment.payer, deadline)
        _admit(numbers, payment.payer)
        return db.one(
            conn,
            "record_payment",
            {
                "payer": payment.payer,
                "nonce": payment.nonce,
                "x402_version": payment.version,
                "network": terms.network,
                "asset": terms.asset,
                "pay_to": terms.pay_to,
                "amount": int(auth.value),
                "valid_before": int(auth.valid_before),
                "signature_hash": signature_hash,
                "payload": Jsonb(payment.envelope.model_dump(by_alias=True, exclude_none=True)),
                "requirements": Jsonb(requirements.model_dump(by_alias=True, exclude_none=True)),
                "from_block": numbers.head,
                "lease_seconds": terms.settle_lease_seconds,
            },
        )


def _time_for_supply(deadline: float | None) -> float | None:
    left = None if deadline is None else deadline - time.monotonic()
    if left is not None and left < MIN_CALL_SECONDS:
        raise errors.SupplyUnknown(f"no time left to read the supply ({left:.2f} s)")
    return left


def _locked_admission(
    conn: db.Conn, cfg: config.Config, payer: str, deadline: float | None
) -> supply.Admission:
    """The admission's numbers, read under the admission lock (in the caller's transaction)."""
    left = _time_for_supply(deadline)
    if left is not None:
        # Others hold the admission lock for at most their own chain read: wait no longer
        # than this request can afford.
        db.one(conn, "set_lock_timeout", {"ms": str(max(int(left * 1000), 1))})
    db.one(conn, "lock_payment_admission")
    left = _time_for_supply(deadline)  # again: waiting for the lock took some of it
    timeout = SUPPLY_READ_TIMEOUT_SECONDS if left is None else min(left, SUPPLY_READ_TIMEOUT_SECONDS)
    return supply.admission(conn, cfg, payer, timeout=timeout)


def _admit(numbers: supply.Admission, payer: str) -> None:
    """Refuse before anyone is charged: the payer's cap, then the supply left for them."""
    if numbers.payer_open >= numbers.max_pending:
        raise errors.PayerLimitReached(
            f"{payer} already has {numbers.max_pending} open requests; wait for them to be minted"
        )
    if numbers.free <= 0:
        raise errors.SupplyExhausted("no mints remain for new requests; your payment was not settled")
