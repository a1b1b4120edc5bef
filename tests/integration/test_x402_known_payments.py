"""Money: a payer is never invited to pay twice. A payment mintq has taken gets its first answer
again, after its authorization's window closed or the deployment's terms changed.

Through the real enqueue and status handlers, PostgreSQL, anvil with TestUSDC, the local
facilitator over HTTP and the real worker.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from x402.http import encode_payment_signature_header

from mintq import config, controls, x402_payment
from tests.support.x402_client import challenge, pay_v1, pay_v2, post_mint, v2_header, valid_before
from tests.support.x402_stack import PRICE, Stack, drain, stack

pytestmark = pytest.mark.chain
__all__ = ["stack"]  # the fixture, used by name


def clock_at(monkeypatch: pytest.MonkeyPatch, unix_seconds: float) -> None:
    """The clock ``x402_payment.check_terms`` reads, moved (the facilitator and chain keep theirs)."""
    monkeypatch.setattr(x402_payment, "time", SimpleNamespace(time=lambda: unix_seconds))


def test_a_settled_payment_replayed_after_valid_before_gets_its_first_answer(
    stack: Stack, conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = stack.payer()
    headers = v2_header(pay_v2(account, stack))
    status, first, _ = post_mint(headers)
    assert status == 202 and first["paymentStatus"] == "settled", first
    settles = stack.facilitator.settle_calls

    clock_at(monkeypatch, valid_before(headers) + 3600)  # long past the authorization's window
    status, again, got = post_mint(headers)
    assert status == 202, again  # not a 402 inviting the payer to pay a second time
    assert (again["queueId"], again["paymentStatus"]) == (first["queueId"], "settled")
    assert "PAYMENT-REQUIRED" not in got
    assert stack.facilitator.settle_calls == settles
    assert stack.usdc_balance(account.address) == 9 * PRICE

    drain(stack)
    status, archived, _ = post_mint(headers)  # minted now: still the same answer
    assert (status, archived["queueId"]) == (202, first["queueId"])
    assert stack.minted(account.address) == 1 and stack.usdc_balance(stack.pay_to) == PRICE


def test_a_settlement_pending_payment_replayed_after_valid_before_stays_pending_then_settles(
    stack: Stack, conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = stack.payer()
    headers = v2_header(pay_v2(account, stack))
    stack.facilitator.mode = "settle_pending"  # broadcast, answer "pending"
    status, first, _ = post_mint(headers)
    assert status == 202 and first["paymentStatus"] == "settlement_pending", first
    stack.facilitator.mode = "up"

    with monkeypatch.context() as patch:
        clock_at(patch, valid_before(headers) + 3600)
        status, again, got = post_mint(headers)
    assert status == 202, again
    assert (again["queueId"], again["paymentStatus"]) == (first["queueId"], "settlement_pending")
    assert "PAYMENT-REQUIRED" not in got
    assert stack.facilitator.broadcasts == 1

    drain(stack, reconcile=True)
    with monkeypatch.context() as patch:
        clock_at(patch, valid_before(headers) + 3600)
        status, settled, _ = post_mint(headers)
    assert (status, settled["queueId"], settled["paymentStatus"]) == (202, first["queueId"], "settled")
    assert stack.minted(account.address) == 1 and stack.usdc_balance(account.address) == 9 * PRICE


def test_a_known_payment_gets_its_first_answer_after_the_terms_change(
    stack: Stack, conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """New price, payTo, asset or network, a dropped v1 network, no supply, a facilitator that
    is down: none of them turns a payment that was taken into a fresh 402."""
    v2_payer, v1_payer = stack.payer(), stack.payer()
    v2 = v2_header(pay_v2(v2_payer, stack))
    v1 = {"X-PAYMENT": encode_payment_signature_header(pay_v1(v1_payer, stack))}
    answers = {name: post_mint(h)[1] for name, h in (("v2", v2), ("v1", v1))}
    assert {a["paymentStatus"] for a in answers.values()} == {"settled"}, answers

    for name, value in {
        "MINTQ_X402_PRICE": str(PRICE * 2),
        "MINTQ_X402_PAY_TO": stack.payer(funded=0).address,
        "MINTQ_X402_ASSET": stack.token,
        "MINTQ_X402_NETWORK": "eip155:84532",
        "MINTQ_X402_V1_NETWORK": "",
        "MINTQ_TOKEN_ADDRESS": stack.payer(funded=0).address,  # no remainingMints(): supply unknown
    }.items():
        monkeypatch.setenv(name, value)
    config.reset()
    stack.facilitator.mode = "down"
    controls.pause(conn, close_api=True)  # closed to new requests, not to answering known ones
    # The API is really closed, and the terms really changed: new payments are refused.
    new_payment = v2_header(pay_v2(stack.payer(), stack, challenge_before_change(stack, conn)))
    status, body, _ = post_mint(new_payment)
    assert (status, body["error"]["code"]) == (503, "api_closed"), body
    for name, headers in (("v2", v2), ("v1", v1)):
        status, again, _ = post_mint(headers)
        assert status == 202, (name, again)
        assert (again["queueId"], again["paymentStatus"]) == (answers[name]["queueId"], "settled")
    controls.resume(conn)
    status, body, _ = post_mint(new_payment)
    assert status == 402, body
    assert stack.usdc_balance(stack.pay_to) == 2 * PRICE


def challenge_before_change(stack: Stack, conn: Any) -> Any:
    """The terms a client cached before the deployment changed them."""
    controls.resume(conn)
    required, _ = challenge()
    controls.pause(conn, close_api=True)
    required.accepts[0].amount = str(PRICE)
    required.accepts[0].network = stack.network
    required.accepts[0].asset = stack.usdc.address
    return required
