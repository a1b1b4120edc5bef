"""Money: every final state of a paid request says why, as the status handler shows it: expired
unsettled (not charged), failed for good (refund due) and minted then archived (where).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from eth_account import Account
from web3 import Web3

from devstack import contracts
from mintq import payments
from tests.support.chain import MINTER_KEY, ChainEnv, enqueue_all, fresh_addresses
from tests.support.events import http_event, invoke, queue_item
from tests.support.openapi_bodies import problems
from tests.support.x402_client import pay_v2, pend_without_broadcast, post_mint, v2_header, valid_before
from tests.support.x402_stack import (
    DEPLOYER_KEY,
    PRICE,
    Stack,
    StackWith,
    chain_clock,
    drain,
    reconciler,
    rows,
    stack,
    stack_with,
)

pytestmark = pytest.mark.chain
__all__ = ["chain_clock", "stack", "stack_with"]  # fixtures, used by name

DEPLOYER = Account.from_key(DEPLOYER_KEY).address


def test_a_payment_that_expired_unsettled_shows_failed_with_its_reason(
    stack: Stack, conn: Any, monkeypatch: pytest.MonkeyPatch, chain_clock: Callable[[int], None]
) -> None:
    account = stack.payer()
    headers = v2_header(pay_v2(account, stack))
    queue_id = pend_without_broadcast(stack, monkeypatch, headers)["queueId"]
    assert queue_item(queue_id)["status"] == "awaiting_payment"
    chain_clock(valid_before(headers))
    reconciler(stack)(conn)  # the chain says: unused, and past validBefore
    shown = queue_item(queue_id)
    assert shown["status"] == "failed" and shown["payment_status"] == "failed"
    assert shown["payment_error_reason"] == "authorization_expired_unsettled"
    assert "authorization_expired_unsettled" in shown["error_message"]
    assert "not charged" in shown["error_message"]


def test_a_paid_mint_that_fails_for_good_says_why_and_that_a_refund_is_due(
    stack_with: StackWith,
    w3: Web3,
    chain_env: ChainEnv,
    conn: Any,
) -> None:
    stack = stack_with(max_mints=1)
    account = stack.payer()
    status, body, _ = post_mint(v2_header(pay_v2(account, stack)))
    assert status == 202, body
    # Someone else with the minter role takes the last mint outside the queue.
    token = chain_env.token(stack.token)
    contracts.transact(w3, token.functions.batchMint([stack.payer(funded=0).address]), MINTER_KEY)
    drain(stack)
    shown = queue_item(body["queueId"])
    assert shown["status"] == "failed" and "max supply reached" in shown["error_message"]
    assert shown["payment_status"] == "settled" and shown["refund_due"] is True
    assert problems("GET", "/queue/item/{queueId}", 200, shown) == []  # refund_due is documented
    [refund] = payments.refunds_due(conn)
    assert refund["queue_id"] == uuid.UUID(body["queueId"])
    # ... and the payer's own list says the same.
    status, listed, _ = invoke(
        "status",
        http_event(
            "GET",
            f"/queue/payer/{account.address}",
            route="/queue/payer/{address}",
            path_parameters={"address": account.address},
        ),
    )
    [row] = listed["requests"]
    assert row["status"] == "failed" and row["error_message"] and row["refund_due"] is True
    assert problems("GET", "/queue/payer/{address}", 200, listed) == []


def test_a_minted_and_archived_paid_request_says_where_it_was_minted(stack: Stack, conn: Any) -> None:
    account = stack.payer()
    body = post_mint(v2_header(pay_v2(account, stack)))[1]
    drain(stack)
    conn.execute("DELETE FROM mint_queue WHERE id = %(id)s", {"id": uuid.UUID(body["queueId"])})
    shown = queue_item(body["queueId"])
    assert shown["status"] == "completed" and shown["mint_tx_hash"]
    assert shown["payment_status"] == "settled" and shown["refund_due"] is False
    assert problems("GET", "/queue/item/{queueId}", 200, shown) == []


def test_refunds_due_lists_a_paid_request_that_fails_for_good_at_mint_time_and_no_free_request(
    stack_with: StackWith,
    chain_env: ChainEnv,
    conn: Any,
) -> None:
    stack = stack_with(max_mints=2)
    [free_id] = enqueue_all(conn, fresh_addresses(1))  # a free request already in line
    account = stack.payer()
    status, body, _ = post_mint(v2_header(pay_v2(account, stack)))
    assert status == 202 and body["paymentStatus"] == "settled", body
    # Before the worker gets to them, the token's last mints go elsewhere (another minter).
    token = chain_env.token(stack.token)
    chain_env.admin(stack.token, "grantRole", token.functions.MINTER_ROLE().call(), DEPLOYER)
    chain_env.admin(stack.token, "batchMint", fresh_addresses(2))
    assert token.functions.remainingMints().call() == 0

    drain(stack)
    failed = {r["id"]: r for r in rows(conn, "mint_queue")}
    assert {r["status"] for r in failed.values()} == {"failed"} and len(failed) == 2
    assert stack.minted(account.address) == 0
    [refund] = payments.refunds_due(conn)
    assert refund["payer_address"] == account.address
    assert refund["amount"] == str(PRICE)
    assert refund["reason"].startswith("max supply reached")
    assert refund["reason"] == failed[refund["queue_id"]]["error_message"]
    assert str(refund["queue_id"]) == body["queueId"] and refund["queue_id"] != free_id
    assert refund["asset"] == stack.usdc.address and refund["network"] == stack.network
    assert refund["settlement_tx_hash"] == body["settlementTransaction"]
    assert refund["failed_at"] is not None
    assert stack.usdc_balance(stack.pay_to) == PRICE  # what is owed back
