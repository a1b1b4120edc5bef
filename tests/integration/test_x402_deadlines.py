"""Money: a payer is never left waiting past the invocation's end for the answer that says what
happened. Every call the enqueue makes (verify, settle, the supply read, waiting on a twin) is
bounded by the Lambda context's deadline, and a settle that finds the worker already finished
the payment answers its recorded state.

Through the real enqueue handler, PostgreSQL, anvil with TestUSDC, the local facilitator over
HTTP (behind ``tests.support.slow_http`` when it must be slow or silent) and the real worker.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from devstack.lambdas import FakeContext, load_handler
from mintq import config, db, payments, x402_facilitator
from tests.support.events import REPO_ROOT, http_event
from tests.support.slow_http import SlowHttp
from tests.support.x402_client import pay_v2, post_mint, v2_header
from tests.support.x402_stack import (
    PRICE,
    Stack,
    drain,
    rows,
    stack,
    through_slow_facilitator,
    through_slow_node,
)

pytestmark = pytest.mark.chain
__all__ = ["stack"]  # the fixture, used by name


def assert_nothing_recorded_or_charged(stack: Stack, conn: Any, account: Any) -> None:
    assert rows(conn, "payments") == [] and stack.facilitator.settle_calls == 0
    assert stack.usdc_balance(account.address) == 10 * PRICE


def post_mint_within(headers: dict[str, str], seconds: float) -> tuple[int, dict[str, Any], float]:
    """POST /mint through the handler with a Lambda context of ``seconds``; the answer and the
    context's time left when it came back."""

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


@pytest.mark.parametrize(
    ("upstream", "behaviour", "delay", "seconds"),
    [
        pytest.param("facilitator", "hang", 1.0, 3.0, id="verify-never-answers"),  # 3 s < verify's 5 s
        # httpx's timeouts bound each read, not the answer: an answer trickling in a byte every
        # 0.2 s took as long as the server liked.
        pytest.param("facilitator", "drip", 0.2, 3.0, id="verify-a-byte-every-0.2s"),
        pytest.param("node", "hang", 1.0, 3.0, id="supply-read-never-answers"),
        # The supply read is two round trips (head block, then the supply and receipts at it): they
        # share the time left, so a node answering each after 2.5 s cannot take 5 s of a 4 s invocation.
        pytest.param("node", "delay", 2.5, 4.0, id="supply-read-each-answer-after-2.5s"),
        pytest.param("node", "drip", 0.2, 3.0, id="supply-read-a-byte-every-0.2s"),
    ],
)
def test_a_facilitator_or_node_that_does_not_answer_in_time_is_a_503_inside_the_invocation(
    stack: Stack,
    conn: Any,
    monkeypatch: pytest.MonkeyPatch,
    upstream: str,
    behaviour: str,
    delay: float,
    seconds: float,
) -> None:
    """The enqueue answers 503 before its Lambda context runs out, having recorded and charged
    nothing: ``facilitator_unavailable`` for verify, ``supply_unknown`` for the supply read."""
    account = stack.payer()
    headers = v2_header(pay_v2(account, stack))
    if upstream == "facilitator":
        url, path, code = stack.facilitator.url, "/verify", "facilitator_unavailable"
    else:
        url, path, code = stack.chain_env.rpc_url, "/", "supply_unknown"
    with SlowHttp(url, delay_seconds=delay) as slow:
        slow.on(path, behaviour)
        if upstream == "facilitator":
            through_slow_facilitator(stack, monkeypatch, slow)
        else:
            through_slow_node(monkeypatch, slow)
        status, body, left = post_mint_within(headers, seconds)
    assert left > 0, f"the {upstream} held the enqueue past its timeout"
    assert (status, body["error"]["code"]) == (503, code), body
    assert_nothing_recorded_or_charged(stack, conn, account)


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


def test_a_replay_waiting_on_a_twin_that_is_still_settling_answers_inside_the_invocation(
    stack: Stack, conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The twin holds the settle; the replay answers 'settling' before its own deadline."""
    account = stack.payer()
    headers = v2_header(pay_v2(account, stack))
    with SlowHttp(stack.facilitator.url) as slow:
        slow.on("/settle", "hold")
        through_slow_facilitator(stack, monkeypatch, slow, MINTQ_X402_SETTLE_TIMEOUT_SECONDS="20")
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
