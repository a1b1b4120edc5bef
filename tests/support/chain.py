"""Chain-side helpers for tests: deploy tokens, read balances, steer anvil."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from eth_account import Account
from web3 import Web3

from devstack import anvil, contracts
from mintq import chain, db
from mintq import signer as mintq_signer
from mintq.worker.faults import FaultHook
from mintq.worker.loop import Worker

DEPLOYER_KEY = anvil.dev_private_key(0)
MINTER_KEY = anvil.dev_private_key(1)
MINTER = Account.from_key(MINTER_KEY).address
AMOUNT = 1000 * 10**18


def fresh_addresses(n: int) -> list[str]:
    return [Account.create().address for _ in range(n)]


class ChainEnv:
    def __init__(self, rpc_url: str) -> None:
        self.rpc_url = rpc_url
        self.w3 = Web3(Web3.HTTPProvider(rpc_url))

    def deploy(self, *, max_mints: int = 100_000, contract: str = "MintToken") -> str:
        return str(
            contracts.deploy_mint_token(
                self.w3,
                DEPLOYER_KEY,
                minter=MINTER,
                max_mints=max_mints,
                amount_per_mint=AMOUNT,
                contract=contract,
            )
        )

    def token(self, address: str) -> Any:
        return self.w3.eth.contract(
            address=Web3.to_checksum_address(address), abi=contracts.load_artifact("PoisonMintToken")["abi"]
        )

    def admin(self, address: str, fn_name: str, *args: Any, wait: bool = True, tip_gwei: int = 2) -> str:
        """Send an admin call (pause, unpause, setPoisoned) from the deployer."""
        fn = getattr(self.token(address).functions, fn_name)(*args)
        sender = Account.from_key(DEPLOYER_KEY).address
        base = int(self.w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)
        tx = fn.build_transaction(
            {
                "from": sender,
                "nonce": self.w3.eth.get_transaction_count(sender, "pending"),
                "chainId": self.w3.eth.chain_id,
                "gas": 200_000,
                "maxPriorityFeePerGas": Web3.to_wei(tip_gwei, "gwei"),
                "maxFeePerGas": 4 * base + Web3.to_wei(tip_gwei, "gwei"),
            }
        )
        signed = Account.from_key(DEPLOYER_KEY).sign_transaction(tx)
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        if wait:
            assert self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=10)["status"] == 1
        return "0x" + bytes(tx_hash).hex()

    def balance(self, token: str, holder: str) -> int:
        return int(self.token(token).functions.balanceOf(Web3.to_checksum_address(holder)).call())

    def total_supply(self, token: str) -> int:
        return int(self.token(token).functions.totalSupply().call())

    def automine(self, on: bool) -> None:
        self.w3.provider.make_request("evm_setAutomine", [on])

    def mine(self) -> None:
        self.w3.provider.make_request("evm_mine", [])

    def worker(
        self,
        database_url: str,
        token: str,
        *,
        rpc_url: str | None = None,
        fault: FaultHook | None = None,
        key: str = MINTER_KEY,
        signer: mintq_signer.Signer | None = None,
    ) -> Worker:
        # No drop grace: anvil answers nonces and receipts from one state (a test of the grace
        # itself builds its worker with one).
        kwargs: dict[str, Any] = {"poll_seconds": 0.05, "min_cycle_seconds": 0.5, "drop_grace_seconds": 0.0}
        if fault is not None:
            kwargs["fault"] = fault
        return Worker(
            db.connect(database_url),
            chain.Chain(rpc_url or self.rpc_url, token),
            signer or mintq_signer.LocalSigner(key),
            chain_id=self.w3.eth.chain_id,
            **kwargs,
        )


def enqueue_all(conn: Any, payers: list[str]) -> list[uuid.UUID]:
    ids = []
    for payer in payers:
        row = db.one(
            conn, "enqueue_request", {"payer": payer, "payment_type": "free", "default_max_pending": 10}
        )
        assert row is not None and row["id"] is not None
        ids.append(row["id"])
    return ids


def drain(worker: Worker, *, seconds: float = 30) -> None:
    """Cycle until nothing is pending or in flight."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        worker.cycle(deadline)
        row = worker.conn.execute(
            "SELECT count(*) FILTER (WHERE status IN ('pending', 'processing')) AS open FROM mint_queue"
        ).fetchone()
        if row and row["open"] == 0:
            return
        time.sleep(0.05)
    raise AssertionError("the queue did not drain in time")


