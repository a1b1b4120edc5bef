"""The local stack as a user runs it (``python -m devstack`` in its own process, on free ports,
its own state directory and database on the machine's PostgreSQL), paid by x402 clients nobody
on the project wrote, beside workers of its own, and restarted on a fresh chain."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from eth_account import Account
from web3 import Web3
from x402 import x402ClientSync
from x402.http import decode_payment_required_header, encode_payment_signature_header
from x402.mechanisms.evm.exact import ExactEvmClientScheme
from x402.mechanisms.evm.exact.v1.client import ExactEvmSchemeV1 as ExactEvmClientSchemeV1
from x402.mechanisms.evm.signers import EthAccountSigner
from x402.schemas import PaymentRequiredV1

from devstack import anvil, contracts, postgres
from devstack.facilitator import Facilitator, install_multicall3
from tests.support.devstack_process import StackProcess, http_json, start_stack, wait_for_item
from tests.support.worker_process import REPO_ROOT, child_env

pytestmark = pytest.mark.slow
_names = itertools.count()
#: x402-fetch's own network name for the chain id the local stack runs under
V1_NETWORK = "base-sepolia"


@pytest.fixture
def dev_database(pg_server: postgres.Server) -> Iterator[str]:
    """A database name for one stack on the machine's server; it, and whatever the stack set
    aside under it, is dropped afterwards."""
    if pg_server.kind != "local":
        pytest.skip("the stack's own databases need the PostgreSQL at 127.0.0.1:5432")
    name = f"mintq_devstack_{os.getpid()}_{next(_names)}"
    yield name
    with psycopg.connect(pg_server.admin_url, autocommit=True) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (name,)
            ).fetchall()
        ]
    for found in names:
        postgres.drop_database(pg_server.admin_url, found)


@pytest.fixture
def stacks() -> Iterator[list[StackProcess]]:
    """Every stack a test starts goes here, to be stopped (with its anvil) whatever happens."""
    started: list[StackProcess] = []
    yield started
    for stack in started:
        stack.stop()


def _spend_controls(client: x402ClientSync, stack: dict[str, Any]) -> x402ClientSync:
    # The test USDC is none of the package's known assets: allow it, capped at the price.
    client.set_spend_controls(
        {
            "allowed_assets": [
                {
                    "network": network,
                    "asset": stack["payment_asset"],
                    "max_amount_per_payment": str(stack["price"]),
                }
                for network in (stack["network"], stack["v1_network"])
            ]
        }
    )
    return client


def pay_with_python_v2(stack: dict[str, Any], key: str) -> tuple[int, dict[str, Any]]:
    """The x402 package's v2 client: PAYMENT-REQUIRED in, PAYMENT-SIGNATURE out."""
    status, _, headers = http_json("POST", f"{stack['api_url']}/mint", {})
    assert status == 402
    client = x402ClientSync()
    client.register(stack["network"], ExactEvmClientScheme(EthAccountSigner(Account.from_key(key))))
    payload = _spend_controls(client, stack).create_payment_payload(
        decode_payment_required_header(headers["payment-required"])
    )
    header = {"PAYMENT-SIGNATURE": encode_payment_signature_header(payload)}
    status, body, _ = http_json("POST", f"{stack['api_url']}/mint", {}, header)
    return status, body


def pay_with_python_v1(stack: dict[str, Any], key: str) -> tuple[int, dict[str, Any]]:
    """The x402 package's v1 client, which knows networks by their v1 names only."""
    status, challenge, _ = http_json("POST", f"{stack['api_url']}/mint", {})
    assert status == 402
    client = x402ClientSync()
    client.register_v1(V1_NETWORK, ExactEvmClientSchemeV1(EthAccountSigner(Account.from_key(key))))
    payload = _spend_controls(client, stack).create_payment_payload(
        PaymentRequiredV1.model_validate(challenge)
    )
    status, body, _ = http_json(
        "POST", f"{stack['api_url']}/mint", {}, {"X-PAYMENT": encode_payment_signature_header(payload)}
    )
    return status, body


