"""x402 payments end to end: the real enqueue handler, PostgreSQL, anvil with an EIP-3009
test USDC, the local facilitator over HTTP, the x402 package's own client, and the worker."""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3 import Web3
from x402 import x402ClientSync
from x402.http import (
    decode_payment_required_header,
    decode_payment_response_header,
    encode_payment_signature_header,
)
from x402.mechanisms.evm.exact import ExactEvmClientScheme
from x402.mechanisms.evm.exact.v1.client import ExactEvmSchemeV1 as ExactEvmClientSchemeV1
from x402.mechanisms.evm.signers import EthAccountSigner
from x402.schemas import PaymentPayload, PaymentRequired, PaymentRequiredV1
from x402.schemas.v1 import PaymentPayloadV1

from devstack import anvil, contracts
from devstack.facilitator import Facilitator, install_multicall3, register_local_v1_network
from mintq import chain, config, db, payment_reconciler, payments, signer, x402_facilitator, x402_reasons
from mintq.worker.loop import Worker
from tests.support.chain import AMOUNT, MINTER_KEY, ChainEnv
from tests.support.events import concurrently, http_event, invoke

PRICE = 10_000  # 0.01 USDC
FACILITATOR_KEY = anvil.dev_private_key(7)  # the settlement wallet: never the minter (key 1)
DEPLOYER_KEY = anvil.dev_private_key(0)


@dataclass
class Stack:
    w3: Web3
    usdc: Any
    token: str
    pay_to: str
    network: str
    facilitator: Facilitator
    database_url: str
    chain_env: ChainEnv

    def payer(self, funded: int = 10 * PRICE) -> LocalAccount:
        account: LocalAccount = Account.create()
        if funded:
            contracts.transact(self.w3, self.usdc.functions.mint(account.address, funded), DEPLOYER_KEY)
        return account

    def usdc_balance(self, holder: str) -> int:
        return int(self.usdc.functions.balanceOf(Web3.to_checksum_address(holder)).call())

    def minted(self, holder: str) -> int:
        return self.chain_env.balance(self.token, holder) // AMOUNT

    def worker(self, *, reconcile: bool = False) -> Worker:
        hooks = (
            [payment_reconciler.Reconciler(self.chain_env.rpc_url, min_interval_seconds=0)]
            if reconcile
            else []
        )
        return Worker(
            db.connect(self.database_url),
            chain.Chain(self.chain_env.rpc_url, self.token),
            signer.LocalSigner(MINTER_KEY),
            chain_id=int(self.w3.eth.chain_id),
            poll_seconds=0.05,
            min_cycle_seconds=0.5,
            housekeeping=hooks,
        )


