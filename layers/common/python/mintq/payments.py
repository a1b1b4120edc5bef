"""Who pays for a mint, and how: ``POST /mint``'s one domain call.

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
under an advisory lock that also re-checks supply, so a crash after settlement can never
lose a paid request; (2) ``settled`` and the queue row commit together, guarded by the
payment's state, so the request and the worker can race to finish and only one wins.
No transaction is open while the facilitator is called.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from eth_hash.auto import keccak
from psycopg.types.json import Jsonb

from mintq import addresses, config, db, errors, queue, supply
from mintq import x402_reasons as reasons

if TYPE_CHECKING:  # imported on first use: free mode never pays for them at cold start
    from x402.schemas import PaymentRequirements, PaymentRequirementsV1, SettleResponse

    from mintq.x402 import Challenge, Facilitator, Payment


#: How often a request waiting on a twin that is settling the same payment looks again.
REPLAY_POLL_SECONDS = 0.1
#: Time (s) kept back from the invocation's end to write the outcome and send the answer.
ANSWER_RESERVE_SECONDS = 1.0
#: A facilitator or chain call with less time than this (s) is not started.
MIN_CALL_SECONDS = 0.5


@dataclass(frozen=True, kw_only=True)
class Accepted:
    """``POST /mint``'s answer: the seed's body (plus payment fields when paid) and headers."""

    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    queue_id: str
    queue_position: int | None


def seed_body(queued: queue.Enqueued) -> dict[str, Any]:
    return {
        "success": True,
        "message": "Mint request added to queue",
        "queueId": queued.queue_id,
        "queuePosition": queued.queue_position,
        "payer": queued.payer,
        "estimatedWaitSeconds": queued.estimated_wait_seconds,
        "paymentType": queued.payment_type,
    }


def accept_mint(
    conn: db.Conn,
    cfg: config.Config,
    *,
    body_payer: object,
    headers: Mapping[str, str],
    idempotency_key: str | None,
    resource_url: str,
    deadline: float | None = None,
) -> Accepted:
    """Admit one mint request: free (the body names the payer) or paid with x402.

    ``deadline`` is a ``time.monotonic()`` instant by which the answer must be ready (the
    invocation's end less the time to send it); every facilitator and chain call of a paid
    request is cut to fit before it, and a call with no time left is not made."""
    if cfg.payment_mode is config.PaymentMode.FREE:
        if body_payer is None:
            raise errors.ValidationFailed("payer: Field required")
        payer = addresses.parse(body_payer, field="payer")
        key = queue.parse_idempotency_key(idempotency_key)
        queued = queue.enqueue(conn, payer=payer, payment_type=cfg.payment_mode.value, idempotency_key=key)
        return Accepted(
            body=seed_body(queued), queue_id=queued.queue_id, queue_position=queued.queue_position
        )
    if cfg.x402 is None:
        raise errors.ConfigurationError("x402 mode without x402 settings")
    # The payment itself is the idempotency key here; a client's key is validated, not needed.
    queue.parse_idempotency_key(idempotency_key)
    from mintq import x402

    challenge = x402.challenge(cfg.x402, resource_url)
    value = x402.payment_header(headers)
    if value is None:
        _refuse_if_closed(conn)  # before any challenge: nobody is invited to pay
        raise errors.PaymentRequired(challenge=challenge)
    payment = x402.decode(value, challenge)  # its shape only: who pays, which nonce
    return _PaidMint(conn, cfg, cfg.x402, challenge, payment, deadline).run()


def _refuse_if_closed(conn: db.Conn) -> None:
    closed = db.one(conn, "api_closed")
    if closed is not None and closed["closed"]:
        raise errors.ApiClosed()


# --- x402 -----------------------------------------------------------------------------


def payment_key(network: str, asset: str, payer: str, nonce: str) -> str:
    """The mint's deterministic id, derived from the payment (chain, asset, payer, nonce)."""
    chain_id = int(network.split(":", 1)[1])
    raw = (
        chain_id.to_bytes(32, "big")
        + bytes.fromhex(asset[2:])
        + bytes.fromhex(payer[2:])
        + bytes.fromhex(nonce[2:])
    )
    return "0x" + keccak(raw).hex()


def finish_settled(conn: db.Conn, payment_id: uuid.UUID, tx_hash: str | None) -> queue.Enqueued | None:
    """Mark a payment settled and queue its mint, in one transaction; None if already done."""
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


class _PaidMint:
    """One paid ``POST /mint``: the state machine in the module docstring, request side."""

    def __init__(
        self,
        conn: db.Conn,
        cfg: config.Config,
        terms: config.X402Config,
        challenge: Challenge,
        payment: Payment,
        deadline: float | None = None,
    ) -> None:
        self.conn = conn
        self.cfg = cfg
        self.terms = terms
        self.challenge = challenge
        self.payment = payment
        self.deadline = deadline
        self.signature_hash = hashlib.sha256(payment.exact.signature.lower().encode()).hexdigest()

    def run(self) -> Accepted:
        from mintq import x402

        payment = self.payment

        # A known payment gets its first answer whatever the clock, the price, the supply or
        # the facilitator say now: a 402 here would invite a payer who was charged to pay again.
        existing = self._find()
        if existing is not None:
            return self._replay(existing)
        _refuse_if_closed(self.conn)  # closed to new payments; known ones were answered above
        x402.check_terms(payment, self.challenge)
        self._admit(self._admission(locked=False))  # refuse early, before the facilitator's work

        requirements = payment.requirements_for(self.challenge)
        facilitator = x402.facilitator(self.terms)
        try:
            verified = facilitator.verify(payment, requirements, timeout=self._time_for("verify"))
        except x402.FacilitatorUnreachable as exc:
            raise errors.FacilitatorUnavailable(str(exc)) from exc
        if not verified.is_valid:
            # A twin may have settled this very payment since we looked: answer as it did.
            twin = self._find()
            if twin is not None:
                return self._replay(twin)
            raise errors.PaymentInvalid(
                verified.invalid_reason or reasons.UNEXPECTED_VERIFY,
                verified.invalid_message,
                challenge=self.challenge,
            )
        if verified.payer and verified.payer.lower() != payment.payer.lower():
            raise errors.PaymentInvalid(
                reasons.INVALID_PAYLOAD, "the facilitator names another payer", challenge=self.challenge
            )

        record = self._record()
        if record is None:  # a twin recorded it first
            twin = self._find()
            if twin is None:
                raise errors.InvalidTransition("a payment record vanished")
            return self._replay(twin)
        return self._settle(facilitator, requirements, record["id"], record["queue_id"])

    def _settle(
        self,
        facilitator: Facilitator,
        requirements: PaymentRequirements | PaymentRequirementsV1,
        payment_id: uuid.UUID,
        queue_id: uuid.UUID,
    ) -> Accepted:
        """Ask the facilitator to settle the recorded payment and record what it answered."""
        from mintq import x402

        payment = self.payment
        try:
            settle_time = self._time_for("settle")
            settled = facilitator.settle(payment, requirements, timeout=settle_time)
        except (x402.FacilitatorUnreachable, errors.FacilitatorUnavailable) as exc:
            # Never sent (or no time left to send it): nothing can have been charged.
            db.execute(self.conn, "forget_payment", {"id": payment_id})
            raise errors.FacilitatorUnavailable(str(exc)) from exc
        except x402.FacilitatorAmbiguous as exc:
            db.execute(
                self.conn, "mark_payment_pending", {"id": payment_id, "tx_hash": None, "reason": str(exc)}
            )
            return self._pending(queue_id, None)
        if settled.success:
            tx = settled.transaction or None
            queued = finish_settled(self.conn, payment_id, tx)
            if queued is None:  # the worker finished it meanwhile
                return self._settled(queue_id, tx)
            return self._answer_settled(queued, tx)
        if settled.error_reason == reasons.SETTLEMENT_PENDING:
            tx = settled.transaction or None
            db.execute(
                self.conn,
                "mark_payment_pending",
                {"id": payment_id, "tx_hash": tx, "reason": settled.error_message},
            )
            return self._pending(queue_id, tx)
        reason = settled.error_reason or reasons.UNEXPECTED_SETTLE
        db.execute(self.conn, "mark_payment_failed", {"id": payment_id, "reason": reason})
        raise errors.PaymentInvalid(
            reason,
            settled.error_message,
            challenge=self.challenge,
            settlement=self._response(False, None, reason),
        )

    # --- steps ----------------------------------------------------------------------

    def _time_left(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def _time_for(self, step: str) -> float | None:
        """Seconds ``step`` may take (None: only its own timeout); a step that cannot get
        ``MIN_CALL_SECONDS`` is not started: 503, and the payer retries the same payment."""
        left = self._time_left()
        if left is not None and left < MIN_CALL_SECONDS:
            raise errors.FacilitatorUnavailable(f"no time left for {step} ({left:.2f} s)")
        return left

    def _find(self) -> dict[str, Any] | None:
        return db.one(self.conn, "find_payment", {"payer": self.payment.payer, "nonce": self.payment.nonce})

    def _admission(self, *, locked: bool) -> supply.Admission:
        left = self._time_left()
        if left is not None and left < MIN_CALL_SECONDS:
            raise errors.SupplyUnknown(f"no time left to read the supply ({left:.2f} s)")
        if locked and left is not None:
            # Others hold the admission lock for at most their own chain read: wait no longer
            # than this request can afford.
            db.one(self.conn, "set_lock_timeout", {"ms": str(max(int(left * 1000), 1))})
        if locked:
            db.one(self.conn, "lock_payment_admission")
        return supply.admission(self.conn, self.cfg, self.payment.payer, timeout=min(left or 5.0, 5.0))

    def _admit(self, numbers: supply.Admission) -> None:
        """Refuse before anyone is charged: the payer's cap, then the supply left for them."""
        if numbers.payer_open >= numbers.max_pending:
            raise errors.PayerLimitReached(
                f"{self.payment.payer} already has {numbers.max_pending} open requests; "
                "wait for them to be minted"
            )
        if numbers.free <= 0:
            raise errors.SupplyExhausted("no mints remain for new requests; your payment was not settled")

    def _record(self) -> dict[str, Any] | None:
        """Commit the durable record. The decision to charge is made here, under the admission
        lock, from supply and commitments read now (not before verify): concurrent payers
        cannot all be admitted for the last mint, nor for mints the worker took meanwhile."""
        auth = self.payment.exact.authorization
        requirements = self.payment.requirements_for(self.challenge)
        with db.transaction(self.conn):
            numbers = self._admission(locked=True)
            self._admit(numbers)
            return db.one(
                self.conn,
                "record_payment",
                {
                    "payer": self.payment.payer,
                    "nonce": self.payment.nonce,
                    "x402_version": self.payment.version,
                    "network": self.terms.network,
                    "asset": self.terms.asset,
                    "pay_to": self.terms.pay_to,
                    "amount": int(auth.value),
                    "valid_before": int(auth.valid_before),
                    "signature_hash": self.signature_hash,
                    "payload": Jsonb(self.payment.envelope.model_dump(by_alias=True, exclude_none=True)),
                    "requirements": Jsonb(requirements.model_dump(by_alias=True, exclude_none=True)),
                    "from_block": numbers.head,
                    "lease_seconds": self.terms.settle_lease_seconds,
                },
            )

    def _replay(self, existing: dict[str, Any]) -> Accepted:
        """The same payment again: the first answer, never a second settlement or mint."""

        if existing["signature_hash"] != self.signature_hash:
            raise errors.PaymentInvalid(
                reasons.NONCE_USED, "this authorization nonce was already used", challenge=self.challenge
            )
        deadline = time.monotonic() + self.terms.settle_timeout_seconds + 2
        if self.deadline is not None:
            deadline = min(deadline, self.deadline)
        while existing["status"] == "settling" and existing["leased"] and time.monotonic() < deadline:
            time.sleep(REPLAY_POLL_SECONDS)  # a twin request is settling it right now
            existing = self._find() or existing
        status, queue_id, tx = existing["status"], existing["queue_id"], existing["settlement_tx_hash"]
        if status == "settled":
            return self._settled(queue_id, tx)
        if status == "failed":
            reason = existing["error_reason"] or reasons.UNEXPECTED_SETTLE
            raise errors.PaymentInvalid(
                reason, challenge=self.challenge, settlement=self._response(False, None, reason)
            )
        return self._pending(queue_id, tx, status=status)

    # --- answers --------------------------------------------------------------------

    def _response(self, success: bool, tx: str | None, reason: str | None = None) -> SettleResponse:
        from x402.schemas import SettleResponse

        return SettleResponse(
            success=success,
            error_reason=reason,
            payer=self.payment.payer,
            transaction=tx or "",
            network=self.payment.envelope.get_network(),
            amount=str(self.terms.price) if success else None,
        )

    def _settled(self, queue_id: uuid.UUID, tx: str | None) -> Accepted:
        queued = queue.paid_request(self.conn, queue_id, self.payment.payer)
        if queued is None:  # archived after minting: the seed body without a live position
            queued = queue.Enqueued(
                queue_id=str(queue_id),
                queue_position=0,
                payer=self.payment.payer,
                estimated_wait_seconds=0,
                payment_type=config.PaymentMode.X402.value,
            )
        return self._answer_settled(queued, tx)

    def _answer_settled(self, queued: queue.Enqueued, tx: str | None) -> Accepted:
        from mintq import x402

        body = seed_body(queued) | {"paymentStatus": "settled", "settlementTransaction": tx}
        return Accepted(
            body=body,
            headers=x402.settlement_header(self.payment, self._response(True, tx)),
            queue_id=queued.queue_id,
            queue_position=queued.queue_position,
        )

    def _pending(
        self, queue_id: uuid.UUID, tx: str | None, *, status: str = "settlement_pending"
    ) -> Accepted:
        from mintq import x402

        body = {
            "success": True,
            "message": "Payment received; its settlement is still pending, and the mint is queued "
            "as soon as it confirms on chain. Follow it at /queue/item/" + str(queue_id),
            "queueId": str(queue_id),
            "queuePosition": None,
            "payer": self.payment.payer,
            "estimatedWaitSeconds": None,
            "paymentType": config.PaymentMode.X402.value,
            "paymentStatus": status,
            "settlementTransaction": tx,
        }
        return Accepted(
            body=body,
            headers=x402.settlement_header(
                self.payment, self._response(False, tx, reasons.SETTLEMENT_PENDING)
            ),
            queue_id=str(queue_id),
            queue_position=None,
        )


def refunds_due(conn: db.Conn, *, limit: int = 100) -> list[dict[str, Any]]:
    """Operators: paid requests whose mint failed for good (amount, payer, reason)."""
    return db.rows(conn, "list_refunds_due", {"limit": limit})
