"""The x402 protocol at mintq's edge: challenge, payment decoding, local checks, facilitator.

A thin adapter for API Gateway events around the ``x402`` package's types and header
encoding (the package ships middleware for FastAPI and Flask only). It speaks both
protocol versions: v2 (``PAYMENT-SIGNATURE`` / ``PAYMENT-REQUIRED`` / ``PAYMENT-RESPONSE``)
and v1 (``X-PAYMENT`` / ``X-PAYMENT-RESPONSE``, the 402's JSON body).

Light on purpose: the enqueue function imports this, so no web3 and none of x402's EVM
modules (they pull web3 in); the EIP-3009 checks that need a chain are the facilitator's.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from x402.http.utils import encode_payment_required_header, encode_payment_response_header
from x402.schemas import (
    PaymentPayload,
    PaymentRequired,
    PaymentRequirements,
    ResourceInfo,
    SettleResponse,
    VerifyResponse,
)
from x402.schemas.v1 import PaymentPayloadV1, PaymentRequirementsV1

from mintq import addresses, config, errors

# The reason codes live in x402_reasons (with their v1 and v2 names); ``x402.X`` re-exports them.
from mintq.x402_reasons import (
    INVALID_NETWORK,
    INVALID_PAYLOAD,
    INVALID_REQUIREMENTS,
    INVALID_SIGNATURE,  # noqa: F401 - re-exported
    INVALID_VERSION,
    NONCE_USED,  # noqa: F401 - re-exported
    PAYMENT_REQUIRED_TEXT,
    RECIPIENT_MISMATCH,
    SETTLEMENT_PENDING,  # noqa: F401 - re-exported
    UNEXPECTED_SETTLE,  # noqa: F401 - re-exported
    UNEXPECTED_VERIFY,  # noqa: F401 - re-exported
    UNSUPPORTED_SCHEME,
    VALID_AFTER,
    VALID_BEFORE,
    VALUE_MISMATCH,
    v1_name,
    v2_name,
)

if TYPE_CHECKING:  # httpx is imported on first use: free mode never pays for it at cold start
    import httpx

SCHEME = "exact"

#: A 402 is never cached: it answers one payment, or none (the reference server's value).
PAYMENT_REQUIRED_CACHE_CONTROL = "no-store"

#: The facilitator checks ``validBefore >= now + 6``; refuse earlier what it would refuse.
VALID_BEFORE_MARGIN_SECONDS = 6

_HEX32 = re.compile(r"^0x[0-9a-fA-F]{64}$")
_HEX_SIG = re.compile(r"^0x(?:[0-9a-fA-F]{2})+$")
_UINT = re.compile(r"^[0-9]{1,78}$")
#: payments.valid_before is a bigint; a later validBefore is refused rather than failing to store
_MAX_UNIX_SECONDS = 2**63 - 1


# --- the challenge ------------------------------------------------------------------


@dataclass(frozen=True)
class Challenge:
    """One price, stated in both protocol versions."""

    v2: PaymentRequired
    v1: PaymentRequirementsV1 | None

    @property
    def requirements(self) -> PaymentRequirements:
        return self.v2.accepts[0]


def challenge(cfg: config.X402Config, resource_url: str, error: str | None = None) -> Challenge:
    extra = {"name": cfg.asset_name, "version": cfg.asset_version}
    v2 = PaymentRequired(
        error=error,
        resource=ResourceInfo(url=resource_url, description=cfg.description, mime_type="application/json"),
        accepts=[
            PaymentRequirements(
                scheme=SCHEME,
                network=cfg.network,
                asset=cfg.asset,
                amount=str(cfg.price),
                pay_to=cfg.pay_to,
                max_timeout_seconds=cfg.max_timeout_seconds,
                extra=extra,
            )
        ],
    )
    v1 = None
    if cfg.v1_network:
        v1 = PaymentRequirementsV1(
            scheme=SCHEME,
            network=cfg.v1_network,
            max_amount_required=str(cfg.price),
            resource=resource_url,
            description=cfg.description,
            mime_type="application/json",
            pay_to=cfg.pay_to,
            max_timeout_seconds=cfg.max_timeout_seconds,
            asset=cfg.asset,
            extra=extra,
        )
    return Challenge(v2=v2, v1=v1)


def challenge_headers(ch: Challenge, error: str = PAYMENT_REQUIRED_TEXT) -> dict[str, str]:
    """``PAYMENT-REQUIRED`` (with ``error``: a generic text on a first challenge, the v2 reason
    on a refusal, as the reference server sets it) and ``Cache-Control: no-store``."""
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


# --- the payment ----------------------------------------------------------------------


class Authorization(BaseModel):
    """EIP-3009 ``TransferWithAuthorization`` as x402 ``exact`` carries it."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")
    from_: str = Field(alias="from")
    to: str
    value: str = Field(pattern=_UINT.pattern)
    valid_after: str = Field(alias="validAfter", pattern=_UINT.pattern)
    valid_before: str = Field(alias="validBefore", pattern=_UINT.pattern)
    nonce: str = Field(pattern=_HEX32.pattern)


