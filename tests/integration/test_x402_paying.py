"""x402 payments end to end, paid as they should be: the real enqueue handler, PostgreSQL, anvil
with an EIP-3009 test USDC, the local facilitator over HTTP, the x402 package's own client, and
the worker. The first request is challenged; a v2 or v1 payment mints once, to the payer it
proves, however often or concurrently it is sent.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from x402.http import (
    decode_payment_required_header,
    decode_payment_response_header,
    encode_payment_signature_header,
)
from x402.schemas import PaymentRequired, PaymentRequiredV1

from tests.support.events import concurrently, http_event, invoke, queue_item
from tests.support.x402_client import pay_v1, pay_v2, post_mint, v2_header
from tests.support.x402_stack import PRICE, Stack, drain, rows, stack

__all__ = ["stack"]  # the fixture, used by name


def test_no_payment_gets_a_402_challenge_in_v2_header_and_v1_body(stack: Stack, conn: Any) -> None:
    status, body, headers = post_mint(body={"payer": Account.create().address})
    assert status == 402
    # x402's own 402 body: a v1 client parses the whole of it (error is the code, a string).
    # v1's list of reasons has none for "not paid yet": the v1 body carries no error, the v2
    # header the reference server's generic text.
    assert body["success"] is False and "error" not in body and body["message"]
    assert PaymentRequiredV1.model_validate(body).error is None
    assert decode_payment_required_header(headers["PAYMENT-REQUIRED"]).error == "Payment required"
    assert headers["Cache-Control"] == "no-store"
    required = decode_payment_required_header(headers["PAYMENT-REQUIRED"])
    assert isinstance(required, PaymentRequired)
    [terms] = required.accepts
    assert (terms.scheme, terms.network, terms.amount) == ("exact", stack.network, str(PRICE))
    assert terms.pay_to == stack.pay_to and terms.asset.lower() == stack.usdc.address.lower()
    assert terms.extra == {"name": "USDC", "version": "2"}
    assert body["x402Version"] == 1
    [v1] = body["accepts"]
    assert (v1["network"], v1["maxAmountRequired"], v1["payTo"]) == ("anvil", str(PRICE), stack.pay_to)
    assert v1["extra"] == {"name": "USDC", "version": "2"}
    assert rows(conn, "mint_queue") == [] and rows(conn, "payments") == []
    # The payer comes from the payment, so a request without any body is challenged the same way.
    no_body = http_event("POST", "/mint")
    assert no_body["body"] is None
    status, body, headers = invoke("enqueue", no_body)
    assert (status, body.get("error")) == (402, None) and "PAYMENT-REQUIRED" in headers


def _assert_paid_once(stack: Stack, conn: Any, account: LocalAccount, body: dict[str, Any]) -> None:
    assert body["payer"] == account.address  # the verified payer, whatever the body said
    assert body["paymentType"] == "x402" and body["paymentStatus"] == "settled"
    assert stack.usdc_balance(account.address) == 9 * PRICE
    assert stack.usdc_balance(stack.pay_to) == PRICE
    drain(stack)
    assert stack.minted(account.address) == 1
    assert stack.facilitator.broadcasts == 1
    [payment] = rows(conn, "payments")
    assert payment["status"] == "settled" and payment["queue_id"] == uuid.UUID(body["queueId"])
    shown = queue_item(body["queueId"])  # answered 200
    assert shown["status"] == "completed"
    assert (
        shown["payment_status"] == "settled" and shown["settlement_tx_hash"] == body["settlementTransaction"]
    )
    assert not {"payload", "signature", "authorization_data"} & set(shown)


def test_a_v2_payment_mints_exactly_once_to_the_verified_payer(stack: Stack, conn: Any) -> None:
    account = stack.payer()
    decoy = Account.create().address
    status, body, headers = post_mint(v2_header(pay_v2(account, stack)), body={"payer": decoy})
    assert status == 202, body
    response = decode_payment_response_header(headers["PAYMENT-RESPONSE"])
    assert response.success and response.transaction == body["settlementTransaction"]
    assert response.payer == account.address
    _assert_paid_once(stack, conn, account, body)
    assert stack.minted(decoy) == 0


def test_a_v1_payment_mints_exactly_once(stack: Stack, conn: Any) -> None:
    account = stack.payer()
    payload = pay_v1(account, stack)
    status, body, headers = post_mint({"X-PAYMENT": encode_payment_signature_header(payload)})
    assert status == 202, body
    response = decode_payment_response_header(headers["X-PAYMENT-RESPONSE"])
    assert response.success and response.network == "anvil"
    _assert_paid_once(stack, conn, account, body)


def test_the_same_payment_replayed_10_times_concurrently_settles_and_mints_once(
    stack: Stack, conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = stack.payer()
    headers = v2_header(pay_v2(account, stack))
    answers = concurrently(stack.database_url, monkeypatch, [lambda: post_mint(headers) for _ in range(10)])
    assert [a[0] for a in answers] == [202] * 10, [a[1] for a in answers]
    assert len({a[1]["queueId"] for a in answers}) == 1
    assert stack.facilitator.broadcasts == 1
    # ... and later, once more, still the same answer without touching the facilitator.
    settles = stack.facilitator.settle_calls
    status, later, _ = post_mint(headers)
    assert (status, later["queueId"]) == (202, answers[0][1]["queueId"])
    assert stack.facilitator.settle_calls == settles
    drain(stack)
    assert stack.minted(account.address) == 1
    assert len(rows(conn, "mint_queue")) == 1
    assert stack.usdc_balance(stack.pay_to) == PRICE


def test_eight_payers_paying_at_once_each_settle_and_mint_once_on_one_facilitator_wallet(
    stack: Stack, conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Concurrent Lambdas, different payments, one settlement wallet: no nonce collides."""
    accounts = [stack.payer() for _ in range(8)]
    headers = [v2_header(pay_v2(a, stack)) for a in accounts]
    answers = concurrently(stack.database_url, monkeypatch, [lambda h=h: post_mint(h) for h in headers])
    assert [a[0] for a in answers] == [202] * 8, [a[1] for a in answers]
    assert [a[1]["payer"] for a in answers] == [a.address for a in accounts]
    assert stack.facilitator.broadcasts == 8
    settled = rows(conn, "payments")
    assert {p["status"] for p in settled} == {"settled"} and len(
        {p["settlement_tx_hash"] for p in settled}
    ) == 8
    drain(stack)
    assert [stack.minted(a.address) for a in accounts] == [1] * 8
    assert stack.usdc_balance(stack.pay_to) == 8 * PRICE
