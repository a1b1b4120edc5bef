"""``POST /mint``'s outcomes (``mintq.mint_outcomes``) as HTTP bodies and headers.

``api.answer_mint`` takes each outcome's status from ``api.OUTCOME_STATUS`` and its body
and headers from ``body_and_headers``:

- ``Accepted`` / ``Replayed`` (202): the seed's body (``success``, ``message``, ``queueId``,
  ``queuePosition``, ``payer``, ``estimatedWaitSeconds``, ``paymentType``) and, when paid,
  ``paymentStatus: "settled"`` and ``settlementTransaction``, with the settlement in the
  payer's version's header (``PAYMENT-RESPONSE`` or ``X-PAYMENT-RESPONSE``).
- ``PendingSettlement`` (202): the same fields, no position or wait yet, ``paymentStatus``
  ``settling`` or ``settlement_pending`` and the settlement (reason ``settlement_pending``)
  in the version's header.
- ``Refused`` (402): x402's own body, the v1 ``PaymentRequired`` (``x402Version``,
  ``accepts`` and, for a refusal v1 has a name for, ``error``) beside ``success: false`` and
  a ``message``; the challenge and the refusal in headers (``mintq.api_x402``).
"""

from __future__ import annotations

from typing import Any

from mintq import config, queue
from mintq.mint_outcomes import Accepted, MintOutcome, PendingSettlement, Refused
from mintq.statuses import PaymentStatus

#: ``message`` of a request put in line (the seed's text).
QUEUED_MESSAGE = "Mint request added to queue"


def seed_body(queued: queue.Enqueued) -> dict[str, Any]:
    """The seed project's 202 body for a request in line."""
    return {
        "success": True,
        "message": QUEUED_MESSAGE,
        "queueId": queued.queue_id,
        "queuePosition": queued.queue_position,
        "payer": queued.payer,
        "estimatedWaitSeconds": queued.estimated_wait_seconds,
        "paymentType": queued.payment_type,
    }


def pending_body(pending: PendingSettlement) -> dict[str, Any]:
    """The 202 body of a payment whose settlement is not final (no place in line yet)."""
    return {
        "success": True,
        "message": "Payment received; its settlement is still pending, and the mint is queued "
        "as soon as it confirms on chain. Follow it at /queue/item/" + pending.queue_id,
        "queueId": pending.queue_id,
        "queuePosition": None,
        "payer": pending.payer,
        "estimatedWaitSeconds": None,
        "paymentType": config.PaymentMode.X402.value,
        "paymentStatus": str(pending.payment_status),
        "settlementTransaction": pending.settlement.transaction,
    }


def body_and_headers(outcome: MintOutcome) -> tuple[dict[str, Any], dict[str, str]]:
    """``outcome``'s JSON body and its headers (none for a free request)."""
    if isinstance(outcome, Accepted) and outcome.settlement is None:
        return seed_body(outcome.queued), {}
    # Only x402 deployments get this far: the x402 package is loaded already.
    from mintq import api_x402

    if isinstance(outcome, Refused):
        body: dict[str, Any] = {"success": False, "message": outcome.message}
        body |= api_x402.challenge_body(outcome.challenge, outcome.reason)
        return body, api_x402.refusal_headers(outcome)
    if isinstance(outcome, PendingSettlement):
        return pending_body(outcome), api_x402.settlement_headers(outcome.settlement)
    settlement = outcome.settlement
    assert settlement is not None  # a free Accepted was answered above
    paid = {"paymentStatus": str(PaymentStatus.SETTLED), "settlementTransaction": settlement.transaction}
    return seed_body(outcome.queued) | paid, api_x402.settlement_headers(settlement)