class ExactPayload(BaseModel):
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

    @property
    def response_header(self) -> str:
        return "PAYMENT-RESPONSE" if self.version == 2 else "X-PAYMENT-RESPONSE"

    def requirements_for(self, ch: Challenge) -> PaymentRequirements | PaymentRequirementsV1:
        if self.version == 1:
            assert ch.v1 is not None  # decode() refuses v1 when no v1 network is configured
            return ch.v1
        return ch.requirements


def header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def payment_header(headers: Mapping[str, str]) -> str | None:
    return header(headers, "PAYMENT-SIGNATURE") or header(headers, "X-PAYMENT")


def decode(value: str, ch: Challenge) -> Payment:
    """Parse a ``PAYMENT-SIGNATURE`` / ``X-PAYMENT`` value, or refuse it with an x402 reason.

    Only the shape is checked here (what identifies the payment: payer and nonce); the
    terms are ``check_terms``'s, for payments that are not known yet."""

    def refuse(reason: str, message: str) -> errors.PaymentInvalid:
        return errors.PaymentInvalid(reason, message, challenge=ch)

    if len(value) > 32_000:
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

    Only for a payment mintq has no record of: a known one gets its first answer whatever
    the terms or the clock say now (``decode`` reads only what identifies a payment)."""
    auth = payment.exact.authorization
    req = ch.requirements
    refuse = errors.PaymentInvalid
    envelope = payment.envelope
    expected_network = req.network if payment.version == 2 else (ch.v1.network if ch.v1 else None)
    if expected_network is None:
        raise refuse(
            INVALID_VERSION, "this deployment's network has no x402 v1 name; pay with x402 v2", challenge=ch
        )
    if envelope.get_network() != expected_network:
        raise refuse(
            INVALID_NETWORK,
            f"payments must be on {expected_network}, not {envelope.get_network()}",
            challenge=ch,
        )
    if isinstance(envelope, PaymentPayload) and envelope.accepted.asset.lower() != req.asset.lower():
        raise refuse(INVALID_REQUIREMENTS, f"the asset must be {req.asset}", challenge=ch)
    if auth.to.lower() != req.pay_to.lower():
        raise refuse(RECIPIENT_MISMATCH, f"the authorization must pay {req.pay_to}", challenge=ch)
    if int(auth.value) != int(req.amount):
        raise refuse(VALUE_MISMATCH, f"the authorization must be for exactly {req.amount}", challenge=ch)
    moment = int(now if now is not None else time.time())
    if int(auth.valid_before) < moment + VALID_BEFORE_MARGIN_SECONDS:
        raise refuse(VALID_BEFORE, "the authorization has expired", challenge=ch)
    if int(auth.valid_before) > _MAX_UNIX_SECONDS:
        raise refuse(VALID_BEFORE, "validBefore is past any representable time", challenge=ch)
    if int(auth.valid_after) > moment:
        raise refuse(VALID_AFTER, "the authorization is not valid yet", challenge=ch)


# --- settlement responses ---------------------------------------------------------------


def settlement_header(payment: Payment, response: SettleResponse) -> dict[str, str]:
    """The settlement response in the header (and the reason names) of the payment's version."""
    if payment.version == 1:
        return {"X-PAYMENT-RESPONSE": _encoded(response, v1_name)}
    return {"PAYMENT-RESPONSE": _encoded(response, v2_name)}


