"""The worker's reconciliation of ``settlement_pending`` x402 payments, branch by branch, against
the chain: an authorization that expires unused, one the payer cancels, one settled under a hash
we never learned, two reconcilers racing, and the refunds list for paid mints that fail for good.

Built on test_x402's stack (PostgreSQL, anvil with TestUSDC, the local facilitator over HTTP, the
x402 package's own client); a payment is left pending by making ``/settle`` fail after (or before)
it broadcasts, the way a timed-out or crashed facilitator would.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from eth_account import Account
from eth_account.datastructures import SignedMessage
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import ContractLogicError
from x402.http import decode_payment_response_header

from devstack import contracts
from mintq import db, payment_reconciler, payments, x402_reasons
from tests.integration.test_x402 import (
    DEPLOYER_KEY,
    PRICE,
    Stack,
    _deploy_stack,
    drain,
    pay_v2,
    post_mint,
    rows,
    transfer_with_authorization,
    v2_header,
)
from tests.support.chain import ChainEnv, enqueue_all, fresh_addresses, run_threads

pytestmark = pytest.mark.chain

DEPLOYER = Account.from_key(DEPLOYER_KEY).address
EXPIRED = "authorization_expired_unsettled"
CANCELED = "authorization_canceled"


@pytest.fixture
def stack(
    w3: Web3, chain_env: ChainEnv, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Stack]:
    yield from _deploy_stack(w3, chain_env, database_url, monkeypatch, max_mints=1000)


@pytest.fixture
def chain_clock(w3: Web3) -> Iterator[Callable[[int], None]]:
    """``advance_past(t)`` mines a block later than unix time ``t``; the wall clock comes back after."""

    def advance_past(timestamp: int) -> None:
        latest = int(w3.eth.get_block("latest")["timestamp"])
        w3.provider.make_request("evm_increaseTime", [max(timestamp - latest, 0) + 1])  # type: ignore[arg-type]
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

    yield advance_past
    # anvil serves the whole session: later tests sign with wall-clock validity windows.
    w3.provider.make_request("evm_setTime", [int(time.time())])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


# --- helpers -----------------------------------------------------------------------------------


def reconciler(stack: Stack) -> payment_reconciler.Reconciler:
    return payment_reconciler.Reconciler(stack.chain_env.rpc_url, min_interval_seconds=0)


def the_payment(conn: Any) -> dict[str, Any]:
    [payment] = rows(conn, "payments")
    return payment


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


# --- settled: found on chain by its authorization -----------------------------------------------


@pytest.mark.parametrize("answer", ["a hash that never reached the chain", "no hash at all"])
def test_a_pending_payment_settled_on_chain_under_a_hash_unknown_to_us_queues_and_mints_once(
    stack: Stack, conn: Any, monkeypatch: pytest.MonkeyPatch, answer: str
) -> None:
    account = stack.payer()
    headers = v2_header(pay_v2(account, stack))
    real_settle = stack.facilitator.settle
    broadcast: list[str] = []
    bogus = "0x" + os.urandom(32).hex()

    def lost_hash(body: dict[str, Any]) -> dict[str, Any]:
        settled = real_settle(body)  # broadcasts and mines the transfer
        broadcast.append(settled["transaction"])
        if answer == "no hash at all":
            raise RuntimeError("simulated: the facilitator crashed after broadcasting")
        # e.g. the facilitator replaced its transaction (fee bump) after answering.
        return settled | {"success": False, "errorReason": "settlement_pending", "transaction": bogus}

    with monkeypatch.context() as patch:
        patch.setattr(stack.facilitator, "settle", lost_hash)
        status, body, _ = post_mint(headers)
    assert status == 202 and body["paymentStatus"] == "settlement_pending", body
    assert body["settlementTransaction"] == (bogus if answer.startswith("a hash") else None)
    [real_hash] = broadcast
    assert stack.usdc_balance(stack.pay_to) == PRICE  # charged on chain
    assert rows(conn, "mint_queue") == []

    reconcile = reconciler(stack)
    reconcile(conn)
    reconcile(conn)  # and again: nothing more
    payment = the_payment(conn)
    assert payment["status"] == "settled" and payment["settlement_tx_hash"] == real_hash
    [queued] = rows(conn, "mint_queue")
    assert (queued["id"], queued["payment_id"]) == (payment["queue_id"], payment["id"])
    assert str(payment["queue_id"]) == body["queueId"]

    drain(stack, reconcile=True)
    assert stack.minted(account.address) == 1
    assert len(rows(conn, "mint_queue")) == 1
    assert stack.facilitator.broadcasts == 1
    status, replay, _ = post_mint(headers)
    assert (status, replay["queueId"], replay["paymentStatus"]) == (202, body["queueId"], "settled")
    assert replay["settlementTransaction"] == real_hash


def test_two_reconcilers_racing_on_the_same_pending_payment_queue_exactly_one_mint(
    stack: Stack, conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = stack.payer()
    stack.facilitator.mode = "settle_pending"
    status, body, _ = post_mint(v2_header(pay_v2(account, stack)))
    stack.facilitator.mode = "up"
    assert status == 202 and body["paymentStatus"] == "settlement_pending", body

    # Both read the chain's verdict first, then both try to apply it at the same moment.
    barrier = threading.Barrier(2)

    class Lockstep(payment_reconciler.Reconciler):
        def check(self, row: dict[str, Any]) -> payment_reconciler.Outcome | None:
            outcome = super().check(row)
            barrier.wait(timeout=10)
            return outcome

    finished: list[object] = []
    real_finish = payments.finish_settled

    def counting(conn: Any, payment_id: uuid.UUID, tx_hash: str | None) -> Any:
        result = real_finish(conn, payment_id, tx_hash)
        finished.append(result)
        return result

    monkeypatch.setattr(payments, "finish_settled", counting)
    connections = [db.connect(stack.database_url) for _ in range(2)]
    try:
        workers = [Lockstep(stack.chain_env.rpc_url, min_interval_seconds=0) for _ in connections]
        run_threads([lambda w=w, c=c: w(c) for w, c in zip(workers, connections, strict=True)])
    finally:
        for c in connections:
            c.close()
    assert len(finished) == 2 and sum(r is not None for r in finished) == 1
    payment = the_payment(conn)
    assert payment["status"] == "settled" and payment["settlement_tx_hash"] == body["settlementTransaction"]
    [queued] = rows(conn, "mint_queue")
    assert str(queued["id"]) == body["queueId"]
    drain(stack, reconcile=True)
    assert stack.minted(account.address) == 1 and len(rows(conn, "mint_queue")) == 1


# --- refunds ------------------------------------------------------------------------------------


def test_refunds_due_lists_a_paid_request_that_fails_for_good_at_mint_time_and_no_free_request(
    w3: Web3, chain_env: ChainEnv, database_url: str, monkeypatch: pytest.MonkeyPatch, conn: Any
) -> None:
    for stack in _deploy_stack(w3, chain_env, database_url, monkeypatch, max_mints=2):
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


# --- regressions: bugs this file found ---------------------------------------------------------------------------------


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


def test_a_settlement_mined_while_the_reconciler_looks_just_before_expiry_is_not_failed(
    stack: Stack, conn: Any, monkeypatch: pytest.MonkeyPatch, chain_clock: Callable[[int], None]
) -> None:
    account = stack.payer()
    payload = pay_v2(account, stack)
    pend_without_broadcast(stack, monkeypatch, v2_header(payload))
    reconcile = reconciler(stack)
    real_get_block = reconcile.w3.eth.get_block

    def blocks_arrive_meanwhile(*args: Any, **kwargs: Any) -> Any:
        # Between authorizationState (unused) and this read, the chain moves on: the settlement
        # lands in a block before validBefore, then a block past validBefore is mined.
        auth = payload.payload["authorization"]
        contracts.transact(
            stack.w3, transfer_with_authorization(stack, auth, payload.payload["signature"]), DEPLOYER_KEY
        )
        chain_clock(int(auth["validBefore"]))
        return real_get_block(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(reconcile.w3.eth, "get_block", blocks_arrive_meanwhile)
        reconcile(conn)
    assert stack.usdc_balance(stack.pay_to) == PRICE  # the payer was charged
    assert the_payment(conn)["status"] != "failed"
    reconcile(conn)
    assert the_payment(conn)["status"] == "settled"
    assert len(rows(conn, "mint_queue")) == 1


def test_a_payment_the_chain_cannot_answer_for_does_not_hold_up_the_others(
    stack: Stack, conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    stuck, fine = stack.payer(), stack.payer()
    real_settle = stack.facilitator.settle

    def broadcast_then_crash(body: dict[str, Any]) -> dict[str, Any]:
        real_settle(body)  # the transfer is mined; the answer is lost
        raise RuntimeError("simulated: the facilitator crashed after broadcasting")

    with monkeypatch.context() as patch:
        patch.setattr(stack.facilitator, "settle", broadcast_then_crash)
        for account in (stuck, fine):
            status, body, _ = post_mint(v2_header(pay_v2(account, stack)))
            assert status == 202 and body["paymentStatus"] == "settlement_pending", body
    by_payer = {p["payer_address"]: p for p in rows(conn, "payments")}
    reconcile = reconciler(stack)
    real_check = reconcile.check

    def check(row: dict[str, Any]) -> Any:
        if row["id"] == by_payer[stuck.address]["id"]:
            raise ValueError("simulated: the provider refuses this log range")
        return real_check(row)

    monkeypatch.setattr(reconcile, "check", check)
    reconcile(conn)  # no exception: the bad one is looked at again later, the other is settled
    after = {p["payer_address"]: p for p in rows(conn, "payments")}
    assert after[fine.address]["status"] == "settled"
    assert after[stuck.address]["status"] == "settlement_pending"
    assert after[stuck.address]["checked_at"] is not None
    monkeypatch.setattr(reconcile, "check", real_check)
    reconcile(conn)
    assert {p["status"] for p in rows(conn, "payments")} == {"settled"}
