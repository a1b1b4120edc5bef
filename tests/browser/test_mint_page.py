"""The mint page in free mode, in real Chromium against the local stack (phone-sized viewport).

Every test keeps a screenshot of its final state under ``tests/artifacts/`` and checks that
the page made no request outside its own origin.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.browser.conftest import EXPLORER
from tests.support import stack
from tests.support.browser import artifact_path
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.slow

ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
BOB = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
#: Alice's address with one letter's case flipped: 0x, 40 hex digits, wrong EIP-55 checksum.
BAD_CHECKSUM = "0x70997970c51812dc3A010C7d01b50e0d17dc79C8"
#: anvil account 5, used by no other test here.
CAROL = "0x9965507D1a55bcC2695C58ba16FB37d092Be74A8"


class Requests:
    """Every URL the page asked for, to prove it stays on its own origin."""

    def __init__(self, page: Any) -> None:
        self.urls: list[str] = []
        page.on("request", lambda request: self.urls.append(request.url))

    def foreign(self, origin: str) -> list[str]:
        return [u for u in self.urls if not u.startswith(origin + "/") and not u.startswith("data:")]

    def count(self, fragment: str) -> int:
        return sum(fragment in u for u in self.urls)


@pytest.fixture
def seen(page: Any) -> Iterator[Requests]:
    yield Requests(page)


def keep(page: Any, name: str) -> None:
    path = artifact_path(f"page-{name}.png")
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0


def status_of(page: Any) -> str | None:
    value: str | None = page.locator("#t-status").get_attribute("data-status")
    return value


def fits_phone_width(page: Any) -> bool:
    return bool(page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth"))


def test_free_mint_from_the_keyboard_reaches_completed_with_the_explorer_link(
    page: Any, free_stack: stack.Stack, seen: Requests
) -> None:
    page.goto(free_stack.api_url + "/")
    page.get_by_role("heading", name="Request a mint").wait_for()
    # Keyboard only: Tab to the labelled field, type, Enter submits.
    for _ in range(5):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.id") == "address":
            break
    assert page.evaluate("() => document.activeElement.id") == "address"
    assert page.get_by_label("Your address (it receives the token)").count() == 1
    page.keyboard.type(ALICE)
    page.keyboard.press("Enter")

    page.wait_for_url(re.compile(r"\?queueId=[0-9a-f-]{36}$"))
    queue_id = page.url.rsplit("=", 1)[1]
    assert page.locator("#t-id").text_content() == queue_id
    page.wait_for_selector('#t-status[data-status="completed"]', timeout=60_000)

    status, item = stack.request("GET", f"{free_stack.api_url}/queue/item/{queue_id}")
    assert status == 200 and item["status"] == "completed" and item["payer_address"] == ALICE
    link = page.locator("#t-tx a")
    assert link.get_attribute("href") == EXPLORER.replace("{hash}", item["mint_tx_hash"])
    assert link.text_content() == item["mint_tx_hash"]
    assert "Polling stopped" in (page.locator("#t-poll").text_content() or "")
    # Final means final: no more item polls.
    polls = seen.count(f"/queue/item/{queue_id}")
    page.wait_for_timeout(4500)
    assert seen.count(f"/queue/item/{queue_id}") == polls
    # The queue panel refreshed with the batch that minted it.
    page.wait_for_function(
        "hash => [...document.querySelectorAll('#batches a')].some(a => a.title === hash)",
        arg=item["mint_tx_hash"],
        timeout=15_000,
    )
    assert fits_phone_width(page)
    keep(page, "free-completed")
    assert seen.foreign(free_stack.api_url) == []


def test_a_refused_address_shows_the_apis_own_message_and_creates_nothing(
    page: Any, free_stack: stack.Stack, seen: Requests
) -> None:
    api_status, api_body = stack.request("POST", f"{free_stack.api_url}/mint", {"payer": BAD_CHECKSUM})
    assert api_status == 400
    message = api_body["error"]["message"]
    before = stack.request("GET", f"{free_stack.api_url}/queue/status")[1]["stats"]

    page.goto(free_stack.api_url + "/")
    field = page.get_by_label("Your address (it receives the token)")
    field.fill(BAD_CHECKSUM)
    field.blur()
    # The field's own check says what the API would say...
    page.wait_for_function("() => document.getElementById('address-error').textContent.length > 0")
    assert page.locator("#address-error").text_content() == message
    assert field.get_attribute("aria-invalid") == "true"
    # ...and on submit the API has the last word, and its message is what the user reads.
    with page.expect_response(lambda r: r.url.endswith("/mint")) as answer:
        page.get_by_role("button", name="Mint").click()
    assert answer.value.status == 400
    page.wait_for_function("() => !document.getElementById('submit').disabled")
    assert page.locator("#address-error").text_content() == message
    assert page.locator("#tracker").is_hidden()
    assert "queueId" not in page.url
    after = stack.request("GET", f"{free_stack.api_url}/queue/status")[1]["stats"]
    assert (after["pending_count"], after["completed_count"]) == (
        before["pending_count"],
        before["completed_count"],
    )
    keep(page, "free-refused")
    assert seen.foreign(free_stack.api_url) == []


def test_the_api_going_away_shows_a_retrying_state_and_the_page_recovers(
    page: Any, free_stack: stack.Stack, seen: Requests
) -> None:
    with TcpProxy.for_url(free_stack.api_url, mode="tcp") as proxy:
        page.goto(proxy.url + "/")
        page.get_by_role("heading", name="Request a mint").wait_for()
        page.wait_for_function("() => document.getElementById('q-completed').textContent !== '\\u2013'")
        proxy.refuse(True)
        proxy.drop_all()
        banner = page.locator("#connection")
        banner.wait_for(state="visible", timeout=20_000)
        assert "Cannot reach the mint API" in (banner.text_content() or "")
        assert "Retrying in" in (banner.text_content() or "")
        assert banner.get_attribute("role") == "alert"
        # Not a blank page: the form and the last known statistics are still there.
        assert page.get_by_role("button", name="Mint").is_visible()
        keep(page, "free-api-down")
        proxy.refuse(False)
        banner.wait_for(state="hidden", timeout=40_000)
        assert seen.foreign(proxy.url) == []


def test_a_reload_mid_way_resumes_the_same_request(
    page: Any, free_stack: stack.Stack, seen: Requests
) -> None:
    rpc_url = free_stack.info["rpc_url"]
    stack.rpc(rpc_url, "evm_setIntervalMining", [0])  # hold the line: no blocks until resumed
    try:
        page.goto(free_stack.api_url + "/")
        page.get_by_label("Your address (it receives the token)").fill(BOB)
        page.get_by_role("button", name="Mint").click()
        page.wait_for_url(re.compile(r"\?queueId="))
        queue_id = page.url.rsplit("=", 1)[1]
        page.wait_for_function(
            "() => ['pending', 'processing'].includes(document.getElementById('t-status').dataset.status)"
        )
        page.reload()
        page.wait_for_function(
            "() => ['pending', 'processing'].includes(document.getElementById('t-status').dataset.status)"
        )
        assert page.url.endswith(f"?queueId={queue_id}")
        assert page.locator("#t-id").text_content() == queue_id
        assert page.locator("#free-section").is_hidden()
        assert re.fullmatch(r"about \d+ s|any moment now", page.locator("#t-eta").text_content() or "")
    finally:
        stack.rpc(rpc_url, "evm_setIntervalMining", [1])
    page.wait_for_selector('#t-status[data-status="completed"]', timeout=90_000)
    assert stack.request("GET", f"{free_stack.api_url}/queue/item/{queue_id}")[1]["status"] == "completed"
    keep(page, "free-resumed-completed")
    assert seen.foreign(free_stack.api_url) == []


def test_a_failed_request_shows_why_without_a_transaction_and_stops_polling(
    page: Any, free_stack: stack.Stack, seen: Requests
) -> None:
    # A request the worker has given up on, as it leaves one (final, with its reason): making a
    # mint fail for good on the stack's chain would fail every later mint of this module too.
    reason = "execution reverted: MaxSupplyReached() (after 3 attempts)"
    with psycopg.connect(free_stack.info["database_url"], autocommit=True) as conn:
        row = conn.execute(
            "INSERT INTO mint_queue (payer_address, payment_type, status, processed_at, error_message,"
            " retry_count) VALUES (%s, 'free', 'failed', now(), %s, 3) RETURNING id::text",
            (CAROL, reason),
        ).fetchone()
    assert row is not None
    queue_id = row[0]
    assert stack.request("GET", f"{free_stack.api_url}/queue/item/{queue_id}")[1]["status"] == "failed"

    page.goto(f"{free_stack.api_url}/?queueId={queue_id}")
    page.wait_for_selector('#t-status[data-status="failed"]')
    assert page.locator("#t-status").text_content() == "Failed"
    assert page.locator("#t-reason-label").is_visible() and page.locator("#t-reason").is_visible()
    assert page.locator("#t-reason").text_content() == reason
    assert page.locator("#t-tx").text_content() == "\u2013" and page.locator("#t-tx a").count() == 0
    assert page.locator("#t-settlement").is_hidden()  # not a paid request
    assert "Polling stopped" in (page.locator("#t-poll").text_content() or "")
    polls = seen.count(f"/queue/item/{queue_id}")
    page.wait_for_timeout(4500)
    assert seen.count(f"/queue/item/{queue_id}") == polls
    assert fits_phone_width(page)
    keep(page, "free-failed")
    assert seen.foreign(free_stack.api_url) == []
