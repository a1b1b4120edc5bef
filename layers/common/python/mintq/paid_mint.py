"""One paid ``POST /mint``, request side: the payment's state machine (``mintq.payments``)
walked from a decoded payment to a typed outcome (``mintq.mint_outcomes``). ``PaidMint.run``:

1. A **known payment** (payer and EIP-3009 nonce) gets its first answer (``_replay``) whatever
   the clock, price, supply or facilitator say now: a refusal would invite a payer who was
   charged to pay again. A twin settling it right now is waited for, ``replay_wait_seconds`` at most.
2. A closed API refuses new payments (``ApiClosed``); the terms are checked without a chain.
3. **Verify** with the facilitator (``Refused`` if invalid, unless a twin settled it meanwhile).
4. **Record**: the request's one admission check and the durable record, one transaction under
   the admission lock (``payment_admission``), committed before anyone is charged.
5. **Settle** with the facilitator, no transaction open, and record its answer (``Accepted``,
   ``PendingSettlement``, ``Refused``; never sent: the record is forgotten, 503, retry).

Each outcome is filled in for the payment by ``mintq.paid_mint_outcomes``.

Every facilitator and chain call is cut to the request's deadline; one with less than
``payments.MIN_CALL_SECONDS`` left is not started (503: nothing was charged, retry).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any

from x402.schemas import PaymentRequirements
from x402.schemas.v1 import PaymentRequirementsV1

from mintq import config, db, errors, payment_admission, payments, x402_facilitator, x402_payment
from mintq import x402_reasons as reasons
from mintq.mint_outcomes import Accepted, MintOutcome, Replayed
from mintq.paid_mint_outcomes import PaymentOutcomes
from mintq.statuses import PaymentStatus
from mintq.x402_challenge import Challenge

#: How often (s) a replay waiting on a twin that is settling the same payment looks again.
REPLAY_POLL_SECONDS = 0.1
#: Seconds a replay waits for a settling twin beyond the twin's own settle call
#: (``settle_timeout_seconds``): the twin's time to record the facilitator's answer.
REPLAY_WAIT_MARGIN_SECONDS = 2.0


def replay_wait_seconds(terms: config.X402Config) -> float:
    """The one bound on a replay's wait for a twin that is settling the same payment (s):
    as long as the twin's settle call may take, plus ``REPLAY_WAIT_MARGIN_SECONDS``. The
    request's own deadline cuts it shorter; then the replay answers ``settling``."""
    return terms.settle_timeout_seconds + REPLAY_WAIT_MARGIN_SECONDS