def _encoded(response: SettleResponse, name: Callable[[str], str | None]) -> str:
    reason = response.error_reason
    renamed = response.model_copy(update={"error_reason": name(reason) if reason else None})
    return encode_payment_response_header(renamed)


def refusal(exc: errors.PaymentError) -> tuple[dict[str, str], dict[str, Any]]:
    """A 402's x402 parts: the challenge again (``PAYMENT-REQUIRED`` with ``error``, and the v1
    body fields), and for a refused payment its reason in ``PAYMENT-RESPONSE`` (v2 name) and
    ``X-PAYMENT-RESPONSE`` (v1 name), whichever the client reads."""
    reason = exc.reason if isinstance(exc, errors.PaymentInvalid) else None
    headers: dict[str, str] = {"Cache-Control": PAYMENT_REQUIRED_CACHE_CONTROL}
    extra: dict[str, Any] = {}
    if isinstance(exc.challenge, Challenge):
        headers |= challenge_headers(exc.challenge, v2_name(reason) if reason else PAYMENT_REQUIRED_TEXT)
        extra |= challenge_body(exc.challenge, reason)
    if reason is not None:
        response = exc.settlement
        if not isinstance(response, SettleResponse):
            network = exc.challenge.requirements.network if isinstance(exc.challenge, Challenge) else ""
            response = SettleResponse(success=False, error_reason=reason, transaction="", network=network)
        headers |= {
            "PAYMENT-RESPONSE": _encoded(response, v2_name),
            "X-PAYMENT-RESPONSE": _encoded(response, v1_name),
        }
    return headers, extra


# --- the facilitator --------------------------------------------------------------------


AuthHeaders = Callable[[], dict[str, dict[str, str]]]


class FacilitatorUnreachable(Exception):
    """The request never reached the facilitator (nothing can have been broadcast)."""


class FacilitatorAmbiguous(Exception):
    """The settle request may have reached the facilitator, but no answer came back."""


