"""The mint page in x402 mode, in real Chromium: the user's wallet is an injected EIP-1193
provider that forwards every call to the stack's anvil, whose dev accounts sign
``eth_signTypedData_v4`` themselves; the page pays with the bundled official x402 client.
"""

from __future__ import annotations

import json
import re
from typing import Any

import psycopg
import pytest

from tests.browser.conftest import EXPLORER
from tests.support import stack
from tests.support.browser import artifact_path

pytestmark = pytest.mark.slow

#: anvil accounts 2 and 3, funded with TestUSDC by the x402 stack.
PAYER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
REFUSER = "0x90F79bf6EB2c4f870365E785982E1f101E93b906"
BALANCE_OF = "0x70a08231"  # balanceOf(address)

# window.ethereum as a wallet extension would inject it. It answers account requests itself,
# declines to sign when told to (EIP-1193 code 4001, "User rejected the request."), and sends
# everything else to anvil through a binding: the page's own CSP (connect-src 'self') would
# stop it from reaching another origin, exactly as it would stop the page.
PROVIDER = """
(() => {
  const account = %s;
  const rejectSignatures = %s;
  window.ethereum = {
    async request({ method, params }) {
      if (method === "eth_requestAccounts" || method === "eth_accounts") return [account];
      if (method === "eth_signTypedData_v4") window.__signRequests = (window.__signRequests || 0) + 1;
      if (method === "eth_signTypedData_v4" && rejectSignatures) {
        const error = new Error("User rejected the request.");
        error.code = 4001;
        throw error;
      }
      const answer = JSON.parse(await window.__walletRpc(method, params || []));
      if (answer.error) {
        const error = new Error(answer.error.message);
        error.code = answer.error.code;
        throw error;
      }
      return answer.result;
    },
    on() {},
    removeListener() {},
  };
})();
"""


def wallet_page(browser: Any, x402_stack: stack.Stack, account: str, *, reject: bool) -> Any:
    rpc_url = x402_stack.info["rpc_url"]
    context = browser.new_context(viewport={"width": 390, "height": 844})

    def forward(method: str, params: list[Any]) -> str:
        status, answer = stack.request(
            "POST", rpc_url, {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        )
        return json.dumps(
            answer if status == 200 else {"error": {"message": f"HTTP {status}", "code": -32603}}
        )

    context.expose_function("__walletRpc", forward)
    context.add_init_script(PROVIDER % (json.dumps(account), json.dumps(reject)))
    return context


def balance(x402_stack: stack.Stack, holder: str) -> int:
    info = x402_stack.info
    data = BALANCE_OF + holder[2:].lower().rjust(64, "0")
    result = stack.rpc(info["rpc_url"], "eth_call", [{"to": info["payment_asset"], "data": data}, "latest"])
    return int(result, 16)


def rows(x402_stack: stack.Stack, payer: str) -> tuple[int, int]:
    """(queue rows, payment rows) for ``payer`` in the stack's database."""
    with psycopg.connect(x402_stack.info["database_url"]) as conn:
        queued = conn.execute("SELECT count(*) FROM mint_queue WHERE payer_address = %s", (payer,)).fetchone()
        paid = conn.execute("SELECT count(*) FROM payments WHERE payer_address = %s", (payer,)).fetchone()
    return int(queued[0] if queued else 0), int(paid[0] if paid else 0)


def keep(page: Any, name: str) -> None:
    path = artifact_path(f"page-{name}.png")
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0


def test_the_wallet_pays_the_price_shown_and_the_mint_completes(
    browser: Any, x402_stack: stack.Stack
) -> None:
    info = x402_stack.info
    context = wallet_page(browser, x402_stack, PAYER, reject=False)
    try:
        page = context.new_page()
        urls: list[str] = []
        page.on("request", lambda r: urls.append(r.url))
        before = balance(x402_stack, PAYER)
        page.goto(x402_stack.api_url + "/")
        pay = page.get_by_role("button", name="Pay and mint")
        page.wait_for_function("() => !document.getElementById('pay').disabled")
        # The terms come from the 402 challenge.
        assert page.locator("#term-price").text_content() == f"{info['price'] / 10**6:g} USDC"
        assert info["payment_asset"] in (page.locator("#term-asset").text_content() or "")
        assert page.locator("#term-network").text_content() == info["network"]
        assert page.locator("#term-payto").text_content() == info["pay_to"]
        pay.click()
        page.wait_for_url(re.compile(r"\?queueId=[0-9a-f-]{36}$"), timeout=30_000)
        queue_id = page.url.rsplit("=", 1)[1]
        page.wait_for_selector('#t-status[data-status="completed"]', timeout=90_000)

        status, item = stack.request("GET", f"{x402_stack.api_url}/queue/item/{queue_id}")
        assert status == 200 and item["status"] == "completed"
        assert item["payer_address"] == PAYER and item["payment_type"] == "x402"
        assert page.locator("#t-tx a").get_attribute("href") == EXPLORER.replace(
            "{hash}", item["mint_tx_hash"]
        )
        settlement = page.locator("#t-settlement a")
        assert settlement.get_attribute("href") == EXPLORER.replace("{hash}", item["settlement_tx_hash"])
        assert page.evaluate("() => window.__signRequests") == 1
        assert before - balance(x402_stack, PAYER) == info["price"]
        assert rows(x402_stack, PAYER) == (1, 1)
        keep(page, "x402-completed")
        assert [u for u in urls if not u.startswith(x402_stack.api_url + "/")] == []
    finally:
        context.close()


def test_a_wallet_that_declines_to_sign_leaves_no_request_and_says_why(
    browser: Any, x402_stack: stack.Stack
) -> None:
    context = wallet_page(browser, x402_stack, REFUSER, reject=True)
    try:
        page = context.new_page()
        before = balance(x402_stack, REFUSER)
        page.goto(x402_stack.api_url + "/")
        page.wait_for_function("() => !document.getElementById('pay').disabled")
        page.get_by_role("button", name="Pay and mint").click()
        page.wait_for_function("() => document.getElementById('pay-error').textContent.length > 0")
        message = page.locator("#pay-error").text_content() or ""
        assert "declined to sign" in message and "User rejected the request." in message
        assert "no request was made" in message
        assert page.evaluate("() => window.__signRequests") == 1
        assert page.locator("#tracker").is_hidden() and "queueId" not in page.url
        assert page.get_by_role("button", name="Pay and mint").is_enabled()
        assert rows(x402_stack, REFUSER) == (0, 0)
        assert balance(x402_stack, REFUSER) == before
        keep(page, "x402-declined")
    finally:
        context.close()