def pay_with_x402_fetch(stack: dict[str, Any], key: str) -> dict[str, Any]:
    """npm x402-fetch 1.2 (v1) through ``examples/x402_fetch_mint.mjs``: its one JSON line."""
    done = subprocess.run(
        ["node", "examples/x402_fetch_mint.mjs", stack["api_url"], key],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"x402-fetch failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_x402_v1_and_v2_clients_pay_two_local_stacks_side_by_side_out_of_the_box(
    tmp_path: Path, dev_database: str, stacks: list[StackProcess]
) -> None:
    for side in ("a", "b"):
        stacks.append(
            start_stack(tmp_path / side, database_name=f"{dev_database}_{side}", payment_mode="x402")
        )
    first, second = (s.stack() for s in stacks)
    assert first["facilitator_url"] != second["facilitator_url"], "each stack runs its own facilitator"
    assert first["v1_network"] == second["v1_network"] == V1_NETWORK

    fetched = pay_with_x402_fetch(first, anvil.dev_private_key(1))
    assert fetched["status"] == 202, fetched
    assert fetched["paymentResponse"]["success"] is True
    assert fetched["paymentResponse"]["network"] == V1_NETWORK
    v1_status, v1_body = pay_with_python_v1(first, anvil.dev_private_key(2))
    assert v1_status == 202, v1_body
    v2_status, v2_body = pay_with_python_v2(second, anvil.dev_private_key(3))
    assert v2_status == 202, v2_body

    for stack, body, key in (
        (first, fetched["body"], 1),
        (first, v1_body, 2),
        (second, v2_body, 3),
    ):
        item = wait_for_item(stack["api_url"], body["queueId"])
        assert item["status"] == "completed", item
        assert item["payer_address"] == Account.from_key(anvil.dev_private_key(key)).address


def test_a_given_facilitator_is_used_and_a_worker_beside_no_worker_reconciles_and_mints(
    tmp_path: Path, dev_database: str, stacks: list[StackProcess]
) -> None:
    node = anvil.start_anvil(chain_id=84532)
    try:
        install_multicall3(node.rpc_url)
        ours = Facilitator(
            rpc_url=node.rpc_url,
            private_key=anvil.dev_private_key(7),
            network="eip155:84532",
            v1_network=V1_NETWORK,
        )
        try:
            _given_facilitator_and_worker_beside(tmp_path, dev_database, stacks, node, ours)
        finally:
            ours.close()
    finally:
        for stack in stacks:
            stack.stop()  # before its chain goes
        node.stop()


