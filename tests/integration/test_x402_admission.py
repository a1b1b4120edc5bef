"""Money: a payer is never charged for a mint that cannot happen. Payers racing for the last
mints, mints the chain took but the worker never recorded, and the per-payer cap are all
decided before settlement.

Through the real enqueue handler, PostgreSQL, anvil with TestUSDC, the local facilitator over
HTTP (behind ``tests.support.slow_http`` when verify must be held) and the real worker.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from mintq import controls, payments
from tests.support.chain import ChainEnv
from tests.support.events import concurrently
from tests.support.slow_http import SlowHttp
from tests.support.x402_client import pay_v2, post_mint, v2_header
from tests.support.x402_stack import (
    PRICE,
    Stack,
    StackWith,
    drain,
    rows,
    stack,
    stack_with,
    through_slow_facilitator,
)

pytestmark = pytest.mark.chain
__all__ = ["stack", "stack_with"]  # fixtures, used by name


def test_three_payers_racing_for_the_last_mint_while_the_worker_mints_only_one_is_charged(
    stack_with: StackWith,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    conn: Any,
) -> None:
    """3 mints left, 2 paid mints queued; three payers pay at once while verify is slow and the
    worker confirms the queued two meanwhile: one mint is left, so one payer is charged."""
    stack = stack_with(max_mints=3)
    queued = [stack.payer(), stack.payer()]
    for account in queued:
        assert post_mint(v2_header(pay_v2(account, stack)))[0] == 202
    racers = [stack.payer() for _ in range(3)]
    headers = [v2_header(pay_v2(a, stack)) for a in racers]

    with SlowHttp(stack.facilitator.url) as slow:
        slow.on("/verify", "hold")
        through_slow_facilitator(stack, monkeypatch, slow, MINTQ_X402_VERIFY_TIMEOUT_SECONDS="60")
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
    assert conn.execute("SELECT count(*) AS n FROM mint_queue WHERE status = 'failed'").fetchone()["n"] == 0


def test_mints_the_chain_took_but_the_worker_has_not_recorded_are_counted_once(
    stack_with: StackWith,
    chain_env: ChainEnv,
    database_url: str,
    conn: Any,
) -> None:
    """The worker broadcasts a batch of 2 (of 3) and dies before recording its receipt: the
    chain has 1 mint left and the database still has 2 requests in flight. One more payer
    fits (1 left on chain, the 2 in flight already taken there), a second does not."""
    stack = stack_with(max_mints=3)
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
    in_flight = conn.execute("SELECT count(*) AS n FROM mint_queue WHERE status = 'processing'").fetchone()
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