class Facilitator:
    """``POST /verify`` and ``POST /settle`` over HTTP, parsed into the x402 package's types.

    Written here rather than using ``x402.http.HTTPFacilitatorClientSync`` because that
    client turns every non-200 into a bare ``ValueError``: mintq must tell a refused
    payment (402) from an unreachable facilitator (503) from a settle whose outcome is
    unknown (pending), and those differ by where the failure happened.
    """

    def __init__(
        self,
        url: str,
        *,
        verify_timeout: float,
        settle_timeout: float,
        auth_headers: AuthHeaders | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.verify_timeout = verify_timeout
        self.settle_timeout = settle_timeout
        #: per-endpoint headers, made afresh for every call (CDP's are short-lived JWTs)
        self.auth_headers = auth_headers
        import httpx

        self._client = httpx.Client(follow_redirects=False, transport=transport)

    def _body(
        self, payment: Payment, requirements: PaymentRequirements | PaymentRequirementsV1
    ) -> dict[str, Any]:
        return {
            "x402Version": payment.version,
            "paymentPayload": payment.envelope.model_dump(by_alias=True, exclude_none=True),
            "paymentRequirements": requirements.model_dump(by_alias=True, exclude_none=True),
        }

    def _post(self, path: str, body: dict[str, Any], timeout: float) -> httpx.Response:
        import httpx

        auth = self.auth_headers() if self.auth_headers else {}
        headers = {"Content-Type": "application/json", **auth.get(path, {})}
        return self._client.post(
            f"{self.url}/{path}",
            json=body,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0)),
        )

    def verify(
        self,
        payment: Payment,
        requirements: PaymentRequirements | PaymentRequirementsV1,
        *,
        timeout: float | None = None,
    ) -> VerifyResponse:
        import httpx

        try:
            response = self._post(
                "verify", self._body(payment, requirements), _within(self.verify_timeout, timeout)
            )
        except httpx.HTTPError as exc:  # verify has no side effects: any failure is "unavailable"
            raise FacilitatorUnreachable(f"verify: {type(exc).__name__}: {exc}") from exc
        parsed = _parse(response, VerifyResponse)
        if parsed is None:
            raise FacilitatorUnreachable(f"verify answered HTTP {response.status_code}")
        return parsed

    def settle(
        self,
        payment: Payment,
        requirements: PaymentRequirements | PaymentRequirementsV1,
        *,
        timeout: float | None = None,
    ) -> SettleResponse:
        import httpx

        try:
            response = self._post(
                "settle", self._body(payment, requirements), _within(self.settle_timeout, timeout)
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise FacilitatorUnreachable(f"settle: {type(exc).__name__}: {exc}") from exc
        except httpx.HTTPError as exc:  # sent, then lost: it may have broadcast
            raise FacilitatorAmbiguous(f"settle: {type(exc).__name__}: {exc}") from exc
        parsed = _parse(response, SettleResponse)
        if parsed is None:
            # A 5xx after the request arrived says nothing about whether it broadcast.
            raise FacilitatorAmbiguous(f"settle answered HTTP {response.status_code}")
        return parsed


def _within(configured: float, left: float | None) -> float:
    """The configured timeout, cut to the caller's time left (seconds) when it is shorter."""
    return configured if left is None else max(min(configured, left), 0.01)


_Model = TypeVar("_Model", bound=BaseModel)


def _parse(response: httpx.Response, model: type[_Model]) -> _Model | None:
    """The facilitator's answer, also from a 4xx that carries one (some answer 400 for invalid)."""
    if response.status_code >= 500:
        return None
    try:
        return model.model_validate(response.json())
    except (ValueError, ValidationError):
        return None


_facilitators: dict[str, Facilitator] = {}


def facilitator(cfg: config.X402Config) -> Facilitator:
    """One client (and connection pool) per execution environment."""
    client = _facilitators.get(cfg.facilitator_url)
    if client is None:
        client = Facilitator(
            cfg.facilitator_url,
            verify_timeout=cfg.verify_timeout_seconds,
            settle_timeout=cfg.settle_timeout_seconds,
            auth_headers=cdp_auth_headers(cfg),
        )
        _facilitators[cfg.facilitator_url] = client
    return client


def cdp_auth_headers(cfg: config.X402Config) -> AuthHeaders | None:
    """With CDP API keys configured, a factory of fresh per-endpoint JWT headers (cdp-sdk's)."""
    keys = config.cdp_api_keys()
    if keys is None:
        return None
    try:  # optional: only deployments on the CDP facilitator ship cdp-sdk in the layer
        from cdp.x402 import create_facilitator_config  # type: ignore[import-not-found]
    except ImportError as exc:
        raise errors.ConfigurationError("the CDP facilitator needs the cdp-sdk package") from exc
    cdp = create_facilitator_config(*keys)
    # CDP's JWTs name the host and path they are for: sent anywhere else they fail, or leak.
    if urlsplit(cdp["url"]).netloc != urlsplit(cfg.facilitator_url).netloc:
        raise errors.ConfigurationError(
            f"CDP API keys are only sent to the CDP facilitator ({cdp['url']}),"
            f" not to {cfg.facilitator_url}: unset MINTQ_X402_FACILITATOR_URL or the CDP secret"
        )
    create_headers: AuthHeaders = cdp["create_headers"]
    return create_headers


def reset() -> None:
    for client in _facilitators.values():
        client._client.close()
    _facilitators.clear()
