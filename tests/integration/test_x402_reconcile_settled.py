"""The worker's reconciliation of ``settlement_pending`` x402 payments found settled on chain by
their authorization: under a hash we never learned, with two reconcilers racing, mined while
the reconciler looks just before expiry, and next to a payment the chain cannot answer for.
Each is queued and minted exactly once.

A payment is left pending by a ``/settle`` that fails after (or before) it broadcasts, the way
a timed-out or crashed facilitator would.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from devstack import contracts
from mintq import db, payment_reconciler, payments
from tests.support.chain import run_threads
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
