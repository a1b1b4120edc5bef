"""Each outcome of ``payments.accept_mint`` as HTTP (``api.answer_mint``), and each error's
status: one table row per case, the headers decoded with the ``x402`` package's own readers.

No database and no chain: the outcomes are built by hand, as the paid mint would return them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, get_args

import pytest
from aws_lambda_powertools.event_handler.api_gateway import Router
from x402.http import decode_payment_required_header, decode_payment_response_header
from x402.schemas import SettleResponse

from mintq import api, config, errors, queue, x402_challenge
from mintq import x402_reasons as reasons
from mintq.mint_outcomes import (
    Accepted,
    MintOutcome,
    PendingSettlement,
    Refused,
    Replayed,
    Settlement,
    Unsettled,
)
from mintq.statuses import PaymentStatus
from tests.support.events import http_event
from tests.support.x402_env import NETWORK, PAY_TO, PRICE, USDC

PAYER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
QUEUE_ID = "3f1c9a52-8d0e-4a57-9a3b-2f61d1c0b7e4"
TX = "0x" + "ab" * 32
X402_HEADERS = {"PAYMENT-REQUIRED", "PAYMENT-RESPONSE", "X-PAYMENT-RESPONSE"}

TERMS = config.X402Config(
    price=PRICE,
    pay_to=PAY_TO,
    asset=USDC,
    network=NETWORK,
    asset_name="USDC",
    asset_version="2",
    facilitator_url="https://x402.org/facilitator",
    v1_network="base-sepolia",
    max_timeout_seconds=300,
    verify_timeout_seconds=5,
    settle_timeout_seconds=7,
    settle_lease_seconds=120,
    cdp_secret_arn=None,
    description="One token mint",
)
CHALLENGE = x402_challenge.challenge(TERMS, "https://mint.example/mint")


def queued(payment_type: str, position: int = 3) -> queue.Enqueued:
    return queue.Enqueued(
        queue_id=QUEUE_ID,
        queue_position=position,
        payer=PAYER,
        estimated_wait_seconds=10 * position,
        payment_type=payment_type,
    )


def seed(payment_type: str, position: int = 3) -> dict[str, Any]:
    return {
        "success": True,
        "message": "Mint request added to queue",
        "queueId": QUEUE_ID,
        "queuePosition": position,
        "payer": PAYER,
        "estimatedWaitSeconds": 10 * position,
        "paymentType": payment_type,
    }


def response(
    success: bool, tx: str | None, reason: str | None = None, network: str = NETWORK
) -> SettleResponse:
    return SettleResponse(
        success=success,
        error_reason=reason,
        payer=PAYER,
        transaction=tx or "",
        network=network,
        amount=str(PRICE) if success else None,
    )


def settlement(version: int, success: bool, tx: str | None, reason: str | None = None) -> Settlement:
    network = NETWORK if version == 2 else "base-sepolia"
    return Settlement(x402_version=1 if version == 1 else 2, response=response(success, tx, reason, network))


def pending(version: int, status: Unsettled, tx: str | None) -> PendingSettlement:
    return PendingSettlement(
        queue_id=QUEUE_ID,
        payer=PAYER,
        payment_status=status,
        settlement=settlement(version, False, tx, reasons.SETTLEMENT_PENDING),
        replayed=status is PaymentStatus.SETTLING,
    )


@dataclass(frozen=True)
class Row:
    outcome: MintOutcome
    status: int
    body: dict[str, Any]  #: the whole body, except keys mapped to ... (present, any value)
    #: header -> decoded expectation: for PAYMENT-REQUIRED its ``error``; for a settlement
    #: header {field: value} of the decoded SettleResponse. Absent x402 headers must be absent.
    headers: dict[str, Any] = field(default_factory=dict)
    cache_control: str | None = None


PENDING_TEXT = (
    "Payment received; its settlement is still pending, and the mint is queued as soon as it "
    f"confirms on chain. Follow it at /queue/item/{QUEUE_ID}"
)


def pending_body(status: str, tx: str | None) -> dict[str, Any]:
    return {
        "success": True,
        "message": PENDING_TEXT,
        "queueId": QUEUE_ID,
        "queuePosition": None,
        "payer": PAYER,
        "estimatedWaitSeconds": None,
        "paymentType": "x402",
        "paymentStatus": status,
        "settlementTransaction": tx,
    }


V1_ACCEPTS = [CHALLENGE.v1.model_dump(by_alias=True, exclude_none=True)] if CHALLENGE.v1 else []
FAILED = response(False, None, "invalid_exact_evm_insufficient_balance")

ROWS: dict[str, Row] = {
    "free": Row(Accepted(queued=queued("free")), 202, seed("free")),
    "settled-v2": Row(
        Accepted(queued=queued("x402"), settlement=settlement(2, True, TX)),
        202,
        seed("x402") | {"paymentStatus": "settled", "settlementTransaction": TX},
        {"PAYMENT-RESPONSE": {"success": True, "transaction": TX, "payer": PAYER, "amount": str(PRICE)}},
    ),
    "settled-v1": Row(
        Accepted(queued=queued("x402"), settlement=settlement(1, True, TX)),
        202,
        seed("x402") | {"paymentStatus": "settled", "settlementTransaction": TX},
        {"X-PAYMENT-RESPONSE": {"success": True, "transaction": TX, "network": "base-sepolia"}},
    ),
    "replayed-minted-hash-unknown": Row(
        Replayed(queued=queued("x402", position=0), settlement=settlement(2, True, None)),
        202,
        seed("x402", position=0) | {"paymentStatus": "settled", "settlementTransaction": None},
        {"PAYMENT-RESPONSE": {"success": True, "transaction": ""}},
    ),
    "twin-settling-v2": Row(
        pending(2, PaymentStatus.SETTLING, None),
        202,
        pending_body("settling", None),
        {"PAYMENT-RESPONSE": {"success": False, "error_reason": reasons.SETTLEMENT_PENDING}},
    ),
    "settlement-pending-v1": Row(
        pending(1, PaymentStatus.SETTLEMENT_PENDING, TX),
        202,
        pending_body("settlement_pending", TX),
        # v1 has no name for a pending settlement: the reason is left out.
        {"X-PAYMENT-RESPONSE": {"success": False, "error_reason": None, "transaction": TX}},
    ),
    "no-payment": Row(
        Refused(challenge=CHALLENGE, reason=None, message="pay first"),
        402,
        {"success": False, "message": "pay first", "x402Version": 1, "accepts": V1_ACCEPTS},
        {"PAYMENT-REQUIRED": reasons.PAYMENT_REQUIRED_TEXT},
        cache_control="no-store",
    ),
    "nonce-used": Row(
        Refused(challenge=CHALLENGE, reason=reasons.NONCE_USED, message="used"),
        402,
        {
            "success": False,
            "message": "used",
            "x402Version": 1,
            "accepts": V1_ACCEPTS,
            "error": "invalid_transaction_state",
        },
        {
            "PAYMENT-REQUIRED": reasons.NONCE_USED,
            "PAYMENT-RESPONSE": {"error_reason": reasons.NONCE_USED, "network": NETWORK, "payer": None},
            "X-PAYMENT-RESPONSE": {"error_reason": "invalid_transaction_state"},
        },
        cache_control="no-store",
    ),
    "refused-at-settlement": Row(
        Refused(challenge=CHALLENGE, reason=FAILED.error_reason, message="broke", settlement=FAILED),
        402,
        {
            "success": False,
            "message": "broke",
            "x402Version": 1,
            "accepts": V1_ACCEPTS,
            "error": "insufficient_funds",
        },
        {
            "PAYMENT-REQUIRED": FAILED.error_reason,
            "PAYMENT-RESPONSE": {"error_reason": FAILED.error_reason, "payer": PAYER, "success": False},
            "X-PAYMENT-RESPONSE": {"error_reason": "insufficient_funds", "payer": PAYER},
        },
        cache_control="no-store",
    ),
    "expired-on-chain": Row(  # the worker's own reason, told in each version's words
        Refused(challenge=CHALLENGE, reason=reasons.EXPIRED_UNSETTLED, message="expired"),
        402,
        {
            "success": False,
            "message": "expired",
            "x402Version": 1,
            "accepts": V1_ACCEPTS,
            "error": "payment_expired",
        },
        {
            "PAYMENT-REQUIRED": reasons.VALID_BEFORE,
            "PAYMENT-RESPONSE": {"error_reason": reasons.VALID_BEFORE},
            "X-PAYMENT-RESPONSE": {"error_reason": "payment_expired"},
        },
        cache_control="no-store",
    ),
}


@pytest.mark.parametrize("name", ROWS)
def test_each_outcome_has_its_status_body_and_x402_headers(name: str) -> None:
    row = ROWS[name]
    answer = api.answer_mint(row.outcome)
    assert answer.status_code == row.status
    assert answer.headers["Content-Type"] == "application/json"
    assert json.loads(answer.body) == row.body
    headers = answer.headers
    assert X402_HEADERS & set(headers) == set(row.headers), headers
    assert headers.get("Cache-Control") == row.cache_control
    for name_, expected in row.headers.items():
        value = headers[name_]
        assert isinstance(value, str)
        if name_ == "PAYMENT-REQUIRED":
            required = decode_payment_required_header(value)
            assert required.error == expected
            assert required.accepts == CHALLENGE.v2.accepts  # the same price, asked again
            continue
        decoded = decode_payment_response_header(value)
        for key, want in expected.items():
            assert getattr(decoded, key) == want, (name_, key)


def test_every_outcome_has_a_status_and_a_row() -> None:
    assert set(api.OUTCOME_STATUS) == set(get_args(MintOutcome))
    assert {type(row.outcome) for row in ROWS.values()} == set(get_args(MintOutcome))


# --- errors: one table, the one shape, Retry-After on 503 ------------------------------------

ERRORS = [  # (error, status, code)
    (errors.MalformedJson("bad json"), 400, "malformed_json"),
    (errors.InvalidAddress("payer is not an address"), 400, "invalid_address"),
    (errors.ValidationFailed("payer: Field required"), 422, "validation_error"),
    (errors.UnsupportedMediaType(), 415, "unsupported_media_type"),
    (errors.PayloadTooLarge(), 413, "payload_too_large"),
    (errors.OriginNotAllowed("pages on x may not mint"), 403, "origin_not_allowed"),
    (errors.IdempotencyConflict(), 409, "idempotency_key_reused"),
    (errors.SupplyExhausted("none left"), 410, "supply_exhausted"),
    (errors.PayerLimitReached("too many"), 429, "payer_limit_reached"),
    (errors.FacilitatorUnavailable("verify: ConnectError"), 503, "facilitator_unavailable"),
    (errors.SupplyUnknown("cannot read"), 503, "supply_unknown"),
    (errors.ApiClosed(), 503, "api_closed"),
    (errors.DatabaseError("host db:5432"), 503, "database_error"),
    (errors.ConfigurationError("no RPC URL"), 500, "configuration_error"),
    (errors.ChainUnavailable("worker only"), 500, "chain_unavailable"),
]


@pytest.mark.parametrize(("error", "status", "code"), ERRORS, ids=[code for _, _, code in ERRORS])
def test_each_error_has_its_status_in_the_one_shape(error: errors.MintqError, status: int, code: str) -> None:
    router = Router()  # type: ignore[no-untyped-call]

    @router.get("/boom")  # type: ignore[untyped-decorator]
    def boom() -> None:
        raise error

    result = api.create_app(router).resolve(http_event("GET", "/boom"), None)
    body = json.loads(result["body"])
    assert (result["statusCode"], body["error"]["code"], body["success"]) == (status, code, False)
    # A 5xx never shows its detail (hosts, SQL): the class's fixed text only.
    fixed = (type(error).__doc__ or "").strip()
    assert body["error"]["message"] == (error.message if status < 500 else fixed)
    assert (result["headers"].get("Retry-After") == "5") is (status == 503)
