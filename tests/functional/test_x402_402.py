"""The 402's details, through the enqueue handler: ``PAYMENT-REQUIRED`` carries ``error`` as the
reference server sets it, the 402 is never cached, and every reason a client reads is one its
protocol version knows: v1's from the installed npm ``x402`` 1.x package's own ``ErrorReasons``
(the package v1 clients such as ``x402-fetch`` validate 402 bodies and ``X-PAYMENT-RESPONSE``
with), v2's from the installed Python ``x402`` package's EVM reason constants. Both lists are
imported from the packages, never copied here.

Every refusal below is decided before any facilitator or chain is asked (nothing to run but
PostgreSQL); the facilitator's and the worker's reasons are checked through the naming itself.
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import time
from functools import cache
from typing import Any

import pytest
from x402.http import decode_payment_required_header, decode_payment_response_header
from x402.http.x402_http_server_base import PAYMENT_REQUIRED_CACHE_CONTROL
from x402.mechanisms.evm import constants as evm_constants

from mintq import config, x402_reasons
from tests.support.events import REPO_ROOT, http_event, invoke
from tests.support.x402_env import NETWORK, PAY_TO, PRICE, USDC, x402_mode

PAYER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"


@cache
def v1_reasons() -> frozenset[str]:
    """``ErrorReasons`` of npm ``x402`` 1.x (installed by ``make deps`` with x402-fetch)."""
    script = "import { ErrorReasons } from 'x402/types'; process.stdout.write(JSON.stringify(ErrorReasons));"
    done = subprocess.run(
        ["node", "--input-type=module", "-e", script],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return frozenset(json.loads(done.stdout))


def v2_reasons() -> frozenset[str]:
    """The Python ``x402`` (v2) package's EVM reasons, and the protocol's generic reasons
    (``invalid_payload``...) that it does not define itself but v2 kept from v1."""
    package = {v for k, v in vars(evm_constants).items() if k.startswith("ERR_") and isinstance(v, str)}
    generic = {r for r in v1_reasons() if not r.startswith(("invalid_exact_", "settle_exact_"))}
    return frozenset(package | generic)


def ours() -> set[str]:
    """Every reason mintq itself decides or records."""
    return {
        v
        for k, v in vars(x402_reasons).items()
        if k.isupper() and isinstance(v, str) and v != x402_reasons.PAYMENT_REQUIRED_TEXT
    }


def test_the_lists_are_the_packages_own() -> None:
    assert {"invalid_payload", "insufficient_funds", "unexpected_settle_error"} <= v1_reasons()
    assert "payment_required" not in v1_reasons()  # the old first-challenge code was not v1's
    assert evm_constants.ERR_NONCE_ALREADY_USED in v2_reasons()


def test_every_reason_a_client_can_read_is_in_its_versions_list() -> None:
    facilitators = {v for k, v in vars(evm_constants).items() if k.startswith("ERR_") and isinstance(v, str)}
    for reason in ours() | facilitators | {"a_reason_nobody_listed"}:
        v1 = x402_reasons.v1_name(reason)
        assert v1 is None or v1 in v1_reasons(), (reason, v1)
    for reason in ours():  # a facilitator's own reasons are passed on under its (v2) names
        assert x402_reasons.v2_name(reason) in v2_reasons(), reason
    assert x402_reasons.v1_name(x402_reasons.SETTLEMENT_PENDING) is None  # v1 has no "pending"


# --- through the handler ---------------------------------------------------------------------


def _payment(version: int, **change: Any) -> dict[str, str]:
    now = int(time.time())
    authorization = {
        "from": PAYER,
        "to": PAY_TO,
        "value": str(PRICE),
        "validAfter": str(now - 60),
        "validBefore": str(now + 300),
        "nonce": "0x" + secrets.token_hex(32),
    } | change
    payload = {"signature": "0x" + "11" * 65, "authorization": authorization}
    if version == 1:
        envelope: dict[str, Any] = {
            "x402Version": 1,
            "scheme": "exact",
            "network": "base-sepolia",
            "payload": payload,
        }
        return {"X-PAYMENT": base64.b64encode(json.dumps(envelope).encode()).decode()}
    accepted = {
        "scheme": "exact",
        "network": NETWORK,
        "asset": USDC,
        "amount": str(PRICE),
        "payTo": PAY_TO,
        "maxTimeoutSeconds": 300,
        "extra": {"name": "USDC", "version": "2"},
    }
    envelope = {"x402Version": 2, "accepted": accepted, "payload": payload}
    return {"PAYMENT-SIGNATURE": base64.b64encode(json.dumps(envelope).encode()).decode()}


@pytest.fixture
def x402_deployment(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    x402_mode(monkeypatch)
    monkeypatch.setenv("MINTQ_RPC_URL", "http://127.0.0.1:9")  # never reached: refused before
    monkeypatch.setenv("MINTQ_TOKEN_ADDRESS", PAY_TO)
    config.reset()


def test_a_first_challenge_has_the_reference_servers_error_text_no_v1_error_and_no_store(
    x402_deployment: None,
) -> None:
    status, body, headers = invoke("enqueue", http_event("POST", "/mint", body={}))
    assert status == 402
    assert decode_payment_required_header(headers["PAYMENT-REQUIRED"]).error == "Payment required"
    assert headers["Cache-Control"] == PAYMENT_REQUIRED_CACHE_CONTROL
    assert "error" not in body and body["accepts"] and body["message"]
    assert "PAYMENT-RESPONSE" not in headers


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"value": str(PRICE - 1)}, x402_reasons.VALUE_MISMATCH),
        ({"to": PAYER}, x402_reasons.RECIPIENT_MISMATCH),
        ({"validBefore": str(int(time.time()) - 1)}, x402_reasons.VALID_BEFORE),
        ({"validAfter": str(int(time.time()) + 3600)}, x402_reasons.VALID_AFTER),
        ({"nonce": "0x12"}, x402_reasons.INVALID_PAYLOAD),
    ],
    ids=["value", "recipient", "expired", "not-yet-valid", "malformed"],
)
def test_a_refusal_names_its_reason_in_each_versions_own_words(
    x402_deployment: None, version: int, change: dict[str, str], reason: str
) -> None:
    status, body, headers = invoke(
        "enqueue", http_event("POST", "/mint", body={}, headers=_payment(version, **change))
    )
    assert status == 402, body
    assert headers["Cache-Control"] == PAYMENT_REQUIRED_CACHE_CONTROL
    assert decode_payment_required_header(headers["PAYMENT-REQUIRED"]).error == reason
    assert decode_payment_response_header(headers["PAYMENT-RESPONSE"]).error_reason == reason
    assert reason in v2_reasons()
    v1_read = decode_payment_response_header(headers["X-PAYMENT-RESPONSE"]).error_reason
    assert body["error"] == v1_read == x402_reasons.v1_name(reason)
    assert v1_read in v1_reasons()