def _given_facilitator_and_worker_beside(
    tmp_path: Path, dev_database: str, stacks: list[StackProcess], node: anvil.Anvil, ours: Facilitator
) -> None:
    stacks.append(
        start_stack(
            tmp_path / "stack",
            database_name=dev_database,
            payment_mode="x402",
            args=["--no-worker"],
            env={"RPC_URL": node.rpc_url, "MINTQ_X402_FACILITATOR_URL": ours.url},
        )
    )
    stack = stacks[0].stack()
    assert stack["facilitator_url"] == ours.url
    assert stack["environment"]["MINTQ_X402_FACILITATOR_URL"] == ours.url
    # The settlement is broadcast but its answer "times out": only the worker can finish it.
    ours.mode = "settle_pending"
    status, body = pay_with_python_v2(stack, anvil.dev_private_key(4))
    assert status == 202, body
    assert body["paymentStatus"] == "settlement_pending"
    assert (ours.verify_calls, ours.settle_calls) == (1, 1), "the given facilitator heard the payment"
    ours.mode = "up"

    worker = subprocess.run(
        [
            sys.executable,
            "-m",
            "devstack.worker",
            "--stack",
            str(stacks[0].state_dir / "stack.json"),
            "--seconds",
            "30",
        ],
        cwd=REPO_ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert worker.returncode == 0, worker.stderr[-3000:]
    summary = json.loads(worker.stdout.strip().splitlines()[-1])
    assert summary["errors"] == 0, worker.stderr[-3000:]
    item = wait_for_item(stack["api_url"], body["queueId"], timeout=5)
    assert (item["status"], item["payment_status"]) == ("completed", "settled"), item


def _mint_once(stack: StackProcess, payer: str) -> dict[str, Any]:
    api = stack.stack()["api_url"]
    status, body, _ = http_json("POST", f"{api}/mint", {"payer": payer})
    assert status == 202, body
    return wait_for_item(api, body["queueId"])


def test_a_stack_started_again_on_the_same_postgresql_on_a_fresh_or_shorter_chain_mints_again(
    tmp_path: Path, dev_database: str, stacks: list[StackProcess]
) -> None:
    """``make dev`` again after a hard stop (anvil reloads an older state file) and after ``make
    clean`` (or a fresh clone: a fresh chain at nonce 0), beside the database the earlier runs left
    on the shared server: every run mints."""
    state = tmp_path / "local"

    def start() -> StackProcess:
        stacks.append(start_stack(state, database_name=dev_database))
        assert "REFUSES" not in stacks[-1].ready_line()
        return stacks[-1]

    first = _mint_once(start(), Account.create().address)
    assert first["status"] == "completed", first
    stacks[-1].stop()  # Ctrl-C: anvil saves its state

    again = start()  # the same chain: the same database, with the first mint in it
    assert wait_for_item(again.stack()["api_url"], first["id"], timeout=5)["status"] == "completed"
    assert _mint_once(again, Account.create().address)["status"] == "completed"
    again.kill_hard()  # the second mint's nonce never reaches the state file

    after_cut = start()
    assert _mint_once(after_cut, Account.create().address)["status"] == "completed"
    assert "records a history this chain does not have" in after_cut.log()
    after_cut.stop()

    shutil.rmtree(state)  # make clean, or a fresh clone
    fresh = start()
    assert _mint_once(fresh, Account.create().address)["status"] == "completed"
    assert "kept it as" in fresh.log(), "the first chain's database is set aside, not dropped"


def test_a_stack_whose_worker_will_refuse_to_send_says_so_in_its_ready_line_and_queue_status(
    tmp_path: Path, database_url: str, conn: Any, stacks: list[StackProcess]
) -> None:
    """A database given with DATABASE_URL is never renewed: one that remembers this signer's nonce
    37 as mined beside a fresh chain (from before databases recorded their chain) gets a worker
    that refuses to reuse a nonce, and the user is told where they look first."""
    signer = Account.from_key(anvil.dev_private_key(0)).address
    conn.execute(
        "INSERT INTO batch_mints (batch_tx_hash, mint_count, status, chain_id, signer_address, token_address,"
        " nonce, gas_limit, max_fee_per_gas, max_priority_fee_per_gas)"
        " VALUES (%s, 1, 'confirmed', 84532, %s, %s, 37, 100000, 1, 1)",
        ("0x" + "37" * 32, signer, signer),
    )
    stacks.append(
        start_stack(tmp_path / "stack", database_name="ignored", env={"DATABASE_URL": database_url})
    )
    line = stacks[0].ready_line()
    assert "REFUSES TO SEND" in line and "nonce 37" in line, line

    api = stacks[0].stack()["api_url"]
    status, body, _ = http_json("POST", f"{api}/mint", {"payer": Account.create().address})
    assert status == 202, body
    deadline = time.monotonic() + 60
    while True:
        _, queue, _ = http_json("GET", f"{api}/queue/status")
        if queue["worker"]["state"] == "refusing" or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert queue["worker"]["state"] == "refusing", queue
    assert [s["code"] for s in queue["worker"]["signers"]] == ["nonce_conflict"], queue
    assert "nonce 37" in queue["worker"]["reason"]


def test_a_stack_started_with_a_signer_pool_gives_every_key_the_minter_role_and_mints_through_several(
    tmp_path: Path, database_url: str, conn: Any, set_setting: Any, stacks: list[StackProcess]
) -> None:
    """``SIGNER_PRIVATE_KEYS``: the first key deploys the token, every key gets MINTER_ROLE, and
    the batch function runs one worker per key (a key without the role could only send batches
    that revert, so its worker would refuse and leave every batch to the first)."""
    keys = [anvil.dev_private_key(i) for i in (0, 5, 6)]
    addresses = [Account.from_key(k).address for k in keys]
    set_setting("max_batch_size", 2)
    set_setting("batch_interval_seconds", 1)
    stacks.append(
        start_stack(
            tmp_path / "stack",
            database_name="ignored",
            env={"DATABASE_URL": database_url, "SIGNER_PRIVATE_KEYS": ",".join(keys)},
        )
    )
    assert "REFUSES" not in stacks[0].ready_line()
    stack = stacks[0].stack()
    assert stack["signer_addresses"] == addresses
    api = stack["api_url"]
    queued = []
    for _ in range(12):
        status, body, _ = http_json("POST", f"{api}/mint", {"payer": Account.create().address})
        assert status == 202, body
        queued.append(body["queueId"])
    assert {wait_for_item(api, q)["status"] for q in queued} == {"completed"}
    w3 = Web3(Web3.HTTPProvider(stack["rpc_url"]))
    token = w3.eth.contract(address=stack["token_address"], abi=contracts.load_artifact("MintToken")["abi"])
    role = token.functions.MINTER_ROLE().call()
    assert all(token.functions.hasRole(role, a).call() for a in addresses)
    sent = conn.execute("SELECT signer_address, status::text FROM batch_mints").fetchall()
    assert {b["status"] for b in sent} == {"confirmed"}
    assert len({b["signer_address"] for b in sent}) >= 2, "more than the first key sent batches"
