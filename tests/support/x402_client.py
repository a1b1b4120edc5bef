"""The paying side of the x402 tests: POST /mint through the real enqueue handler, paid with the
x402 package's own client (v2 and v1), and a request's item read back through the status handler.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from x402 import x402ClientSync
from x402.http import decode_payment_required_header, encode_payment_signature_header
from x402.mechanisms.evm.exact import ExactEvmClientScheme
from x402.mechanisms.evm.exact.v1.client import ExactEvmSchemeV1 as ExactEvmClientSchemeV1
from x402.mechanisms.evm.signers import EthAccountSigner
from x402.schemas import PaymentPayload, PaymentRequired, PaymentRequiredV1
from x402.schemas.v1 import PaymentPayloadV1

from tests.support.events import http_event, invoke
from tests.support.x402_stack import PRICE, Stack


def post_mint(
    headers: dict[str, str] | None = None, body: object = None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    return invoke(
        "enqueue", http_event("POST", "/mint", body=body if body is not None else {}, headers=headers)
    )


def challenge() -> tuple[PaymentRequired, PaymentRequiredV1]:
    status, body, headers = post_mint()
    assert status == 402, body
    v2 = decode_payment_required_header(headers["PAYMENT-REQUIRED"])
    return v2, PaymentRequiredV1.model_validate(body)  # type: ignore[return-value]


def client_for(account: LocalAccount, stack: Stack) -> x402ClientSync:
    client = x402ClientSync()
    # The test USDC is no default asset of the package: allow it, capped at the price.
    client.set_spend_controls(
        {
            "allowed_assets": [
                {"network": network, "asset": stack.usdc.address, "max_amount_per_payment": str(PRICE)}
                for network in (stack.network, "anvil")
            ]
        }
    )
    client.register(stack.network, ExactEvmClientScheme(EthAccountSigner(account)))
    client.register_v1("anvil", ExactEvmClientSchemeV1(EthAccountSigner(account)))
    return client


def pay_v2(account: LocalAccount, stack: Stack, required: PaymentRequired | None = None) -> PaymentPayload:
    payload = client_for(account, stack).create_payment_payload(required or challenge()[0])
    assert isinstance(payload, PaymentPayload)
    return payload


def pay_v1(account: LocalAccount, stack: Stack) -> PaymentPayloadV1:
    payload = client_for(account, stack).create_payment_payload(challenge()[1])
    assert isinstance(payload, PaymentPayloadV1)
    return payload


def v2_header(payload: PaymentPayload | dict[str, Any]) -> dict[str, str]:
    if isinstance(payload, dict):
        return {"PAYMENT-SIGNATURE": base64.b64encode(json.dumps(payload).encode()).decode()}
    return {"PAYMENT-SIGNATURE": encode_payment_signature_header(payload)}


def pend_without_broadcast(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, headers: dict[str, str]
) -> dict[str, Any]:
    """POST /mint while ``/settle`` dies before broadcasting (HTTP 500): the outcome is unknown to
    mintq, so the payment is left ``settlement_pending`` without a transaction hash."""

    def lost(body: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("simulated: the facilitator crashed before broadcasting")

    with monkeypatch.context() as patch:
        patch.setattr(stack.facilitator, "settle", lost)
        status, body, _ = post_mint(headers)
    assert status == 202, body
    assert body["paymentStatus"] == "settlement_pending" and body["settlementTransaction"] is None
    assert stack.facilitator.broadcasts == 0
    return body


def valid_before(headers: dict[str, str]) -> int:
    """The validBefore (unix seconds) of the authorization in a payment header."""
    from x402.http import decode_payment_signature_header

    value = next(iter(headers.values()))
    return int(decode_payment_signature_header(value).payload["authorization"]["validBefore"])