def run_threads(targets: list[Callable[[], Any]]) -> list[Any]:
    results: list[Any] = [None] * len(targets)

    def call(i: int) -> None:
        results[i] = targets[i]()

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(targets))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


# --- what every exactly-once test checks ----------------------------------------------


def assert_exactly_once(chain_env: ChainEnv, conn: Any, token: str) -> int:
    """The chain and the database agree that every completed request was minted once.

    Returns how many requests completed.
    """
    rows = conn.execute(
        "SELECT payer_address,"
        " count(*) FILTER (WHERE status = 'completed') AS done,"
        " count(*) FILTER (WHERE status IN ('pending', 'processing')) AS open"
        " FROM mint_queue GROUP BY 1"
    ).fetchall()
    total = 0
    for row in rows:
        assert row["open"] == 0, f"{row['payer_address']} still has open requests"
        assert chain_env.balance(token, row["payer_address"]) == AMOUNT * row["done"], row["payer_address"]
        total += row["done"]
    assert chain_env.total_supply(token) == AMOUNT * total
    history = conn.execute(
        "SELECT count(*) AS n, count(DISTINCT queue_id) AS d,"
        " count(*) FILTER (WHERE q.status IS DISTINCT FROM 'completed') AS not_completed"
        " FROM mint_history h LEFT JOIN mint_queue q ON q.id = h.queue_id"
    ).fetchone()
    assert history["n"] == history["d"] == total, "mint_history must hold one row per completed request"
    assert history["not_completed"] == 0, "a request in mint_history is not completed (e.g. also failed)"
    nonces = conn.execute(
        "SELECT count(*) AS n, count(DISTINCT (chain_id, signer_address, nonce)) AS d FROM batch_mints"
    ).fetchone()
    assert nonces["n"] == nonces["d"], "two batches share a nonce"
    assert (
        conn.execute(
            "SELECT count(*) AS n FROM batch_mints WHERE status IN ('signed', 'pending')"
        ).fetchone()["n"]
        == 0
    ), "a batch is still in flight"
    # Every confirmed batch's items are completed with its hash, and nothing else is.
    confirmed = conn.execute(
        "SELECT coalesce(sum(mint_count), 0) AS n FROM batch_mints WHERE status = 'confirmed'"
    ).fetchone()["n"]
    assert confirmed == total
    mismatched = conn.execute(
        "SELECT count(*) AS n FROM mint_queue q LEFT JOIN batch_mints b ON b.batch_tx_hash = q.mint_tx_hash"
        " WHERE q.status = 'completed' AND (b.status IS DISTINCT FROM 'confirmed' OR b.id <> q.batch_id)"
    ).fetchone()["n"]
    assert mismatched == 0, "a completed request does not point at its confirmed batch"
    return total


def statuses(conn: Any) -> dict[str, int]:
    rows = conn.execute("SELECT status::text AS s, count(*) AS n FROM mint_queue GROUP BY 1").fetchall()
    return {r["s"]: r["n"] for r in rows}


def batch_statuses(conn: Any) -> list[str]:
    return [r["s"] for r in conn.execute("SELECT status::text AS s FROM batch_mints ORDER BY nonce")]


def take_nonce(chain_env: ChainEnv, nonce: int) -> None:
    """Someone else holding the minter's key uses ``nonce`` (a 0-value self-transfer)."""
    w3 = chain_env.w3
    tx = Account.from_key(MINTER_KEY).sign_transaction(
        {
            "to": MINTER,
            "value": 0,
            "gas": 21_000,
            "nonce": nonce,
            "chainId": w3.eth.chain_id,
            "maxFeePerGas": 10**11,
            "maxPriorityFeePerGas": 10**9,
        }
    )
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(tx.raw_transaction), timeout=10)
    assert receipt["status"] == 1
