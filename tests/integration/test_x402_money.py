"""Money: a payer is never invited to pay twice, never charged for a mint that cannot happen,
and never left waiting past the invocation's end for the answer that says what happened.

Through the real enqueue and status handlers, PostgreSQL, anvil with TestUSDC, the local
facilitator over HTTP (behind ``tests.support.slow_http`` when it must be slow or silent),
and the real worker.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from web3 import Web3
from x402.http import encode_payment_signature_header

from devstack import contracts
from devstack.lambdas import FakeContext, load_handler
from mintq import config, controls, db, payments, x402_facilitator, x402_payment
from tests.integration.test_x402 import (
    PRICE,
    Stack,
    _deploy_stack,
    challenge,
    drain,
    pay_v1,
    pay_v2,
    post_mint,
    rows,
    v2_header,
)
from tests.integration.test_x402_reconcile import chain_clock, pend_without_broadcast, reconciler
from tests.support.chain import MINTER_KEY, ChainEnv
from tests.support.events import REPO_ROOT, concurrently, http_event, invoke
from tests.support.openapi_bodies import problems
from tests.support.slow_http import SlowHttp

pytestmark = pytest.mark.chain
__all__ = ["chain_clock"]  # a fixture, used by name


@pytest.fixture
def stack(
    w3: Web3, chain_env: ChainEnv, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Stack]:
    yield from _deploy_stack(w3, chain_env, database_url, monkeypatch, max_mints=1000)


def valid_before(headers: dict[str, str]) -> int:
    from x402.http import decode_payment_signature_header

    value = next(iter(headers.values()))
    return int(decode_payment_signature_header(value).payload["authorization"]["validBefore"])


def clock_at(monkeypatch: pytest.MonkeyPatch, unix_seconds: float) -> None:
    """The clock ``x402_payment.check_terms`` reads, moved (the facilitator and chain keep theirs)."""
    monkeypatch.setattr(x402_payment, "time", SimpleNamespace(time=lambda: unix_seconds))


def item(queue_id: str) -> dict[str, Any]:
    status, body, _ = invoke(
        "status",
        http_event(
            "GET",
            f"/queue/item/{queue_id}",
            route="/queue/item/{queueId}",
            path_parameters={"queueId": queue_id},
        ),
    )
    assert status == 200, body
    return body


def through_slow_facilitator(stack: Stack, monkeypatch: pytest.MonkeyPatch, slow: SlowHttp) -> None:
    monkeypatch.setenv("MINTQ_X402_FACILITATOR_URL", slow.url)
    config.reset()
    x402_facilitator.reset()


def through_slow_node(monkeypatch: pytest.MonkeyPatch, slow: SlowHttp) -> None:
    monkeypatch.setenv("MINTQ_RPC_URL", slow.url)
    config.reset()


def assert_nothing_recorded_or_charged(stack: Stack, conn: Any, account: Any) -> None:
    assert rows(conn, "payments") == [] and stack.facilitator.settle_calls == 0
    assert stack.usdc_balance(account.address) == 10 * PRICE


# --- 1. a known payment always gets its first answer ------------------------------------------


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


# --- 2. never charged for a mint that cannot happen --------------------------------------------


def test_three_payers_racing_for_the_last_mint_while_the_worker_mints_only_one_is_charged(
    w3: Web3, chain_env: ChainEnv, database_url: str, monkeypatch: pytest.MonkeyPatch, conn: Any
) -> None:
    """3 mints left, 2 paid mints queued; three payers pay at once while verify is slow and the
    worker confirms the queued two meanwhile: one mint is left, so one payer is charged."""
    for stack in _deploy_stack(w3, chain_env, database_url, monkeypatch, max_mints=3):
        queued = [stack.payer(), stack.payer()]
        for account in queued:
            assert post_mint(v2_header(pay_v2(account, stack)))[0] == 202
        racers = [stack.payer() for _ in range(3)]
        headers = [v2_header(pay_v2(a, stack)) for a in racers]

        with SlowHttp(stack.facilitator.url) as slow:
            slow.on("/verify", "hold")
            through_slow_facilitator(stack, monkeypatch, slow)
            monkeypatch.setenv("MINTQ_X402_VERIFY_TIMEOUT_SECONDS", "60")
            config.reset()
            answers: list[Any] = []
            calls = [lambda h=h: post_mint(h) for h in headers]

            def race(calls: list[Callable[[], Any]] = calls, answers: list[Any] = answers) -> None:
                answers.extend(concurrently(database_url, monkeypatch, calls))

            racing = threading.Thread(target=race)
            racing.start()
            assert slow.wait_arrivals("/verify", 3), "the three payments never reached verify"
            drain(stack)  # the worker confirms the two queued mints while verify is held
            assert [stack.minted(a.address) for a in queued] == [1, 1]
            slow.release()
            racing.join(60)
            assert not racing.is_alive()

        statuses = sorted(a[0] for a in answers)
        assert statuses == [202, 410, 410], [a[1] for a in answers]
        refused = [a for a, answer in zip(racers, answers, strict=True) if answer[0] == 410]
        assert all(answer[1]["error"]["code"] == "supply_exhausted" for answer in answers if answer[0] == 410)
        assert [stack.usdc_balance(a.address) for a in refused] == [10 * PRICE, 10 * PRICE]
        assert stack.usdc_balance(stack.pay_to) == 3 * PRICE
        drain(stack)
        assert sum(stack.minted(a.address) for a in [*queued, *racers]) == 3
        assert payments.refunds_due(conn) == []
        assert (
            conn.execute("SELECT count(*) AS n FROM mint_queue WHERE status = 'failed'").fetchone()["n"] == 0
        )


def test_mints_the_chain_took_but_the_worker_has_not_recorded_are_counted_once(
    w3: Web3, chain_env: ChainEnv, database_url: str, monkeypatch: pytest.MonkeyPatch, conn: Any
) -> None:
    """The worker broadcasts a batch of 2 (of 3) and dies before recording its receipt: the
    chain has 1 mint left and the database still has 2 requests in flight. One more payer
    fits (1 left on chain, the 2 in flight already taken there), a second does not."""
    for stack in _deploy_stack(w3, chain_env, database_url, monkeypatch, max_mints=3):
        queued = [stack.payer(), stack.payer()]
        for account in queued:
            assert post_mint(v2_header(pay_v2(account, stack)))[0] == 202

        def die_after_broadcast(point: str) -> None:
            if point == "after_broadcast":
                raise WorkerDied(point)

        doomed = chain_env.worker(database_url, stack.token, fault=die_after_broadcast)
        try:
            with pytest.raises(WorkerDied):
                doomed.cycle(time.monotonic() + 20)
        finally:
            doomed.conn.close()
        assert [stack.minted(a.address) for a in queued] == [1, 1]  # mined, not recorded
        in_flight = conn.execute(
            "SELECT count(*) AS n FROM mint_queue WHERE status = 'processing'"
        ).fetchone()
        assert in_flight["n"] == 2

        third, fourth = stack.payer(), stack.payer()
        status, body, _ = post_mint(v2_header(pay_v2(third, stack)))
        assert status == 202, body
        status, body, _ = post_mint(v2_header(pay_v2(fourth, stack)))
        assert (status, body["error"]["code"]) == (410, "supply_exhausted"), body
        assert stack.usdc_balance(fourth.address) == 10 * PRICE

        drain(stack)
        assert [stack.minted(a.address) for a in [*queued, third, fourth]] == [1, 1, 1, 0]
        assert payments.refunds_due(conn) == []


def test_a_payer_at_the_cap_is_refused_before_being_charged(stack: Stack, conn: Any) -> None:
    """The cap counts the payer's paid requests in line: a payer at it is refused (429) at the
    admission, after verify and before settlement, and is let in again once the line moves."""
    controls.set_setting(conn, "max_pending_per_payer", "1")
    account = stack.payer()
    assert post_mint(v2_header(pay_v2(account, stack)))[0] == 202
    settles = stack.facilitator.settle_calls
    status, body, headers = post_mint(v2_header(pay_v2(account, stack)))
    assert (status, body["error"]["code"]) == (429, "payer_limit_reached"), body
    assert "PAYMENT-RESPONSE" not in headers and "PAYMENT-REQUIRED" not in headers
    assert stack.facilitator.settle_calls == settles
    assert stack.usdc_balance(account.address) == 9 * PRICE
    assert len(rows(conn, "payments")) == 1
    drain(stack)
    status, body, _ = post_mint(v2_header(pay_v2(account, stack)))  # minted: room again
    assert status == 202 and body["paymentStatus"] == "settled", body
    assert stack.usdc_balance(account.address) == 8 * PRICE


class WorkerDied(Exception):
    """The worker's process ends at a fault point (nothing in the worker catches it)."""


