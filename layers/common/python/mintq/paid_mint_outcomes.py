"""The outcomes one paid ``POST /mint`` answers with (``mintq.mint_outcomes``), built for its
payment: ``mintq.paid_mint`` decides which, ``PaymentOutcomes`` fills each in (the payer, the
network, the price, the request as it stands in the queue)."""

from __future__ import annotations

import uuid

from x402.schemas import SettleResponse

from mintq import config, db, queue, x402_payment
from mintq import x402_reasons as reasons
from mintq.mint_outcomes import PendingSettlement, Refused, Settlement, Unsettled
from mintq.x402_challenge import Challenge


class PaymentOutcomes:
    """Outcomes for ``payment``, paid under ``terms`` in answer to ``challenge``."""

    def __init__(
        self, conn: db.Conn, terms: config.X402Config, challenge: Challenge, payment: x402_payment.Payment
    ) -> None:
        self.conn = conn
        self.terms = terms
        self.challenge = challenge
        self.payment = payment

    def response(self, success: bool, tx: str | None, reason: str | None = None) -> SettleResponse:
        return SettleResponse(
            success=success,
            error_reason=reason,
            payer=self.payment.payer,
            transaction=tx or "",
            network=self.payment.envelope.get_network(),
            amount=str(self.terms.price) if success else None,
        )

    def settlement(self, success: bool, tx: str | None, reason: str | None = None) -> Settlement:
        return Settlement(x402_version=self.payment.version, response=self.response(success, tx, reason))

    def queued(self, queue_id: uuid.UUID) -> queue.Enqueued:
        """A settled payment's request as it stands (position 0 once minted and archived)."""
        queued = queue.paid_request(self.conn, queue_id, self.payment.payer)
        if queued is None:  # archived after minting: the seed body without a live position
            queued = queue.Enqueued(
                queue_id=str(queue_id),
                queue_position=0,
                payer=self.payment.payer,
                estimated_wait_seconds=0,
                payment_type=config.PaymentMode.X402.value,
            )
        return queued

    def pending(
        self, queue_id: uuid.UUID, tx: str | None, status: Unsettled, *, replayed: bool
    ) -> PendingSettlement:
        return PendingSettlement(
            queue_id=str(queue_id),
            payer=self.payment.payer,
            payment_status=status,
            settlement=self.settlement(False, tx, reasons.SETTLEMENT_PENDING),
            replayed=replayed,
        )

    def refused(
        self, reason: str, message: str | None = None, *, settlement: SettleResponse | None = None
    ) -> Refused:
        return Refused(
            challenge=self.challenge,
            reason=reason,
            message=message or f"payment refused: {reason}",
            settlement=settlement,
        )
