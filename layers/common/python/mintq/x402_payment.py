"""A payment header decoded and checked: who pays, with what, in which x402 version.

``decode`` reads a ``PAYMENT-SIGNATURE`` (v2) or ``X-PAYMENT`` (v1) value into a ``Payment``
(only what identifies it: the payer and the EIP-3009 nonce); ``check_terms`` refuses what
can be refused without a chain (network, asset, recipient, amount, validity window). Both
raise ``errors.PaymentInvalid`` with an x402 reason; the paid mint turns that into a refusal.

Light on purpose: no web3 and none of x402's EVM modules (they pull web3 in); the EIP-3009
checks that need a chain (signature, balance, nonce state) are the facilitator's.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from x402.schemas import PaymentPayload, PaymentRequirements
from x402.schemas.v1 import PaymentPayloadV1, PaymentRequirementsV1

from mintq import addresses, errors
from mintq.x402_challenge import SCHEME, Challenge
from mintq.x402_reasons import (
    INVALID_NETWORK,
    INVALID_PAYLOAD,
    INVALID_REQUIREMENTS,
    INVALID_VERSION,
    RECIPIENT_MISMATCH,
    UNSUPPORTED_SCHEME,
    VALID_AFTER,
    VALID_BEFORE,
    VALUE_MISMATCH,
)

#: The facilitator checks ``validBefore >= now + 6``; refuse earlier what it would refuse.
VALID_BEFORE_MARGIN_SECONDS = 6
#: A header value longer than this (characters) is refused before it is decoded.
MAX_HEADER_CHARS = 32_000

_HEX32 = re.compile(r"^0x[0-9a-fA-F]{64}$")
_HEX_SIG = re.compile(r"^0x(?:[0-9a-fA-F]{2})+$")
_UINT = re.compile(r"^[0-9]{1,78}$")
#: payments.valid_before is a bigint; a later validBefore is refused rather than failing to store
_MAX_UNIX_SECONDS = 2**63 - 1


class Authorization(BaseModel):
    """EIP-3009 ``TransferWithAuthorization`` as x402 ``exact`` carries it: addresses as 0x
    text, ``value`` in the asset's atomic units, the validity window in unix seconds, all
    as decimal text; ``nonce`` is 32 bytes of 0x hex."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")
    from_: str = Field(alias="from")
    to: str
    value: str = Field(pattern=_UINT.pattern)
    valid_after: str = Field(alias="validAfter", pattern=_UINT.pattern)
    valid_before: str = Field(alias="validBefore", pattern=_UINT.pattern)
    nonce: str = Field(pattern=_HEX32.pattern)


class ExactPayload(BaseModel):
    """The ``exact`` scheme's payload: the authorization and its 0x-hex signature."""

    model_config = ConfigDict(extra="ignore")
    signature: str = Field(pattern=_HEX_SIG.pattern, max_length=20_000)
    authorization: Authorization


@dataclass(frozen=True)
class Payment:
    """A decoded payment header: who pays (as signed), with what, in which protocol version."""

    version: Literal[1, 2]
    envelope: PaymentPayload | PaymentPayloadV1
    exact: ExactPayload
    payer: str  #: checksummed ``authorization.from``
    nonce: str  #: lowercase 0x hex

    def requirements_for(self, ch: Challenge) -> PaymentRequirements | PaymentRequirementsV1:
        """The ``PaymentRequirements`` of this payment's version (what the facilitator checks)."""
        if self.version == 1:
            assert ch.v1 is not None  # check_terms refuses v1 when no v1 network is configured
            return ch.v1
        return ch.requirements