# --- 3. every final state says why -------------------------------------------------------------


def test_a_payment_that_expired_unsettled_shows_failed_with_its_reason(
    stack: Stack, conn: Any, monkeypatch: pytest.MonkeyPatch, chain_clock: Callable[[int], None]
) -> None:
    account = stack.payer()
    headers = v2_header(pay_v2(account, stack))
    queue_id = pend_without_broadcast(stack, monkeypatch, headers)["queueId"]
    assert item(queue_id)["status"] == "awaiting_payment"
    chain_clock(valid_before(headers))
    reconciler(stack)(conn)  # the chain says: unused, and past validBefore
    shown = item(queue_id)
    assert shown["status"] == "failed" and shown["payment_status"] == "failed"
    assert shown["payment_error_reason"] == "authorization_expired_unsettled"
    assert "authorization_expired_unsettled" in shown["error_message"]
    assert "not charged" in shown["error_message"]


def test_a_paid_mint_that_fails_for_good_says_why_and_that_a_refund_is_due(
    w3: Web3, chain_env: ChainEnv, database_url: str, monkeypatch: pytest.MonkeyPatch, conn: Any
) -> None:
    for stack in _deploy_stack(w3, chain_env, database_url, monkeypatch, max_mints=1):
        account = stack.payer()
        status, body, _ = post_mint(v2_header(pay_v2(account, stack)))
        assert status == 202, body
        # Someone else with the minter role takes the last mint outside the queue.
        token = chain_env.token(stack.token)
        contracts.transact(w3, token.functions.batchMint([stack.payer(funded=0).address]), MINTER_KEY)
        drain(stack)
        shown = item(body["queueId"])
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
    shown = item(body["queueId"])
    assert shown["status"] == "completed" and shown["mint_tx_hash"]
    assert shown["payment_status"] == "settled" and shown["refund_due"] is False
    assert problems("GET", "/queue/item/{queueId}", 200, shown) == []