def _deploy_stack(
    w3: Web3, chain_env: ChainEnv, database_url: str, monkeypatch: pytest.MonkeyPatch, *, max_mints: int
) -> Iterator[Stack]:
    usdc_address = contracts.deploy(w3, "TestUSDC", [], DEPLOYER_KEY)
    usdc = w3.eth.contract(address=usdc_address, abi=contracts.load_artifact("TestUSDC")["abi"])
    token = chain_env.deploy(max_mints=max_mints)
    chain_id = int(w3.eth.chain_id)
    network = f"eip155:{chain_id}"
    v1_network = register_local_v1_network(chain_id)
    install_multicall3(chain_env.rpc_url)
    fac = Facilitator(
        rpc_url=chain_env.rpc_url, private_key=FACILITATOR_KEY, network=network, v1_network=v1_network
    )
    pay_to = Account.create().address
    env = {
        "MINTQ_PAYMENT_MODE": "x402",
        "MINTQ_RPC_URL": chain_env.rpc_url,
        "MINTQ_TOKEN_ADDRESS": token,
        "MINTQ_CHAIN_ID": str(chain_id),
        "MINTQ_X402_PRICE": str(PRICE),
        "MINTQ_X402_PAY_TO": pay_to,
        "MINTQ_X402_ASSET": usdc_address,
        "MINTQ_X402_NETWORK": network,
        "MINTQ_X402_V1_NETWORK": v1_network,
        "MINTQ_X402_ASSET_NAME": "USDC",
        "MINTQ_X402_ASSET_VERSION": "2",
        "MINTQ_X402_FACILITATOR_URL": fac.url,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    config.reset()
    x402_facilitator.reset()
    yield Stack(w3, usdc, token, pay_to, network, fac, database_url, chain_env)
    fac.close()
    x402_facilitator.reset()
    config.reset()


@pytest.fixture
def stack(
    w3: Web3, chain_env: ChainEnv, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Stack]:
    yield from _deploy_stack(w3, chain_env, database_url, monkeypatch, max_mints=1000)


def transfer_with_authorization(stack: Stack, auth: dict[str, Any], signature: str) -> Any:
    return stack.usdc.functions.transferWithAuthorization(
        Web3.to_checksum_address(auth["from"]),
        Web3.to_checksum_address(auth["to"]),
        int(auth["value"]),
        int(auth["validAfter"]),
        int(auth["validBefore"]),
        bytes.fromhex(auth["nonce"][2:]),
        bytes.fromhex(signature[2:]),
    )


# --- client side helpers (the x402 package's own client) ------------------------------------


def post_mint(
    headers: dict[str, str] | None = None, body: object = None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    return invoke(
        "enqueue", http_event("POST", "/mint", body=body if body is not None else {}, headers=headers)
    )


def challenge() -> tuple[PaymentRequired, PaymentRequiredV1]:
    status, body, headers = post_mint()
    assert status == 402, body
    v2 = decode_payment_required_header(headers["PAYMENT-REQUIRED"])
    return v2, PaymentRequiredV1.model_validate(body)  # type: ignore[return-value]


def client_for(account: LocalAccount, stack: Stack) -> x402ClientSync:
    client = x402ClientSync()
    # The test USDC is no default asset of the package: allow it, capped at the price.
    client.set_spend_controls(
        {
            "allowed_assets": [
                {"network": network, "asset": stack.usdc.address, "max_amount_per_payment": str(PRICE)}
                for network in (stack.network, "anvil")
            ]
        }
    )
    client.register(stack.network, ExactEvmClientScheme(EthAccountSigner(account)))
    client.register_v1("anvil", ExactEvmClientSchemeV1(EthAccountSigner(account)))
    return client


def pay_v2(account: LocalAccount, stack: Stack, required: PaymentRequired | None = None) -> PaymentPayload:
    payload = client_for(account, stack).create_payment_payload(required or challenge()[0])
    assert isinstance(payload, PaymentPayload)
    return payload


def pay_v1(account: LocalAccount, stack: Stack) -> PaymentPayloadV1:
    payload = client_for(account, stack).create_payment_payload(challenge()[1])
    assert isinstance(payload, PaymentPayloadV1)
    return payload


def v2_header(payload: PaymentPayload | dict[str, Any]) -> dict[str, str]:
    if isinstance(payload, dict):
        return {"PAYMENT-SIGNATURE": base64.b64encode(json.dumps(payload).encode()).decode()}
    return {"PAYMENT-SIGNATURE": encode_payment_signature_header(payload)}


def rows(conn: Any, table: str) -> list[dict[str, Any]]:
    return list(conn.execute(f"SELECT * FROM {table}").fetchall())


def drain(stack: Stack, *, reconcile: bool = False, seconds: float = 30) -> None:
    worker = stack.worker(reconcile=reconcile)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            worker.cycle(deadline)
            open_ = worker.conn.execute(
                "SELECT (SELECT count(*) FROM mint_queue WHERE status IN ('pending', 'processing'))"
                " + (SELECT count(*) FROM payments WHERE status IN ('settling', 'settlement_pending')) AS n"
            ).fetchone()
            if open_ and open_["n"] == 0:
                return
            time.sleep(0.1)
        raise AssertionError("the queue did not drain in time")
    finally:
        worker.conn.close()


# --- the challenge -----------------------------------------------------------------------------


def test_no_payment_gets_a_402_challenge_in_v2_header_and_v1_body(stack: Stack, conn: Any) -> None:
    status, body, headers = post_mint(body={"payer": Account.create().address})
    assert status == 402
    # x402's own 402 body: a v1 client parses the whole of it (error is the code, a string).
    # v1's list of reasons has none for "not paid yet": the v1 body carries no error, the v2
    # header the reference server's generic text.
    assert body["success"] is False and "error" not in body and body["message"]
    assert PaymentRequiredV1.model_validate(body).error is None
    assert decode_payment_required_header(headers["PAYMENT-REQUIRED"]).error == "Payment required"
    assert headers["Cache-Control"] == "no-store"
    required = decode_payment_required_header(headers["PAYMENT-REQUIRED"])
    assert isinstance(required, PaymentRequired)
    [terms] = required.accepts
    assert (terms.scheme, terms.network, terms.amount) == ("exact", stack.network, str(PRICE))
    assert terms.pay_to == stack.pay_to and terms.asset.lower() == stack.usdc.address.lower()
    assert terms.extra == {"name": "USDC", "version": "2"}
    assert body["x402Version"] == 1
    [v1] = body["accepts"]
    assert (v1["network"], v1["maxAmountRequired"], v1["payTo"]) == ("anvil", str(PRICE), stack.pay_to)
    assert v1["extra"] == {"name": "USDC", "version": "2"}
    assert rows(conn, "mint_queue") == [] and rows(conn, "payments") == []
    # The payer comes from the payment, so a request without any body is challenged the same way.
    no_body = http_event("POST", "/mint")
    assert no_body["body"] is None
    status, body, headers = invoke("enqueue", no_body)
    assert (status, body.get("error")) == (402, None) and "PAYMENT-REQUIRED" in headers


# --- paying ------------------------------------------------------------------------------------


def _assert_paid_once(stack: Stack, conn: Any, account: LocalAccount, body: dict[str, Any]) -> None:
    assert body["payer"] == account.address  # the verified payer, whatever the body said
    assert body["paymentType"] == "x402" and body["paymentStatus"] == "settled"
    assert stack.usdc_balance(account.address) == 9 * PRICE
    assert stack.usdc_balance(stack.pay_to) == PRICE
    drain(stack)
    assert stack.minted(account.address) == 1
    assert stack.facilitator.broadcasts == 1
    [payment] = rows(conn, "payments")
    assert payment["status"] == "settled" and payment["queue_id"] == uuid.UUID(body["queueId"])
    status, item, _ = invoke(
        "status",
        http_event(
            "GET",
            f"/queue/item/{body['queueId']}",
            route="/queue/item/{queueId}",
            path_parameters={"queueId": body["queueId"]},
        ),
    )
    assert status == 200 and item["status"] == "completed"
    assert item["payment_status"] == "settled" and item["settlement_tx_hash"] == body["settlementTransaction"]
    assert not {"payload", "signature", "authorization_data"} & set(item)


def test_a_v2_payment_mints_exactly_once_to_the_verified_payer(stack: Stack, conn: Any) -> None:
    account = stack.payer()
    decoy = Account.create().address
    status, body, headers = post_mint(v2_header(pay_v2(account, stack)), body={"payer": decoy})
    assert status == 202, body
    response = decode_payment_response_header(headers["PAYMENT-RESPONSE"])
    assert response.success and response.transaction == body["settlementTransaction"]
    assert response.payer == account.address
    _assert_paid_once(stack, conn, account, body)
    assert stack.minted(decoy) == 0


def test_a_v1_payment_mints_exactly_once(stack: Stack, conn: Any) -> None:
    account = stack.payer()
    payload = pay_v1(account, stack)
    status, body, headers = post_mint({"X-PAYMENT": encode_payment_signature_header(payload)})
    assert status == 202, body
    response = decode_payment_response_header(headers["X-PAYMENT-RESPONSE"])
    assert response.success and response.network == "anvil"
    _assert_paid_once(stack, conn, account, body)


def test_the_same_payment_replayed_10_times_concurrently_settles_and_mints_once(
    stack: Stack, conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = stack.payer()
    headers = v2_header(pay_v2(account, stack))
    answers = concurrently(stack.database_url, monkeypatch, [lambda: post_mint(headers) for _ in range(10)])
    assert [a[0] for a in answers] == [202] * 10, [a[1] for a in answers]
    assert len({a[1]["queueId"] for a in answers}) == 1
    assert stack.facilitator.broadcasts == 1
    # ... and later, once more, still the same answer without touching the facilitator.
    settles = stack.facilitator.settle_calls
    status, later, _ = post_mint(headers)
    assert (status, later["queueId"]) == (202, answers[0][1]["queueId"])
    assert stack.facilitator.settle_calls == settles
    drain(stack)
    assert stack.minted(account.address) == 1
    assert len(rows(conn, "mint_queue")) == 1
    assert stack.usdc_balance(stack.pay_to) == PRICE


def test_eight_payers_paying_at_once_each_settle_and_mint_once_on_one_facilitator_wallet(
    stack: Stack, conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Concurrent Lambdas, different payments, one settlement wallet: no nonce collides."""
    accounts = [stack.payer() for _ in range(8)]
    headers = [v2_header(pay_v2(a, stack)) for a in accounts]
    answers = concurrently(stack.database_url, monkeypatch, [lambda h=h: post_mint(h) for h in headers])
    assert [a[0] for a in answers] == [202] * 8, [a[1] for a in answers]
    assert [a[1]["payer"] for a in answers] == [a.address for a in accounts]
    assert stack.facilitator.broadcasts == 8
    settled = rows(conn, "payments")
    assert {p["status"] for p in settled} == {"settled"} and len(
        {p["settlement_tx_hash"] for p in settled}
    ) == 8
    drain(stack)
    assert [stack.minted(a.address) for a in accounts] == [1] * 8
    assert stack.usdc_balance(stack.pay_to) == 8 * PRICE


# --- bad payments ------------------------------------------------------------------------------


def _assert_refused(stack: Stack, conn: Any, headers: dict[str, str], reason: str) -> None:
    status, body, got = post_mint(headers)
    assert status == 402, body
    # v2 clients read the reason by its v2 name, v1 clients by v1's (x402_reasons).
    v1 = x402_reasons.v1_name(reason)
    assert body["error"] == v1 and PaymentRequiredV1.model_validate(body).error == v1, body
    assert decode_payment_response_header(got["PAYMENT-RESPONSE"]).error_reason == reason
    assert decode_payment_response_header(got["X-PAYMENT-RESPONSE"]).error_reason == v1
    assert decode_payment_required_header(got["PAYMENT-REQUIRED"]).error == reason
    assert got["Cache-Control"] == "no-store" and body["accepts"]  # free to pay again, correctly
    assert rows(conn, "mint_queue") == []
    assert stack.usdc_balance(stack.pay_to) == 0
    assert stack.facilitator.broadcasts == 0


def _tampered(account: LocalAccount, stack: Stack, **changes: Any) -> dict[str, Any]:
    payload = pay_v2(account, stack).model_dump(by_alias=True, exclude_none=True)
    for path, value in changes.items():
        target = payload
        *parents, last = path.split("__")
        for part in parents:
            target = target[part]
        target[last] = value
    return payload


def test_malformed_headers_and_unknown_versions_or_schemes_are_refused(stack: Stack, conn: Any) -> None:
    account = stack.payer()
    _assert_refused(stack, conn, {"PAYMENT-SIGNATURE": "not base64 at all!"}, x402_reasons.INVALID_PAYLOAD)
    _assert_refused(
        stack, conn, {"X-PAYMENT": base64.b64encode(b"[1,2]").decode()}, x402_reasons.INVALID_PAYLOAD
    )
    deep = base64.b64encode(b"[" * 5000 + b"]" * 5000).decode()  # deeper than the parser recurses
    _assert_refused(stack, conn, {"PAYMENT-SIGNATURE": deep}, x402_reasons.INVALID_PAYLOAD)
    _assert_refused(
        stack, conn, v2_header(_tampered(account, stack, x402Version=3)), x402_reasons.INVALID_VERSION
    )
    _assert_refused(
        stack, conn, v2_header(_tampered(account, stack, accepted__scheme="upto")), "unsupported_scheme"
    )
    _assert_refused(
        stack,
        conn,
        v2_header(_tampered(account, stack, payload__signature="nope")),
        x402_reasons.INVALID_PAYLOAD,
    )


def _leaves(value: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    if isinstance(value, dict):
        return [prefix] + [p for k, v in value.items() for p in _leaves(v, (*prefix, k))]
    if isinstance(value, list):
        return [prefix] + [p for i, v in enumerate(value) for p in _leaves(v, (*prefix, i))]
    return [prefix]


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=70),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)


@settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "60")),
    derandomize="FUZZ_EXAMPLES" not in os.environ,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_mangled_payment_header_is_a_402_or_a_mint_never_a_5xx(
    stack: Stack, conn: Any, data: Any
) -> None:
    """One real payment, then any of its fields replaced by anything (or a header of noise):
    the answer is a refusal in x402's body, or, if the change kept it valid, its one mint."""
    valid = pay_v2(stack.payer(), stack).model_dump(by_alias=True, exclude_none=True)
    kind = data.draw(st.sampled_from(["mutate", "json", "text"]))
    if kind == "text":
        header = {
            data.draw(st.sampled_from(["PAYMENT-SIGNATURE", "X-PAYMENT"])): data.draw(st.text(max_size=300))
        }
    elif kind == "json":
        header = {"PAYMENT-SIGNATURE": base64.b64encode(json.dumps(data.draw(_json)).encode()).decode()}
    else:
        path = data.draw(st.sampled_from(_leaves(valid)[1:]))
        mutated = json.loads(json.dumps(valid))
        target = mutated
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = data.draw(_json)
        header = v2_header(mutated)
    status, body, _ = post_mint(header)
    assert status in (202, 402), body
    if status == 402:
        # A refusal names its v1 reason; an empty header is no payment: a first challenge, no reason.
        assert body["success"] is False and isinstance(body.get("error", ""), str) and body["accepts"], body
        PaymentRequiredV1.model_validate(body)
    minted = {r["payment_id"] for r in conn.execute("SELECT payment_id FROM mint_queue").fetchall()}
    settled = {r["id"] for r in conn.execute("SELECT id FROM payments WHERE status = 'settled'").fetchall()}
    assert minted == settled  # every settled payment has its one queued mint, and nothing else is queued
    if status == 202:  # a change that kept the payment valid bought exactly this request
        queued = conn.execute(
            "SELECT id FROM mint_queue WHERE id = %(id)s", {"id": body["queueId"]}
        ).fetchone()
        assert queued is not None and len(minted) >= 1


def test_wrong_network_asset_recipient_or_amount_are_refused(stack: Stack, conn: Any) -> None:
    account = stack.payer()
    _assert_refused(
        stack,
        conn,
        v2_header(_tampered(account, stack, accepted__network="eip155:8453")),
        x402_reasons.INVALID_NETWORK,
    )
    other_asset = Account.create().address
    _assert_refused(
        stack,
        conn,
        v2_header(_tampered(account, stack, accepted__asset=other_asset)),
        x402_reasons.INVALID_REQUIREMENTS,
    )
    required, _ = challenge()
    required.accepts[0].pay_to = Account.create().address
    _assert_refused(stack, conn, v2_header(pay_v2(account, stack, required)), x402_reasons.RECIPIENT_MISMATCH)
    required, _ = challenge()
    required.accepts[0].amount = str(PRICE - 1)
    _assert_refused(stack, conn, v2_header(pay_v2(account, stack, required)), x402_reasons.VALUE_MISMATCH)


def test_expired_and_not_yet_valid_authorizations_are_refused(stack: Stack, conn: Any) -> None:
    account = stack.payer()
    required, _ = challenge()
    required.accepts[0].max_timeout_seconds = 1
    _assert_refused(stack, conn, v2_header(pay_v2(account, stack, required)), x402_reasons.VALID_BEFORE)
    future = str(int(time.time()) + 3600)
    _assert_refused(
        stack,
        conn,
        v2_header(_tampered(account, stack, payload__authorization__validAfter=future)),
        x402_reasons.VALID_AFTER,
    )
    # Signed, but valid until after any time the payments table can hold: refused, never a 5xx.
    _assert_refused(
        stack,
        conn,
        v2_header(_tampered(account, stack, payload__authorization__validBefore=str(2**64))),
        x402_reasons.VALID_BEFORE,
    )


def test_bad_signature_insufficient_balance_and_used_nonce_are_refused_by_the_facilitator(
    stack: Stack, conn: Any
) -> None:
    account = stack.payer()
    good = _tampered(account, stack)
    signature = good["payload"]["signature"]
    forged = signature[:-4] + ("00" if signature[-4:-2] != "00" else "11") + signature[-2:]
    _assert_refused(
        stack,
        conn,
        v2_header(_tampered(account, stack, payload__signature=forged)),
        x402_reasons.INVALID_SIGNATURE,
    )

    broke = stack.payer(funded=PRICE - 1)
    _assert_refused(stack, conn, v2_header(pay_v2(broke, stack)), "invalid_exact_evm_insufficient_balance")

    # The authorization is used on chain by someone else first (e.g. another merchant).
    payload = pay_v2(account, stack)
    auth = payload.payload["authorization"]
    contracts.transact(
        stack.w3, transfer_with_authorization(stack, auth, payload.payload["signature"]), DEPLOYER_KEY
    )
    status, body, got = post_mint(v2_header(payload))
    assert status == 402 and body["error"] == x402_reasons.v1_name(x402_reasons.NONCE_USED), body
    assert decode_payment_response_header(got["PAYMENT-RESPONSE"]).error_reason == x402_reasons.NONCE_USED
    assert rows(conn, "mint_queue") == []


# --- supply, outages, timeouts ------------------------------------------------------------------


def test_when_supply_is_exhausted_nobody_is_charged(
    w3: Web3, chain_env: ChainEnv, database_url: str, monkeypatch: pytest.MonkeyPatch, conn: Any
) -> None:
    for stack in _deploy_stack(w3, chain_env, database_url, monkeypatch, max_mints=1):
        first, second = stack.payer(), stack.payer()
        assert post_mint(v2_header(pay_v2(first, stack)))[0] == 202
        status, body, headers = post_mint(v2_header(pay_v2(second, stack)))
        assert (status, body["error"]["code"]) == (410, "supply_exhausted")
        assert "PAYMENT-RESPONSE" not in headers
        assert stack.usdc_balance(second.address) == 10 * PRICE
        assert stack.facilitator.broadcasts == 1
        drain(stack)
        assert stack.minted(first.address) == 1 and stack.minted(second.address) == 0


def test_facilitator_down_is_a_503_with_retry_after_and_charges_nothing(stack: Stack, conn: Any) -> None:
    account = stack.payer()
    headers = v2_header(pay_v2(account, stack))
    stack.facilitator.mode = "down"
    status, body, got = post_mint(headers)
    assert (status, body["error"]["code"], got.get("Retry-After")) == (503, "facilitator_unavailable", "5")
    assert rows(conn, "payments") == [] and stack.usdc_balance(account.address) == 10 * PRICE
    # Unreachable (nothing listening) is the same answer, never a 402.
    stack.facilitator.mode = "up"
    x402_facilitator.reset()
    closed_port = Facilitator(
        rpc_url=stack.chain_env.rpc_url, private_key=FACILITATOR_KEY, network=stack.network
    )
    dead_url = closed_port.url
    closed_port.close()
    real = x402_facilitator._facilitators
    x402_facilitator._facilitators = {
        stack.facilitator.url: x402_facilitator.Facilitator(dead_url, verify_timeout=2, settle_timeout=2)
    }
    try:
        status, body, _ = post_mint(headers)
        assert (status, body["error"]["code"]) == (503, "facilitator_unavailable")
    finally:
        x402_facilitator._facilitators = real
    # Back up: the very same payment goes through.
    status, body, _ = post_mint(headers)
    assert status == 202 and body["paymentStatus"] == "settled"
    assert stack.usdc_balance(account.address) == 9 * PRICE


def test_settlement_pending_is_reconciled_on_chain_into_exactly_one_mint(stack: Stack, conn: Any) -> None:
    account = stack.payer()
    headers = v2_header(pay_v2(account, stack))
    stack.facilitator.mode = "settle_pending"
    status, body, got = post_mint(headers)
    assert status == 202, body
    assert body["paymentStatus"] == "settlement_pending" and body["settlementTransaction"]
    assert decode_payment_response_header(got["PAYMENT-RESPONSE"]).error_reason == "settlement_pending"
    assert rows(conn, "mint_queue") == []
    queue_id = body["queueId"]
    _, item, _ = invoke(
        "status",
        http_event(
            "GET",
            f"/queue/item/{queue_id}",
            route="/queue/item/{queueId}",
            path_parameters={"queueId": queue_id},
        ),
    )
    assert item["status"] == "awaiting_payment" and item["payment_status"] == "settlement_pending"
    # A replay while pending: same queueId, no second settlement.
    again = post_mint(headers)[1]
    assert again["queueId"] == queue_id and stack.facilitator.broadcasts == 1
    stack.facilitator.mode = "up"
    drain(stack, reconcile=True)
    assert stack.minted(account.address) == 1
    [payment] = rows(conn, "payments")
    assert payment["status"] == "settled" and str(payment["queue_id"]) == queue_id
    assert stack.facilitator.broadcasts == 1
    status, replay, _ = post_mint(headers)
    assert (status, replay["queueId"], replay["paymentStatus"]) == (202, queue_id, "settled")


def test_a_settle_call_that_times_out_after_broadcasting_is_reconciled_without_its_hash(
    stack: Stack, conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINTQ_X402_SETTLE_TIMEOUT_SECONDS", "1")
    config.reset()
    x402_facilitator.reset()
    account = stack.payer()
    stack.facilitator.mode = "settle_hang"
    stack.facilitator.hang_seconds = 3
    status, body, _ = post_mint(v2_header(pay_v2(account, stack)))
    assert status == 202 and body["paymentStatus"] == "settlement_pending"
    assert body["settlementTransaction"] is None
    stack.facilitator.mode = "up"
    drain(stack, reconcile=True)
    assert stack.minted(account.address) == 1
    [payment] = rows(conn, "payments")
    assert payment["status"] == "settled" and payment["settlement_tx_hash"]
    assert stack.usdc_balance(stack.pay_to) == PRICE


def test_a_paid_request_that_fails_for_good_is_listed_as_refund_due(stack: Stack, conn: Any) -> None:
    account = stack.payer()
    status, body, _ = post_mint(v2_header(pay_v2(account, stack)))
    assert status == 202
    conn.execute(
        "UPDATE mint_queue SET status = 'failed', error_message = 'token paused' WHERE id = %(id)s",
        {"id": uuid.UUID(body["queueId"])},
    )
    [refund] = payments.refunds_due(conn)
    assert (refund["payer_address"], refund["amount"], refund["reason"]) == (
        account.address,
        str(PRICE),
        "token paused",
    )