def decode(value: str) -> Payment:
    """Parse a ``PAYMENT-SIGNATURE`` / ``X-PAYMENT`` value (base64 JSON ``PaymentPayload``).

    Only the shape is checked here (what identifies the payment: payer and nonce); the
    terms are ``check_terms``'s, for payments that are not known yet. Raises
    ``errors.PaymentInvalid`` (reason ``invalid_payload``, ``invalid_x402_version`` or
    ``unsupported_scheme``)."""
    refuse = errors.PaymentInvalid
    if len(value) > MAX_HEADER_CHARS:
        raise refuse(INVALID_PAYLOAD, "the payment header is too large")
    try:
        data = json.loads(base64.b64decode(value.strip(), validate=True))
    except (binascii.Error, ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise refuse(INVALID_PAYLOAD, "the payment header is not base64-encoded JSON") from exc
    if not isinstance(data, dict):
        raise refuse(INVALID_PAYLOAD, "the payment header must encode a JSON object")
    version = data.get("x402Version")
    if version not in (1, 2) or isinstance(version, bool):
        raise refuse(INVALID_VERSION, f"x402Version must be 1 or 2, not {version!r}")
    envelope: PaymentPayload | PaymentPayloadV1
    try:
        envelope = (
            PaymentPayloadV1.model_validate(data) if version == 1 else PaymentPayload.model_validate(data)
        )
    except ValidationError as exc:
        raise refuse(INVALID_PAYLOAD, f"the payment does not match x402 v{version}") from exc
    scheme = envelope.get_scheme()
    if scheme != SCHEME:
        raise refuse(UNSUPPORTED_SCHEME, f"only the {SCHEME!r} scheme is accepted, not {scheme!r}")
    try:
        exact = ExactPayload.model_validate(envelope.payload)
        payer = addresses.parse(exact.authorization.from_, field="authorization.from")
        addresses.parse(exact.authorization.to, field="authorization.to")
    except (ValidationError, errors.InvalidAddress) as exc:
        raise refuse(
            INVALID_PAYLOAD, "the payload is not an EIP-3009 authorization with a signature"
        ) from exc
    return Payment(
        version=version,
        envelope=envelope,
        exact=exact,
        payer=payer,
        nonce=exact.authorization.nonce.lower(),
    )


def check_terms(payment: Payment, ch: Challenge, *, now: float | None = None) -> None:
    """What can be refused without a chain, against today's terms and clock: network, asset,
    recipient, amount and the validity window (unix seconds ``now``, default the wall clock).
    Raises ``errors.PaymentInvalid`` with the x402 reason of the first term broken.

    Only for a payment mintq has no record of: a known one gets its first answer whatever
    the terms or the clock say now (``decode`` reads only what identifies a payment)."""
    auth = payment.exact.authorization
    req = ch.requirements
    refuse = errors.PaymentInvalid
    envelope = payment.envelope
    expected_network = req.network if payment.version == 2 else (ch.v1.network if ch.v1 else None)
    if expected_network is None:
        raise refuse(INVALID_VERSION, "this deployment's network has no x402 v1 name; pay with x402 v2")
    if envelope.get_network() != expected_network:
        raise refuse(INVALID_NETWORK, f"payments must be on {expected_network}, not {envelope.get_network()}")
    if isinstance(envelope, PaymentPayload) and envelope.accepted.asset.lower() != req.asset.lower():
        raise refuse(INVALID_REQUIREMENTS, f"the asset must be {req.asset}")
    if auth.to.lower() != req.pay_to.lower():
        raise refuse(RECIPIENT_MISMATCH, f"the authorization must pay {req.pay_to}")
    if int(auth.value) != int(req.amount):
        raise refuse(VALUE_MISMATCH, f"the authorization must be for exactly {req.amount}")
    moment = int(now if now is not None else time.time())
    if int(auth.valid_before) < moment + VALID_BEFORE_MARGIN_SECONDS:
        raise refuse(VALID_BEFORE, "the authorization has expired")
    if int(auth.valid_before) > _MAX_UNIX_SECONDS:
        raise refuse(VALID_BEFORE, "validBefore is past any representable time")
    if int(auth.valid_after) > moment:
        raise refuse(VALID_AFTER, "the authorization is not valid yet")
