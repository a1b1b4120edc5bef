"""x402 payments refused: malformed or unknown payment headers, wrong terms, authorizations out
of their window, forged signatures, empty wallets and used nonces. Each is answered with x402's
402 and its reason, nothing is queued and nobody is charged.
"""

from __future__ import annotations

import base64
import time
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from x402.http import decode_payment_required_header, decode_payment_response_header
from x402.schemas import PaymentRequiredV1

from devstack import contracts
from mintq import x402_reasons
from tests.support.x402_client import challenge, pay_v2, post_mint, v2_header
from tests.support.x402_stack import DEPLOYER_KEY, PRICE, Stack, rows, stack, transfer_with_authorization

__all__ = ["stack"]  # the fixture, used by name


def _assert_refused(stack: Stack, conn: Any, headers: dict[str, str], reason: str) -> None:
    status, body, got = post_mint(headers)
    assert status == 402, body
    # v2 clients read the reason by its v2 name, v1 clients by v1's (x402_reasons).
    v1 = x402_reasons.v1_name(reason)
    assert body["error"] == v1 and PaymentRequiredV1.model_validate(body).error == v1, body
    assert decode_payment_response_header(got["PAYMENT-RESPONSE"]).error_reason == reason
    assert decode_payment_response_header(got["X-PAYMENT-RESPONSE"]).error_reason == v1
    assert decode_payment_required_header(got["PAYMENT-REQUIRED"]).error == reason
    assert got["Cache-Control"] == "no-store" and body["accepts"]  # free to pay again, correctly
    assert rows(conn, "mint_queue") == []
    assert stack.usdc_balance(stack.pay_to) == 0
    assert stack.facilitator.broadcasts == 0


def _tampered(account: LocalAccount, stack: Stack, **changes: Any) -> dict[str, Any]:
    payload = pay_v2(account, stack).model_dump(by_alias=True, exclude_none=True)
    for path, value in changes.items():
        target = payload
        *parents, last = path.split("__")
        for part in parents:
            target = target[part]
        target[last] = value
    return payload


def test_malformed_headers_and_unknown_versions_or_schemes_are_refused(stack: Stack, conn: Any) -> None:
    account = stack.payer()
    _assert_refused(stack, conn, {"PAYMENT-SIGNATURE": "not base64 at all!"}, x402_reasons.INVALID_PAYLOAD)
    _assert_refused(
        stack, conn, {"X-PAYMENT": base64.b64encode(b"[1,2]").decode()}, x402_reasons.INVALID_PAYLOAD
    )
    deep = base64.b64encode(b"[" * 5000 + b"]" * 5000).decode()  # deeper than the parser recurses
    _assert_refused(stack, conn, {"PAYMENT-SIGNATURE": deep}, x402_reasons.INVALID_PAYLOAD)
    _assert_refused(
        stack, conn, v2_header(_tampered(account, stack, x402Version=3)), x402_reasons.INVALID_VERSION
    )
    _assert_refused(
        stack, conn, v2_header(_tampered(account, stack, accepted__scheme="upto")), "unsupported_scheme"
    )
    _assert_refused(
        stack,
        conn,
        v2_header(_tampered(account, stack, payload__signature="nope")),
        x402_reasons.INVALID_PAYLOAD,
    )


def test_wrong_network_asset_recipient_or_amount_are_refused(stack: Stack, conn: Any) -> None:
    account = stack.payer()
    _assert_refused(
        stack,
        conn,
        v2_header(_tampered(account, stack, accepted__network="eip155:8453")),
        x402_reasons.INVALID_NETWORK,
    )
    other_asset = Account.create().address
    _assert_refused(
        stack,
        conn,
        v2_header(_tampered(account, stack, accepted__asset=other_asset)),
        x402_reasons.INVALID_REQUIREMENTS,
    )
    required, _ = challenge()
    required.accepts[0].pay_to = Account.create().address
    _assert_refused(stack, conn, v2_header(pay_v2(account, stack, required)), x402_reasons.RECIPIENT_MISMATCH)
    required, _ = challenge()
    required.accepts[0].amount = str(PRICE - 1)
    _assert_refused(stack, conn, v2_header(pay_v2(account, stack, required)), x402_reasons.VALUE_MISMATCH)


def test_expired_and_not_yet_valid_authorizations_are_refused(stack: Stack, conn: Any) -> None:
    account = stack.payer()
    required, _ = challenge()
    required.accepts[0].max_timeout_seconds = 1
    _assert_refused(stack, conn, v2_header(pay_v2(account, stack, required)), x402_reasons.VALID_BEFORE)
    future = str(int(time.time()) + 3600)
    _assert_refused(
        stack,
        conn,
        v2_header(_tampered(account, stack, payload__authorization__validAfter=future)),
        x402_reasons.VALID_AFTER,
    )
    # Signed, but valid until after any time the payments table can hold: refused, never a 5xx.
    _assert_refused(
        stack,
        conn,
        v2_header(_tampered(account, stack, payload__authorization__validBefore=str(2**64))),
        x402_reasons.VALID_BEFORE,
    )


def test_bad_signature_insufficient_balance_and_used_nonce_are_refused_by_the_facilitator(
    stack: Stack, conn: Any
) -> None:
    account = stack.payer()
    good = _tampered(account, stack)
    signature = good["payload"]["signature"]
    forged = signature[:-4] + ("00" if signature[-4:-2] != "00" else "11") + signature[-2:]
    _assert_refused(
        stack,
        conn,
        v2_header(_tampered(account, stack, payload__signature=forged)),
        x402_reasons.INVALID_SIGNATURE,
    )

    broke = stack.payer(funded=PRICE - 1)
    _assert_refused(stack, conn, v2_header(pay_v2(broke, stack)), "invalid_exact_evm_insufficient_balance")

    # The authorization is used on chain by someone else first (e.g. another merchant).
    payload = pay_v2(account, stack)
    auth = payload.payload["authorization"]
    contracts.transact(
        stack.w3, transfer_with_authorization(stack, auth, payload.payload["signature"]), DEPLOYER_KEY
    )
    status, body, got = post_mint(v2_header(payload))
    assert status == 402 and body["error"] == x402_reasons.v1_name(x402_reasons.NONCE_USED), body
    assert decode_payment_response_header(got["PAYMENT-RESPONSE"]).error_reason == x402_reasons.NONCE_USED
    assert rows(conn, "mint_queue") == []