# --- 4. every call bounded by the invocation's deadline ----------------------------------------


def post_mint_within(headers: dict[str, str], seconds: float) -> tuple[int, dict[str, Any], float]:
    """POST /mint through the handler with a Lambda context of ``seconds``; the answer and the
    context's time left when it came back."""
    import json

    handler = load_handler(REPO_ROOT / "functions" / "enqueue")
    context = FakeContext(function_name="enqueue", timeout_s=seconds)
    result = handler(http_event("POST", "/mint", body={}, headers=headers), context)
    return result["statusCode"], json.loads(result["body"]), context.get_remaining_time_in_millis() / 1000


@pytest.mark.parametrize("answer", ["settle_refused", "settlement_pending", "unreachable"])
def test_a_settle_answer_that_finds_the_payment_finished_by_the_worker_answers_its_recorded_state(
    stack: Stack, conn: Any, database_url: str, monkeypatch: pytest.MonkeyPatch, answer: str
) -> None:
    """The request records the facilitator's answer with a guarded move (settling or pending
    only); when the worker finished the payment first (its lease ran out while settle was in
    flight) the move finds nothing, and the answer is the payment's durable state, never a
    402 for a payment that was settled."""
    from x402.schemas import SettleResponse

    account = stack.payer()
    headers = v2_header(pay_v2(account, stack))
    real = x402_facilitator.facilitator(config.load().x402)  # type: ignore[arg-type]

    class WorkerWinsTheRace:
        verify = real.verify

        def settle(self, payment: Any, requirements: Any, timeout: float | None = None) -> Any:
            with db.connect(database_url) as worker:  # the reconciler, on its own connection
                [row] = worker.execute("SELECT id FROM payments").fetchall()
                assert payments.finish_settled(worker, row["id"], "0x" + "ab" * 32) is not None
            if answer == "unreachable":  # never sent: the request would forget the payment
                raise x402_facilitator.FacilitatorUnreachable("settle: ConnectError")
            reason = "invalid_transaction_state" if answer == "settle_refused" else answer
            return SettleResponse(success=False, error_reason=reason, transaction="", network="eip155:84532")

    monkeypatch.setattr(x402_facilitator, "facilitator", lambda terms: WorkerWinsTheRace())
    status, body, got = post_mint(headers)
    [payment] = rows(conn, "payments")
    assert (status, body.get("paymentStatus"), payment["status"]) == (202, "settled", "settled"), body
    assert body["queueId"] == str(payment["queue_id"]) and "PAYMENT-REQUIRED" not in got


