"""Who pays for a mint, and how: ``POST /mint``'s one domain call, and the payment records.

``free`` admits the payer named in the body. ``x402`` admits only the verified payer of a
settled payment (``authorization.from``), never a body field, and ties each payment to
exactly one mint. A payment's life (table ``payments``)::

    (none) --record--> settling --settle ok-------------------> settled  (+ mint queued, one txn)
                          |  \\--refused by the facilitator----> failed   (never charged: 402)
                          |  \\--facilitator never reached-----> (record deleted: 503, retry)
                          \\--timeout / unknown outcome--------> settlement_pending
    settlement_pending --worker sees it on chain--> settled (+ mint queued, one txn)
    settlement_pending --expired unused on chain--> failed

Transaction boundaries: (1) the record commits before the facilitator is asked to settle,
under an advisory lock that also re-checks supply (``mintq.payment_admission``), so a crash
after settlement can never lose a paid request; (2) ``settled`` and the queue row commit
together (``finish_settled``), guarded by the payment's state, so the request and the
worker can race to finish and only one wins. No transaction is open while the facilitator
is called. The request side of the machine is ``mintq.paid_mint``; the worker side is
``mintq.payment_reconciler``.
"""

from __future__ import annotations

import uuid
from typing import Any

from eth_hash.auto import keccak

from mintq import addresses, config, db, errors, queue
from mintq.mint_outcomes import Accepted, MintOutcome, Refused

#: A facilitator or chain call of a paid request with less time than this (s) is not started.
MIN_CALL_SECONDS = 0.5
#: ``Refused.message`` when no payment was sent: where the client finds what to pay.
PAYMENT_REQUIRED_MESSAGE = (
    "This request must be paid with x402: see the PAYMENT-REQUIRED header or the accepts field."
)


def accept_mint(
    conn: db.Conn,
    cfg: config.Config,
    *,
    body_payer: object,
    payment_header: str | None,
    idempotency_key: str | None,
    resource_url: str,
    deadline: float | None = None,
) -> MintOutcome:
    """Admit one mint request: free (the body names the payer) or paid with x402.

    ``body_payer`` is the body's ``payer`` (free mode; x402 mode ignores it);
    ``payment_header`` the ``PAYMENT-SIGNATURE`` (v2) or ``X-PAYMENT`` (v1) value, None if
    absent; ``resource_url`` the absolute URL the payment is for. ``deadline`` is a
    ``time.monotonic()`` instant by which the answer must be ready (the invocation's end
    less the time to send it); every facilitator and chain call of a paid request is cut
    to fit before it, and a call with no time left is not made.

    Returns an outcome (``mintq.mint_outcomes``); raises the ``mintq.errors`` that are not
    about the payment (``ValidationFailed``, ``InvalidAddress``, ``InvalidRequest``,
    ``IdempotencyConflict``, ``PayerLimitReached``, ``SupplyExhausted``, ``ApiClosed``,
    ``SupplyUnknown``, ``FacilitatorUnavailable``, ``DatabaseError``, ``ConfigurationError``).
    """
    if cfg.payment_mode is config.PaymentMode.FREE:
        if body_payer is None:
            raise errors.ValidationFailed("payer: Field required")
        payer = addresses.parse(body_payer, field="payer")
        key = queue.parse_idempotency_key(idempotency_key)
        return Accepted(
            queued=queue.enqueue(conn, payer=payer, payment_type=cfg.payment_mode.value, idempotency_key=key)
        )
    if cfg.x402 is None:
        raise errors.ConfigurationError("x402 mode without x402 settings")
    # The payment itself is the idempotency key here; a client's key is validated, not needed.
    queue.parse_idempotency_key(idempotency_key)
    # Imported on first use: free mode never loads the x402 package at cold start.
    from mintq import x402_challenge, x402_payment
    from mintq.paid_mint import PaidMint

    challenge = x402_challenge.challenge(cfg.x402, resource_url)
    if payment_header is None:
        refuse_if_closed(conn)  # before any challenge: nobody is invited to pay
        return Refused(challenge=challenge, reason=None, message=PAYMENT_REQUIRED_MESSAGE)
    try:
        payment = x402_payment.decode(payment_header)  # its shape only: who pays, which nonce
    except errors.PaymentInvalid as exc:
        return Refused(challenge=challenge, reason=exc.reason, message=exc.message)
    return PaidMint(conn, cfg, challenge, payment, deadline).run()


def refuse_if_closed(conn: db.Conn) -> None:
    """Raise ``errors.ApiClosed`` while an operator has closed ``POST /mint`` (``mintq pause --close-api``)."""
    closed = db.one(conn, "api_closed")
    if closed is not None and closed["closed"]:
        raise errors.ApiClosed()


def payment_key(network: str, asset: str, payer: str, nonce: str) -> str:
    """The mint's deterministic id (0x-hex keccak-256), derived from the payment: the chain
    id of the CAIP-2 ``network`` (``eip155:<id>``), the asset and payer addresses (0x hex)
    and the EIP-3009 ``nonce`` (32 bytes of 0x hex)."""
    chain_id = int(network.split(":", 1)[1])
    raw = (
        chain_id.to_bytes(32, "big")
        + bytes.fromhex(asset[2:])
        + bytes.fromhex(payer[2:])
        + bytes.fromhex(nonce[2:])
    )
    return "0x" + keccak(raw).hex()


def finish_settled(conn: db.Conn, payment_id: uuid.UUID, tx_hash: str | None) -> queue.Enqueued | None:
    """Mark a payment settled (``tx_hash``: the transfer's 0x hash, None if unknown) and queue
    its mint, in one transaction; None if the payment was not ``settling`` or
    ``settlement_pending`` any more (the request or the worker finished it first)."""
    with db.transaction(conn):
        row = db.one(conn, "mark_payment_settled", {"id": payment_id, "tx_hash": tx_hash})
        if row is None:
            return None
        return queue.insert_paid(
            conn,
            queue_id=row["queue_id"],
            payer=row["payer_address"],
            payment_id=row["id"],
            payment_tx_hash=row["settlement_tx_hash"],
            tx_hash_bytes32=payment_key(
                row["network"], row["asset"], row["payer_address"], row["auth_nonce"]
            ),
        )


def refunds_due(conn: db.Conn, *, limit: int = 100) -> list[dict[str, Any]]:
    """Operators: paid requests whose mint failed for good (amount, payer, reason)."""
    return db.rows(conn, "list_refunds_due", {"limit": limit})
