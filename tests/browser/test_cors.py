"""CORS with real Chromium against the local stack: a dapp page on another origin mints and reads
the x402 headers; an origin not on the list is refused by the browser itself.

The page is served from http://127.0.0.1:<page port>; http://localhost:<page port> is the same
server under another origin, which the stack does not list. Payments are signed in Python (the
wallet's part) from the PAYMENT-REQUIRED header the page's script read.
"""

from __future__ import annotations

import base64
import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from x402 import x402ClientSync
from x402.http import decode_payment_required_header, encode_payment_signature_header
from x402.mechanisms.evm.exact import ExactEvmClientScheme
from x402.mechanisms.evm.signers import EthAccountSigner

from devstack import anvil
from tests.support.browser import artifact_path
from tests.support.local_stack import LocalStack, free_port, local_stack

pytestmark = pytest.mark.slow

PAGE = b"<!doctype html><title>a dapp on its own origin</title><p>dapp</p>"
POST_MINT = """async ([api, headers, body]) => {
  try {
    const r = await fetch(api + "/mint", {method: "POST", headers, body});
    return {status: r.status, body: await r.json(),
            required: r.headers.get("PAYMENT-REQUIRED"), settled: r.headers.get("PAYMENT-RESPONSE"),
            settledV1: r.headers.get("X-PAYMENT-RESPONSE"), retryAfter: r.headers.get("Retry-After")};
  } catch (e) { return {refused: String(e)}; }
}"""
GET = """async (url) => {
  try { const r = await fetch(url); return {status: r.status, body: await r.json()}; }
  catch (e) { return {refused: String(e)}; }
}"""


class _Dapp(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def page_port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Dapp)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def paid_stack(
    pg_server: Any, template_db: str, page_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    """x402 mode; only the dapp's 127.0.0.1 origin is allowed."""
    state = tmp_path_factory.mktemp("cors-x402")
    origins = ("--allowed-origins", f"http://127.0.0.1:{page_port}")
    with local_stack(
        pg_server, template_db, state, payment_mode="x402", extra_args=origins, worker=False
    ) as stack:
        yield stack


def _sign(required_header: str, stack: LocalStack) -> str:
    """The wallet's part: sign an EIP-3009 authorization for exactly the price asked."""
    account = Account.from_key(anvil.dev_private_key(1))  # funded with test USDC by the stack
    client = x402ClientSync()
    client.set_spend_controls(
        {
            "allowed_assets": [
                {
                    "network": stack.stack["network"],
                    "asset": stack.stack["payment_asset"],
                    "max_amount_per_payment": str(stack.stack["price"]),
                }
            ]
        }
    )
    client.register(str(stack.stack["network"]), ExactEvmClientScheme(EthAccountSigner(account)))
    payload = client.create_payment_payload(decode_payment_required_header(required_header))
    return encode_payment_signature_header(payload)


def _decode(header: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(base64.b64decode(header))
    return decoded


def test_a_listed_origin_pays_mints_and_reads_the_x402_headers(
    page: Any, paid_stack: LocalStack, page_port: int
) -> None:
    page.goto(f"http://127.0.0.1:{page_port}/")
    json_headers = {"content-type": "application/json"}

    challenge = page.evaluate(POST_MINT, [paid_stack.url, json_headers, "{}"])
    assert challenge["status"] == 402, challenge
    assert challenge["body"]["success"] is False and challenge["body"]["x402Version"] == 1
    required = challenge["required"]
    assert required, "PAYMENT-REQUIRED is not readable from the page's script"
    assert _decode(required)["accepts"][0]["amount"] == str(paid_stack.stack["price"])

    paid_headers = json_headers | {
        "payment-signature": _sign(required, paid_stack),
        "idempotency-key": "dapp-1",
    }
    paid = page.evaluate(POST_MINT, [paid_stack.url, paid_headers, "{}"])
    assert paid["status"] == 202, paid
    assert paid["body"]["paymentStatus"] == "settled"
    assert paid["settled"], "PAYMENT-RESPONSE is not readable from the page's script"
    settlement = _decode(paid["settled"])
    assert settlement["success"] is True
    assert settlement["transaction"] == paid["body"]["settlementTransaction"]

    item = page.evaluate(GET, f"{paid_stack.url}/queue/item/{paid['body']['queueId']}")
    assert item["status"] == 200 and item["body"]["payer_address"] == paid["body"]["payer"]


def test_an_unlisted_origin_is_refused_by_the_browser(
    page: Any, paid_stack: LocalStack, page_port: int
) -> None:
    page.goto(f"http://localhost:{page_port}/")  # same page, another origin
    posts_before = paid_stack.log_tail(10**9).count('"POST /mint"')

    refused = page.evaluate(POST_MINT, [paid_stack.url, {"content-type": "application/json"}, "{}"])
    assert refused == {"refused": "TypeError: Failed to fetch"}
    read = page.evaluate(GET, f"{paid_stack.url}/queue/status")
    assert read == {"refused": "TypeError: Failed to fetch"}  # a list of origins closes the reads too

    log = paid_stack.log_tail(10**9)
    assert log.count('"POST /mint"') == posts_before  # the preflight failed: the POST was never sent
    assert '"OPTIONS /mint" 204' in log


@pytest.fixture(scope="module")
def open_stack(
    pg_server: Any, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    """Free mode with the default AllowedOrigins, "*"."""
    with local_stack(pg_server, template_db, tmp_path_factory.mktemp("cors-any"), worker=False) as stack:
        yield stack


def test_a_wildcard_lets_any_origin_read_but_not_mint(
    page: Any, open_stack: LocalStack, page_port: int
) -> None:
    page.goto(f"http://localhost:{page_port}/")
    read = page.evaluate(GET, f"{open_stack.url}/queue/status")
    assert read["status"] == 200 and read["body"]["stats"]["pending_count"] == 0

    payer = Account.from_key(anvil.dev_private_key(2)).address
    body = json.dumps({"payer": payer})
    refused = page.evaluate(POST_MINT, [open_stack.url, {"content-type": "application/json"}, body])
    assert refused == {"refused": "TypeError: Failed to fetch"}
    assert '"POST /mint"' not in open_stack.log_tail(10**9)  # stopped at the preflight

    # A request a browser sends without a preflight reaches the API; the enqueue function
    # refuses the page's origin itself (a body without a type would be read as JSON).
    blob = f"fetch('{open_stack.url}/mint', {{method: 'POST', body: new Blob([{body!r}])}})"
    answer = page.evaluate(f"async () => {{ const r = await {blob}; return [r.status, await r.json()]; }}")
    assert answer == [
        403,
        {"success": False, "error": {"code": "origin_not_allowed", "message": answer[1]["error"]["message"]}},
    ]
    read = page.evaluate(GET, f"{open_stack.url}/queue/payer/{payer}")
    assert read["status"] == 200 and read["body"]["requests"] == []


def test_swagger_ui_loads_nothing_from_another_origin(page: Any, open_stack: LocalStack) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{open_stack.url}/docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    assert page.locator(".opblock").count() == 4  # POST /mint and the three reads
    elsewhere = [u for u in requested if not u.startswith((open_stack.url, "data:", "blob:"))]
    assert elsewhere == [], elsewhere
    page.screenshot(path=str(artifact_path("swagger-ui.png")))