def test_a_verify_that_never_answers_is_a_503_inside_the_invocation_and_charges_nothing(
    stack: Stack, conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = stack.payer()
    headers = v2_header(pay_v2(account, stack))
    with SlowHttp(stack.facilitator.url) as silent:
        silent.on("/verify", "hang")
        through_slow_facilitator(stack, monkeypatch, silent)
        status, body, left = post_mint_within(headers, 3.0)  # less than verify's own 5 s
    assert (status, body["error"]["code"]) == (503, "facilitator_unavailable"), body
    assert left > 0
    assert rows(conn, "payments") == [] and stack.usdc_balance(account.address) == 10 * PRICE


def test_a_slow_verify_and_a_lost_settle_answer_settlement_pending_in_time_and_the_worker_mints_it(
    stack: Stack, conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """verify 5 s + settle 7 s do not fit a 6 s invocation: settle gets what is left."""
    account = stack.payer()
    headers = v2_header(pay_v2(account, stack))
    with SlowHttp(stack.facilitator.url, delay_seconds=2.0) as slow:
        slow.on("/verify", "delay")
        slow.on("/settle", "lose")  # reaches the facilitator (which broadcasts), answer lost
        through_slow_facilitator(stack, monkeypatch, slow)
        status, body, left = post_mint_within(headers, 6.0)
        assert slow.forwarded["/settle"] == 1
    assert status == 202 and body["paymentStatus"] == "settlement_pending", body
    assert left > 0
    [payment] = rows(conn, "payments")
    assert payment["status"] == "settlement_pending"
    monkeypatch.setenv("MINTQ_X402_FACILITATOR_URL", stack.facilitator.url)
    config.reset()
    drain(stack, reconcile=True)
    assert stack.minted(account.address) == 1 and stack.usdc_balance(account.address) == 9 * PRICE
    assert stack.facilitator.broadcasts == 1


def test_a_chain_that_never_answers_the_supply_read_is_a_503_inside_the_invocation(
    stack: Stack, conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = stack.payer()
    headers = v2_header(pay_v2(account, stack))
    with SlowHttp(stack.chain_env.rpc_url) as silent_node:
        silent_node.on("/", "hang")
        through_slow_node(monkeypatch, silent_node)
        status, body, left = post_mint_within(headers, 3.0)
    assert (status, body["error"]["code"]) == (503, "supply_unknown"), body
    assert left > 0
    assert_nothing_recorded_or_charged(stack, conn, account)


def test_a_slow_node_cannot_stretch_the_supply_read_past_the_invocation(
    stack: Stack, conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The supply read is two round trips (head block, then the supply and receipts at it): they
    share the time left, so a node answering each after 2.5 s cannot take 5 s of a 4 s invocation."""
    account = stack.payer()
    headers = v2_header(pay_v2(account, stack))
    with SlowHttp(stack.chain_env.rpc_url, delay_seconds=2.5) as slow_node:
        slow_node.on("/", "delay")
        through_slow_node(monkeypatch, slow_node)
        status, body, left = post_mint_within(headers, 4.0)
    assert left > 0, "the supply read held the enqueue past its timeout"
    assert (status, body["error"]["code"]) == (503, "supply_unknown"), body
    assert_nothing_recorded_or_charged(stack, conn, account)


def test_a_facilitator_or_node_answering_a_byte_at_a_time_cannot_hold_the_enqueue(
    stack: Stack, conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """httpx's timeouts bound each read, not the answer: a verify answer (or a supply read)
    trickling in a byte every 0.2 s took as long as the server liked. Each ends in time now."""
    account = stack.payer()
    headers = v2_header(pay_v2(account, stack))
    with SlowHttp(stack.facilitator.url, delay_seconds=0.2) as dripping:
        dripping.on("/verify", "drip")
        through_slow_facilitator(stack, monkeypatch, dripping)
        status, body, left = post_mint_within(headers, 3.0)
    assert left > 0, "a trickling verify answer held the enqueue past its timeout"
    assert (status, body["error"]["code"]) == (503, "facilitator_unavailable"), body
    monkeypatch.setenv("MINTQ_X402_FACILITATOR_URL", stack.facilitator.url)
    with SlowHttp(stack.chain_env.rpc_url, delay_seconds=0.2) as dripping_node:
        dripping_node.on("/", "drip")
        through_slow_node(monkeypatch, dripping_node)
        x402_facilitator.reset()
        status, body, left = post_mint_within(headers, 3.0)
    assert left > 0, "a trickling node held the enqueue past its timeout"
    assert (status, body["error"]["code"]) == (503, "supply_unknown"), body
    assert_nothing_recorded_or_charged(stack, conn, account)


def test_a_replay_waiting_on_a_twin_that_is_still_settling_answers_inside_the_invocation(
    stack: Stack, conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The twin holds the settle; the replay answers 'settling' before its own deadline."""
    account = stack.payer()
    headers = v2_header(pay_v2(account, stack))
    with SlowHttp(stack.facilitator.url) as slow:
        slow.on("/settle", "hold")
        through_slow_facilitator(stack, monkeypatch, slow)
        monkeypatch.setenv("MINTQ_X402_SETTLE_TIMEOUT_SECONDS", "20")
        config.reset()
        twin: list[Any] = []
        first = threading.Thread(target=lambda: twin.append(post_mint(headers)))
        first.start()
        assert slow.wait_arrivals("/settle", 1)
        started = time.monotonic()
        status, body, left = post_mint_within(headers, 3.0)
        assert time.monotonic() - started < 3.0
        slow.release()
        first.join(30)
    assert status == 202 and body["paymentStatus"] == "settling", body
    assert left > 0
    assert twin[0][0] == 202 and twin[0][1]["queueId"] == body["queueId"]
