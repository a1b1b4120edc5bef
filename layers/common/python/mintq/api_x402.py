"""x402's parts of an HTTP answer: the challenge and settlement headers, the 402's v1 fields.

The protocol's two versions are answered at once where a client of either may read:
v2 (``PAYMENT-REQUIRED`` / ``PAYMENT-RESPONSE``, reasons in v2's words) and v1 (the 402's
JSON body, ``X-PAYMENT-RESPONSE``, reasons in v1's words: ``mintq.x402_reasons``). The
encoding is the ``x402`` package's own; only ``mintq.api`` (through
``mintq.api_mint_answers``) uses this module, and only on a paid request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from x402.http.utils import encode_payment_required_header, encode_payment_response_header
from x402.schemas import SettleResponse

from mintq.mint_outcomes import Refused, Settlement
from mintq.x402_challenge import Challenge
from mintq.x402_reasons import PAYMENT_REQUIRED_TEXT, v1_name, v2_name

#: A 402 is never cached: it answers one payment, or none (the reference server's value).
PAYMENT_REQUIRED_CACHE_CONTROL = "no-store"


def challenge_headers(ch: Challenge, error: str = PAYMENT_REQUIRED_TEXT) -> dict[str, str]:
    """``PAYMENT-REQUIRED`` (base64 JSON v2 ``PaymentRequired`` with ``error``: a generic text
    on a first challenge, the v2 reason on a refusal, as the reference server sets it) and
    ``Cache-Control: no-store``."""
    return {
        "PAYMENT-REQUIRED": encode_payment_required_header(ch.v2.model_copy(update={"error": error})),
        "Cache-Control": PAYMENT_REQUIRED_CACHE_CONTROL,
    }


def challenge_body(ch: Challenge, reason: str | None = None) -> dict[str, Any]:
    """The v1 402 fields: ``x402Version``, ``accepts`` and, for a refusal v1 has a name for,
    ``error`` (v1's list has none for "no payment yet", so a first challenge has none)."""
    accepts = [ch.v1.model_dump(by_alias=True, exclude_none=True)] if ch.v1 else []
    body: dict[str, Any] = {"x402Version": 1, "accepts": accepts}
    v1_reason = v1_name(reason) if reason is not None else None
    if v1_reason is not None:
        body["error"] = v1_reason
    return body


def settlement_headers(settlement: Settlement) -> dict[str, str]:
    """The settlement in the header (and with the reason names) of the payer's x402 version:
    ``X-PAYMENT-RESPONSE`` for v1, ``PAYMENT-RESPONSE`` for v2 (base64 JSON ``SettleResponse``)."""
    if settlement.x402_version == 1:
        return {"X-PAYMENT-RESPONSE": _encoded(settlement.response, v1_name)}
    return {"PAYMENT-RESPONSE": _encoded(settlement.response, v2_name)}


def refusal_headers(refused: Refused) -> dict[str, str]:
    """A 402's headers: ``Cache-Control: no-store``, the challenge again (``PAYMENT-REQUIRED``
    with ``error``) and, for a refused payment, its reason in ``PAYMENT-RESPONSE`` (v2 name)
    and ``X-PAYMENT-RESPONSE`` (v1 name), whichever the client reads."""
    reason = refused.reason
    headers = {"Cache-Control": PAYMENT_REQUIRED_CACHE_CONTROL}
    headers |= challenge_headers(refused.challenge, v2_name(reason) if reason else PAYMENT_REQUIRED_TEXT)
    if reason is not None:
        response = refused.settlement or SettleResponse(
            success=False, error_reason=reason, transaction="", network=refused.challenge.requirements.network
        )
        headers |= {
            "PAYMENT-RESPONSE": _encoded(response, v2_name),
            "X-PAYMENT-RESPONSE": _encoded(response, v1_name),
        }
    return headers


def _encoded(response: SettleResponse, name: Callable[[str], str | None]) -> str:
    reason = response.error_reason
    renamed = response.model_copy(update={"error_reason": name(reason) if reason else None})
    return encode_payment_response_header(renamed)
