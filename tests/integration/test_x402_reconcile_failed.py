"""The worker's reconciliation of ``settlement_pending`` x402 payments, where the authorization can
never pay: it expires unused, the payer cancels it, or the payer spends its nonce on another
transfer. The payment fails, nobody is charged and nothing is minted.

Each payment is left pending by a ``/settle`` that dies before broadcasting
(``x402_client.pend_without_broadcast``), as a crashed facilitator would leave it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from eth_account import Account
from eth_account.datastructures import SignedMessage
from eth_account.signers.local import LocalAccount
from web3.exceptions import ContractLogicError
from x402.http import decode_payment_response_header

from devstack import contracts
from mintq import payments, x402_reasons
from tests.support.x402_client import pay_v2, pend_without_broadcast, post_mint, v2_header
from tests.support.x402_stack import (
    DEPLOYER_KEY,
    PRICE,
    Stack,
    chain_clock,
    drain,
    reconciler,
    rows,
    stack,
    the_payment,
    transfer_with_authorization,
)

pytestmark = pytest.mark.chain
__all__ = ["chain_clock", "stack"]  # fixtures, used by name

EXPIRED = "authorization_expired_unsettled"
CANCELED = "authorization_canceled"


def sign_typed(account: LocalAccount, stack: Stack, primary: str, message: dict[str, Any]) -> SignedMessage:
    """An EIP-712 signature in TestUSDC's domain ("USDC", "2")."""
    fields = {
        "CancelAuthorization": [("authorizer", "address"), ("nonce", "bytes32")],
        "TransferWithAuthorization": [
            ("from", "address"),
            ("to", "address"),
            ("value", "uint256"),
            ("validAfter", "uint256"),
            ("validBefore", "uint256"),
            ("nonce", "bytes32"),
        ],
    }[primary]
    return account.sign_typed_data(
        domain_data={
            "name": "USDC",
            "version": "2",
            "chainId": int(stack.w3.eth.chain_id),
            "verifyingContract": stack.usdc.address,
        },
        message_types={primary: [{"name": name, "type": kind} for name, kind in fields]},
        message_data=message,
    )


def assert_never_charged_nor_minted(
    stack: Stack, conn: Any, account: LocalAccount, headers: dict[str, str], reason: str
) -> None:
    payment = the_payment(conn)
    assert (payment["status"], payment["error_reason"]) == ("failed", reason)
    assert rows(conn, "mint_queue") == []
    assert stack.usdc_balance(account.address) == 10 * PRICE
    assert stack.usdc_balance(stack.pay_to) == 0
    assert payments.refunds_due(conn) == []  # never charged: nothing to refund
    # The same payment again: the recorded answer, never a second settlement.
    settles = stack.facilitator.settle_calls
    status, body, got = post_mint(headers)
    assert (status, body["error"]) == (402, x402_reasons.v1_name(reason)), body
    assert decode_payment_response_header(got["PAYMENT-RESPONSE"]).error_reason == x402_reasons.v2_name(
        reason
    )
    assert stack.facilitator.settle_calls == settles
    drain(stack, reconcile=True)
    assert rows(conn, "mint_queue") == []
    assert stack.minted(account.address) == 0


# --- failed: the authorization can never pay ----------------------------------------------------


def test_a_pending_payment_whose_authorization_expires_unused_fails_and_never_mints(
    stack: Stack, conn: Any, monkeypatch: pytest.MonkeyPatch, chain_clock: Callable[[int], None]
) -> None:
    account = stack.payer()
    payload = pay_v2(account, stack)
    headers = v2_header(payload)
    pend_without_broadcast(stack, monkeypatch, headers)
    reconcile = reconciler(stack)

    # Still valid and unused on chain: looked at, and left for the next cycle.
    reconcile(conn)
    payment = the_payment(conn)
    assert payment["status"] == "settlement_pending" and payment["checked_at"] is not None
    assert int(payment["valid_before"]) == int(payload.payload["authorization"]["validBefore"])

    chain_clock(int(payment["valid_before"]))
    # The chain agrees that it can never be used now.
    with pytest.raises(ContractLogicError):
        transfer_with_authorization(
            stack, payload.payload["authorization"], payload.payload["signature"]
        ).call()
    reconcile(conn)
    assert_never_charged_nor_minted(stack, conn, account, headers, EXPIRED)


def test_a_pending_payment_whose_authorization_the_payer_cancelled_fails_and_never_mints(
    stack: Stack, conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = stack.payer()
    payload = pay_v2(account, stack)
    headers = v2_header(payload)
    pend_without_broadcast(stack, monkeypatch, headers)
    nonce = bytes.fromhex(payload.payload["authorization"]["nonce"][2:])
    signed = sign_typed(
        account, stack, "CancelAuthorization", {"authorizer": account.address, "nonce": nonce}
    )
    contracts.transact(
        stack.w3,
        stack.usdc.functions.cancelAuthorization(
            account.address, nonce, signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")
        ),
        DEPLOYER_KEY,  # anyone may submit the payer's signed cancellation
    )
    assert stack.usdc.functions.authorizationState(account.address, nonce).call() is True

    reconciler(stack)(conn)
    assert_never_charged_nor_minted(stack, conn, account, headers, CANCELED)


def test_a_pending_payment_whose_nonce_was_used_for_another_transfer_is_not_settled(
    stack: Stack, conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = stack.payer()
    payload = pay_v2(account, stack)
    pend_without_broadcast(stack, monkeypatch, v2_header(payload))
    # The payer spends the same EIP-3009 nonce on a 1-unit transfer to an address of their own.
    auth = dict(payload.payload["authorization"]) | {"to": Account.create().address, "value": "1"}
    message = {
        "from": account.address,
        "to": auth["to"],
        "value": 1,
        "validAfter": int(auth["validAfter"]),
        "validBefore": int(auth["validBefore"]),
        "nonce": bytes.fromhex(auth["nonce"][2:]),
    }
    signature = "0x" + bytes(sign_typed(account, stack, "TransferWithAuthorization", message).signature).hex()
    contracts.transact(stack.w3, transfer_with_authorization(stack, auth, signature), DEPLOYER_KEY)
    assert stack.usdc_balance(stack.pay_to) == 0  # mintq was never paid

    reconciler(stack)(conn)
    assert the_payment(conn)["status"] == "failed"
    assert rows(conn, "mint_queue") == []
