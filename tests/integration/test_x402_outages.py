"""x402 payments when things go wrong outside mintq: no supply left, the facilitator down or
unreachable, a settlement left pending or timed out after broadcasting, and a paid mint that
fails for good (listed as a refund due).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from x402.http import decode_payment_response_header

from devstack.facilitator import Facilitator
from mintq import config, payments, x402_facilitator
from tests.support.events import queue_item
from tests.support.x402_client import pay_v2, post_mint, v2_header
from tests.support.x402_stack import FACILITATOR_KEY, PRICE, Stack, StackWith, drain, rows, stack, stack_with

__all__ = ["stack", "stack_with"]  # fixtures, used by name


def test_when_supply_is_exhausted_nobody_is_charged(
    stack_with: StackWith,
    conn: Any,
) -> None:
    stack = stack_with(max_mints=1)
    first, second = stack.payer(), stack.payer()
    assert post_mint(v2_header(pay_v2(first, stack)))[0] == 202
    status, body, headers = post_mint(v2_header(pay_v2(second, stack)))
    assert (status, body["error"]["code"]) == (410, "supply_exhausted")
    assert "PAYMENT-RESPONSE" not in headers
    assert stack.usdc_balance(second.address) == 10 * PRICE
    assert stack.facilitator.broadcasts == 1
    drain(stack)
    assert stack.minted(first.address) == 1 and stack.minted(second.address) == 0


def test_facilitator_down_is_a_503_with_retry_after_and_charges_nothing(stack: Stack, conn: Any) -> None:
    account = stack.payer()
    headers = v2_header(pay_v2(account, stack))
    stack.facilitator.mode = "down"
    status, body, got = post_mint(headers)
    assert (status, body["error"]["code"], got.get("Retry-After")) == (503, "facilitator_unavailable", "5")
    assert rows(conn, "payments") == [] and stack.usdc_balance(account.address) == 10 * PRICE
    # Unreachable (nothing listening) is the same answer, never a 402.
    stack.facilitator.mode = "up"
    x402_facilitator.reset()
    closed_port = Facilitator(
        rpc_url=stack.chain_env.rpc_url, private_key=FACILITATOR_KEY, network=stack.network
    )
    dead_url = closed_port.url
    closed_port.close()
    real = x402_facilitator._facilitators
    x402_facilitator._facilitators = {
        stack.facilitator.url: x402_facilitator.Facilitator(dead_url, verify_timeout=2, settle_timeout=2)
    }
    try:
        status, body, _ = post_mint(headers)
        assert (status, body["error"]["code"]) == (503, "facilitator_unavailable")
    finally:
        x402_facilitator._facilitators = real
    # Back up: the very same payment goes through.
    status, body, _ = post_mint(headers)
    assert status == 202 and body["paymentStatus"] == "settled"
    assert stack.usdc_balance(account.address) == 9 * PRICE


def test_settlement_pending_is_reconciled_on_chain_into_exactly_one_mint(stack: Stack, conn: Any) -> None:
    account = stack.payer()
    headers = v2_header(pay_v2(account, stack))
    stack.facilitator.mode = "settle_pending"
    status, body, got = post_mint(headers)
    assert status == 202, body
    assert body["paymentStatus"] == "settlement_pending" and body["settlementTransaction"]
    assert decode_payment_response_header(got["PAYMENT-RESPONSE"]).error_reason == "settlement_pending"
    assert rows(conn, "mint_queue") == []
    queue_id = body["queueId"]
    shown = queue_item(queue_id)
    assert shown["status"] == "awaiting_payment" and shown["payment_status"] == "settlement_pending"
    # A replay while pending: same queueId, no second settlement.
    again = post_mint(headers)[1]
    assert again["queueId"] == queue_id and stack.facilitator.broadcasts == 1
    stack.facilitator.mode = "up"
    drain(stack, reconcile=True)
    assert stack.minted(account.address) == 1
    [payment] = rows(conn, "payments")
    assert payment["status"] == "settled" and str(payment["queue_id"]) == queue_id
    assert stack.facilitator.broadcasts == 1
    status, replay, _ = post_mint(headers)
    assert (status, replay["queueId"], replay["paymentStatus"]) == (202, queue_id, "settled")


def test_a_settle_call_that_times_out_after_broadcasting_is_reconciled_without_its_hash(
    stack: Stack, conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINTQ_X402_SETTLE_TIMEOUT_SECONDS", "1")
    config.reset()
    x402_facilitator.reset()
    account = stack.payer()
    stack.facilitator.mode = "settle_hang"
    stack.facilitator.hang_seconds = 3
    status, body, _ = post_mint(v2_header(pay_v2(account, stack)))
    assert status == 202 and body["paymentStatus"] == "settlement_pending"
    assert body["settlementTransaction"] is None
    stack.facilitator.mode = "up"
    drain(stack, reconcile=True)
    assert stack.minted(account.address) == 1
    [payment] = rows(conn, "payments")
    assert payment["status"] == "settled" and payment["settlement_tx_hash"]
    assert stack.usdc_balance(stack.pay_to) == PRICE


def test_a_paid_request_that_fails_for_good_is_listed_as_refund_due(stack: Stack, conn: Any) -> None:
    account = stack.payer()
    status, body, _ = post_mint(v2_header(pay_v2(account, stack)))
    assert status == 202
    conn.execute(
        "UPDATE mint_queue SET status = 'failed', error_message = 'token paused' WHERE id = %(id)s",
        {"id": uuid.UUID(body["queueId"])},
    )
    [refund] = payments.refunds_due(conn)
    assert (refund["payer_address"], refund["amount"], refund["reason"]) == (
        account.address,
        str(PRICE),
        "token paused",
    )