class PaidMint:
    """One paid ``POST /mint`` (the module's docstring): ``run()`` returns its outcome.

    ``challenge`` is what the request asks for, ``payment`` the decoded header; ``deadline``
    is a ``time.monotonic()`` instant by which the answer must be ready (None: each call's
    own timeout only). Raises the ``mintq.errors`` that are not about the payment:
    ``ApiClosed``, ``PayerLimitReached``, ``SupplyExhausted``, ``SupplyUnknown``,
    ``FacilitatorUnavailable``, ``DatabaseError``, ``ConfigurationError``."""

    def __init__(
        self,
        conn: db.Conn,
        cfg: config.Config,
        challenge: Challenge,
        payment: x402_payment.Payment,
        deadline: float | None = None,
    ) -> None:
        if cfg.x402 is None:
            raise errors.ConfigurationError("x402 mode without x402 settings")
        self.conn = conn
        self.cfg = cfg
        self.terms: config.X402Config = cfg.x402
        self.challenge = challenge
        self.payment = payment
        self.deadline = deadline
        self.signature_hash = hashlib.sha256(payment.exact.signature.lower().encode()).hexdigest()
        self.outcomes = PaymentOutcomes(conn, cfg.x402, challenge, payment)

    def run(self) -> MintOutcome:
        """Walk the payment from its header to its outcome (the module's steps 1-5)."""
        existing = self._find()
        if existing is not None:
            return self._replay(existing)
        payments.refuse_if_closed(self.conn)  # closed to new payments; known ones were answered above
        try:
            x402_payment.check_terms(self.payment, self.challenge)
        except errors.PaymentInvalid as exc:
            return self.outcomes.refused(exc.reason, exc.message)

        requirements = self.payment.requirements_for(self.challenge)
        facilitator = x402_facilitator.facilitator(self.terms)
        try:
            verified = facilitator.verify(self.payment, requirements, timeout=self._time_for("verify"))
        except x402_facilitator.FacilitatorUnreachable as exc:
            raise errors.FacilitatorUnavailable(str(exc)) from exc
        if not verified.is_valid:
            # A twin may have settled this very payment since we looked: answer as it did.
            twin = self._find()
            if twin is not None:
                return self._replay(twin)
            return self.outcomes.refused(
                verified.invalid_reason or reasons.UNEXPECTED_VERIFY, verified.invalid_message
            )
        if verified.payer and verified.payer.lower() != self.payment.payer.lower():
            return self.outcomes.refused(reasons.INVALID_PAYLOAD, "the facilitator names another payer")

        record = payment_admission.admit_and_record(
            self.conn,
            self.cfg,
            self.challenge,
            self.payment,
            signature_hash=self.signature_hash,
            deadline=self.deadline,
        )
        if record is None:  # a twin recorded it first
            return self._as_recorded()
        return self._settle(facilitator, requirements, record["id"], record["queue_id"])

    def _settle(
        self,
        facilitator: x402_facilitator.Facilitator,
        requirements: PaymentRequirements | PaymentRequirementsV1,
        payment_id: uuid.UUID,
        queue_id: uuid.UUID,
    ) -> MintOutcome:
        """Ask the facilitator to settle the recorded payment and record what it answered."""
        try:
            settle_time = self._time_for("settle")
            settled = facilitator.settle(self.payment, requirements, timeout=settle_time)
        except (x402_facilitator.FacilitatorUnreachable, errors.FacilitatorUnavailable) as exc:
            # Never sent (or no time left to send it): nothing can have been charged.
            forgotten = db.one(self.conn, "forget_payment", {"id": payment_id})
            if forgotten is None or not forgotten["forgotten"]:
                return self._as_recorded()  # the worker took it past its lease: its state answers
            raise errors.FacilitatorUnavailable(str(exc)) from exc
        except x402_facilitator.FacilitatorAmbiguous as exc:
            return self._settlement_pending(payment_id, queue_id, None, str(exc))
        if settled.success:
            tx = settled.transaction or None
            queued = payments.finish_settled(self.conn, payment_id, tx)
            if queued is None:  # the worker finished it meanwhile
                queued = self.outcomes.queued(queue_id)
            return Accepted(queued=queued, settlement=self.outcomes.settlement(True, tx))
        if settled.error_reason == reasons.SETTLEMENT_PENDING:
            tx = settled.transaction or None
            return self._settlement_pending(payment_id, queue_id, tx, settled.error_message)
        reason = settled.error_reason or reasons.UNEXPECTED_SETTLE
        if db.one(self.conn, "mark_payment_failed", {"id": payment_id, "reason": reason}) is None:
            return self._as_recorded()  # the worker finished it first: its state is the answer
        return self.outcomes.refused(
            reason, settled.error_message, settlement=self.outcomes.response(False, None, reason)
        )

    def _settlement_pending(
        self, payment_id: uuid.UUID, queue_id: uuid.UUID, tx: str | None, why: str | None
    ) -> MintOutcome:
        """It may have been broadcast: from now on the payment reconciler looks for it on chain."""
        if not db.execute(
            self.conn, "mark_payment_pending", {"id": payment_id, "tx_hash": tx, "reason": why}
        ):
            return self._as_recorded()  # the worker finished it first: its state is the answer
        return self.outcomes.pending(queue_id, tx, PaymentStatus.SETTLEMENT_PENDING, replayed=False)

    # --- steps ----------------------------------------------------------------------

    def _time_for(self, step: str) -> float | None:
        """Seconds ``step`` may take (None: only its own timeout); a step that cannot get
        ``payments.MIN_CALL_SECONDS`` is not started: 503, and the payer retries the same payment."""
        left = None if self.deadline is None else self.deadline - time.monotonic()
        if left is not None and left < payments.MIN_CALL_SECONDS:
            raise errors.FacilitatorUnavailable(f"no time left for {step} ({left:.2f} s)")
        return left

    def _as_recorded(self) -> MintOutcome:
        """The payment's answer by its durable state, when a move of ours found it moved on."""
        recorded = self._find()
        if recorded is None:
            raise errors.InvalidTransition("a payment record vanished")
        return self._replay(recorded)

    def _find(self) -> dict[str, Any] | None:
        return db.one(self.conn, "find_payment", {"payer": self.payment.payer, "nonce": self.payment.nonce})

    def _replay(self, existing: dict[str, Any]) -> MintOutcome:
        """The same payment again: the first answer, never a second settlement or mint."""
        if existing["signature_hash"] != self.signature_hash:
            return self.outcomes.refused(reasons.NONCE_USED, "this authorization nonce was already used")
        existing = self._await_twin(existing)
        status = PaymentStatus(existing["status"])
        queue_id, tx = existing["queue_id"], existing["settlement_tx_hash"]
        if status is PaymentStatus.SETTLED:
            return Replayed(
                queued=self.outcomes.queued(queue_id), settlement=self.outcomes.settlement(True, tx)
            )
        if status is PaymentStatus.FAILED:
            reason = existing["error_reason"] or reasons.UNEXPECTED_SETTLE
            return self.outcomes.refused(reason, settlement=self.outcomes.response(False, None, reason))
        return self.outcomes.pending(queue_id, tx, status, replayed=True)

    def _await_twin(self, existing: dict[str, Any]) -> dict[str, Any]:
        """The payment's row once no twin holds its settlement lease, or as it stands when
        ``replay_wait_seconds`` (cut to the request's deadline) have passed."""
        until = time.monotonic() + replay_wait_seconds(self.terms)
        if self.deadline is not None:
            until = min(until, self.deadline)
        while (
            existing["status"] == PaymentStatus.SETTLING and existing["leased"] and time.monotonic() < until
        ):
            time.sleep(REPLAY_POLL_SECONDS)  # a twin request is settling it right now
            existing = self._find() or existing
        return existing
