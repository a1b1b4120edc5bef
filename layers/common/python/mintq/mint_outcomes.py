"""What ``POST /mint``'s one domain call decided, as a typed outcome and without HTTP.

``payments.accept_mint`` returns one of the four; ``mintq.api`` alone answers each with a
status (``api.OUTCOME_STATUS``), a body and headers (``mintq.api_mint_answers``):

============================  =====================================================  ======
outcome                       when                                                   answer
============================  =====================================================  ======
``Accepted``                  a new request in line: free, or paid and settled now   202
``Replayed``                  a payment already settled sent again: its first answer 202
``PendingSettlement``         a recorded payment whose settlement is not final       202
``Refused``                   no payment, or a payment refused (x402 reason)         402
============================  =====================================================  ======

What is not about the payment (the request's shape, the payer's cap, the supply, a closed
API, an unreachable facilitator, database or chain) stays a ``mintq.errors`` exception,
answered by ``api.HTTP_STATUS`` like every other route's errors.

x402's types are imported for annotations only: free mode never loads the x402 package.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from mintq.statuses import PaymentStatus

if TYPE_CHECKING:
    from x402.schemas import SettleResponse

    from mintq.queue import Enqueued
    from mintq.x402_challenge import Challenge


#: A payment recorded but not settled yet (what ``PendingSettlement`` can report).
Unsettled = Literal[PaymentStatus.SETTLING, PaymentStatus.SETTLEMENT_PENDING]


@dataclass(frozen=True, kw_only=True)
class Settlement:
    """A settlement as the payer is told it: x402's ``SettleResponse`` (``success``, the
    transfer's ``transaction`` hash or "", ``network``, ``payer``, ``amount`` in the asset's
    atomic units, ``error_reason`` in v2's words) and the x402 version the payer spoke
    (v2 reads it in ``PAYMENT-RESPONSE``, v1 in ``X-PAYMENT-RESPONSE``)."""

    x402_version: Literal[1, 2]
    response: SettleResponse

    @property
    def transaction(self) -> str | None:
        """The transfer's 0x hash, None while it is not known."""
        return self.response.transaction or None


@dataclass(frozen=True, kw_only=True)
class Accepted:
    """A new request in line: free (``settlement`` None), or paid and settled just now
    (``settlement.response.success``). ``queued`` is its place in line."""

    queued: Enqueued
    settlement: Settlement | None = None


@dataclass(frozen=True, kw_only=True)
class Replayed:
    """A payment already settled, sent again: the answer it had the first time (``queued``
    read afresh: position 0 once minted). Nothing was verified, settled or queued again."""

    queued: Enqueued
    settlement: Settlement


@dataclass(frozen=True, kw_only=True)
class PendingSettlement:
    """A recorded payment whose settlement is not final: a twin request is still settling it
    (``payment_status`` ``settling``), or the facilitator answered "pending" or its answer was
    lost (``settlement_pending``: the payment reconciler finds the transfer on chain and then
    queues the mint). ``settlement`` reports ``success`` False with reason
    ``settlement_pending``; ``replayed`` says whether this request found it already recorded."""

    queue_id: str  #: UUID the mint will have; follow it at /queue/item/{queue_id}
    payer: str  #: EIP-55 address of the verified payer
    payment_status: Unsettled
    settlement: Settlement
    replayed: bool


@dataclass(frozen=True, kw_only=True)
class Refused:
    """No payment was sent (``reason`` None: the first challenge), or the payment is refused
    with an x402 ``reason`` (v2's words, e.g. ``invalid_exact_evm_payload_signature``).
    Nobody was charged. ``challenge`` (the ``PaymentRequirements``) is sent again so the
    client can pay anew; ``settlement`` is the failed settlement's report when the
    facilitator refused at settlement (or did, for a replayed payment), else None."""

    challenge: Challenge
    reason: str | None
    message: str  #: for a person
    settlement: SettleResponse | None = None


#: Every outcome of ``payments.accept_mint``.
MintOutcome = Accepted | Replayed | PendingSettlement | Refused
