"""The x402 stack the paid-mint tests run on: PostgreSQL, anvil with an EIP-3009 test USDC and a
token, the local facilitator over HTTP, the enqueue environment pointing at them, and the real
worker to drain it. (``stack`` and ``chain_clock`` are fixtures: import them by name.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from devstack import anvil, contracts
from devstack.facilitator import Facilitator, install_multicall3, register_local_v1_network
from mintq import chain, config, db, payment_reconciler, signer, x402_facilitator
from mintq.worker.loop import Worker
from tests.support.chain import AMOUNT, MINTER_KEY, ChainEnv
from tests.support.slow_http import SlowHttp

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


def deploy_stack(
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
    yield from deploy_stack(w3, chain_env, database_url, monkeypatch, max_mints=1000)


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


def rows(conn: Any, table: str) -> list[dict[str, Any]]:
    return list(conn.execute(f"SELECT * FROM {table}").fetchall())


def the_payment(conn: Any) -> dict[str, Any]:
    [payment] = rows(conn, "payments")
    return payment


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


@pytest.fixture
def chain_clock(w3: Web3) -> Iterator[Callable[[int], None]]:
    """``advance_past(t)`` mines a block later than unix time ``t``; the wall clock comes back after."""

    def advance_past(timestamp: int) -> None:
        latest = int(w3.eth.get_block("latest")["timestamp"])
        w3.provider.make_request("evm_increaseTime", [max(timestamp - latest, 0) + 1])  # type: ignore[arg-type]
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

    yield advance_past
    # anvil serves the whole session: later tests sign with wall-clock validity windows.
    w3.provider.make_request("evm_setTime", [int(time.time())])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def reconciler(stack: Stack) -> payment_reconciler.Reconciler:
    return payment_reconciler.Reconciler(stack.chain_env.rpc_url, min_interval_seconds=0)


def through_slow_facilitator(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, slow: SlowHttp, **settings: str
) -> None:
    """The API's facilitator calls go through ``slow``; ``settings`` are more environment
    variables to set with it (e.g. a longer verify timeout)."""
    monkeypatch.setenv("MINTQ_X402_FACILITATOR_URL", slow.url)
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    config.reset()
    x402_facilitator.reset()


def through_slow_node(monkeypatch: pytest.MonkeyPatch, slow: SlowHttp) -> None:
    monkeypatch.setenv("MINTQ_RPC_URL", slow.url)
    config.reset()


StackWith = Callable[..., Stack]


@pytest.fixture
def stack_with(
    w3: Web3, chain_env: ChainEnv, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[StackWith]:
    """``stack_with(max_mints=n)``: a stack whose token has ``n`` mints, for a test about supply;
    closed at the test's end, even when it fails."""
    opened: list[Iterator[Stack]] = []

    def deploy(*, max_mints: int) -> Stack:
        steps = deploy_stack(w3, chain_env, database_url, monkeypatch, max_mints=max_mints)
        opened.append(steps)
        return next(steps)

    yield deploy
    for steps in opened:
        next(steps, None)
