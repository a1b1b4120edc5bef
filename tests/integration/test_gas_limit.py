"""The gas limit a batch is signed with (mintq.gas) against a real anvil: no batch runs out of
gas, whatever its recipients hold by the time it is mined, and fresh recipients get no margin
beyond what their calldata bytes may differ by; the in-flight window follows the block gas."""

from __future__ import annotations

import time
from typing import Any

import pytest
from eth_account import Account
from web3 import Web3

from mintq.settings import QueueSettings
from tests.support.chain import (
    AMOUNT,
    ChainEnv,
    assert_exactly_once,
    drain,
    enqueue_all,
    fresh_addresses,
    statuses,
)

pytestmark = pytest.mark.chain


def _empty_balance(chain_env: ChainEnv, token: str, holder: Any, *, tip_gwei: int) -> str:
    """``holder`` sends its whole token balance away (a real ERC-20 transfer it signs)."""
    w3 = chain_env.w3
    w3.provider.make_request("anvil_setBalance", [holder.address, hex(10**18)])
    contract = chain_env.token(token)
    amount = contract.functions.balanceOf(holder.address).call()
    base = int(w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)
    tx = contract.functions.transfer(Account.create().address, amount).build_transaction(
        {
            "from": holder.address,
            "nonce": w3.eth.get_transaction_count(holder.address, "pending"),
            "chainId": w3.eth.chain_id,
            "gas": 100_000,
            "maxPriorityFeePerGas": Web3.to_wei(tip_gwei, "gwei"),
            "maxFeePerGas": 4 * base + Web3.to_wei(tip_gwei, "gwei"),
        }
    )
    return "0x" + bytes(w3.eth.send_raw_transaction(holder.sign_transaction(tx).raw_transaction)).hex()


def test_a_batch_of_holders_who_empty_their_balances_before_it_is_mined_does_not_run_out_of_gas(
    chain_env: ChainEnv, conn: Any, database_url: str
) -> None:
    token = chain_env.deploy()
    worker = chain_env.worker(database_url, token)
    holders = [Account.create() for _ in range(6)]
    enqueue_all(conn, [h.address for h in holders])
    drain(worker)  # now each holds one mint
    fresh = fresh_addresses(6)
    # Holders, fresh recipients, and repeats of both, in one batch.
    recipients = [h.address for h in holders] + fresh + [h.address for h in holders[:3]] + fresh[:2]
    enqueue_all(conn, recipients)
    simulated = worker.chain.estimate_batch_mint(worker.signer_address, recipients)
    chain_env.automine(False)
    try:
        batch_id = worker.dispatch(QueueSettings(max_batch_size=1000))
        assert batch_id is not None
        worker.broadcast(batch_id)
        # Before the batch is mined, every holder empties its balance (a higher tip goes first):
        # each holder's first write is now a fresh recipient's, 17,100 gas dearer than simulated.
        transfers = [_empty_balance(chain_env, token, h, tip_gwei=50) for h in holders]
        chain_env.mine()
    finally:
        chain_env.automine(True)
    batch = conn.execute(
        "SELECT batch_tx_hash, gas_limit, mint_count FROM batch_mints WHERE id = %s", (batch_id,)
    ).fetchone()
    assert batch["mint_count"] == len(recipients)
    receipt = chain_env.w3.eth.get_transaction_receipt(batch["batch_tx_hash"])
    moved = [chain_env.w3.eth.get_transaction_receipt(t) for t in transfers]
    assert all(m["blockNumber"] == receipt["blockNumber"] for m in moved)
    assert all(m["transactionIndex"] < receipt["transactionIndex"] for m in moved)
    assert receipt["status"] == 1, "the batch ran out of gas"
    # The state did get dearer, past the old 10 % headroom over the simulation.
    assert receipt["gasUsed"] > simulated * 1.1
    assert receipt["gasUsed"] <= batch["gas_limit"]
    drain(worker)
    # Exactly once, though the holders' first mints have moved on: the supply counts every
    # request once, and each holder holds what the second batch gave it.
    assert statuses(conn) == {"completed": len(holders) + len(recipients)}
    assert chain_env.total_supply(token) == AMOUNT * (len(holders) + len(recipients))
    for h in holders:
        assert chain_env.balance(token, h.address) == AMOUNT * recipients.count(h.address)


def test_fresh_recipients_are_signed_for_what_they_use_and_repeats_never_run_out(
    chain_env: ChainEnv, conn: Any, database_url: str, set_setting: Any
) -> None:
    token = chain_env.deploy()
    set_setting("max_batch_size", 1000)
    worker = chain_env.worker(database_url, token)
    fresh = fresh_addresses(200)
    enqueue_all(conn, fresh + fresh[:40])  # 40 repeats
    drain(worker)
    batches = conn.execute(
        "SELECT batch_tx_hash, gas_limit, gas_used, mint_count FROM batch_mints WHERE status = 'confirmed'"
    ).fetchall()
    assert [b["mint_count"] for b in batches] == [240]
    for b in batches:
        tx = chain_env.w3.eth.get_transaction(b["batch_tx_hash"])
        calldata = bytes(tx["input"])[4 + 64 :]  # the addresses' words, after the offset and length
        zero_address_bytes = sum(calldata[i + 12 : i + 32].count(0) for i in range(0, len(calldata), 32))
        # The model prices each address byte as non-zero (16 gas, not 4) and rounds its
        # per-recipient step up: that is all that separates the limit from the gas used.
        assert b["gas_used"] <= b["gas_limit"] <= b["gas_used"] + 12 * zero_address_bytes + b["mint_count"]
    assert assert_exactly_once(chain_env, conn, token) == 240


def test_the_in_flight_window_is_what_fills_the_next_two_blocks(
    chain_env: ChainEnv, conn: Any, database_url: str, set_setting: Any
) -> None:
    token = chain_env.deploy()
    set_setting("max_batch_size", 1000)
    set_setting("max_inflight_batches", 1000)  # an upper bound far above the window
    enqueue_all(conn, fresh_addresses(150))
    worker = chain_env.worker(database_url, token)
    before = int(chain_env.w3.eth.get_block("latest")["gasLimit"])
    chain_env.w3.provider.make_request("evm_setBlockGasLimit", [hex(1_000_000)])
    chain_env.mine()
    try:
        chain_env.automine(False)
        # One batch fills a 1M-gas block (about 38 fresh mints): two keep the next two blocks full,
        # though 150 requests would make four and the setting allows 1000.
        worker.cycle(time.monotonic() + 20)
        rows = conn.execute("SELECT gas_limit, mint_count FROM batch_mints").fetchall()
        assert len(rows) == 2
        assert all(900_000 < r["gas_limit"] <= 1_000_000 for r in rows)
        chain_env.mine()
        chain_env.automine(True)
        drain(worker)
    finally:
        chain_env.automine(True)
        chain_env.w3.provider.make_request("evm_setBlockGasLimit", [hex(before)])
        chain_env.mine()
    assert assert_exactly_once(chain_env, conn, token) == 150
