"""Load the committed contract artifacts and deploy them to a dev chain.

Artifacts are built by ``node scripts/build-contracts.mjs`` (``make contracts``) into
``contracts/artifacts/<ContractName>.json``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from eth_account import Account
from eth_typing import ChecksumAddress
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.types import TxParams, TxReceipt, Wei

from devstack.anvil import REPO_ROOT

ARTIFACTS_DIR = REPO_ROOT / "contracts" / "artifacts"
RECEIPT_TIMEOUT_S = 60.0


def load_artifact(name: str) -> dict[str, Any]:
    """The artifact of contract ``name`` (abi, bytecode, deployedBytecode, compiler, sourceHash)."""
    path = ARTIFACTS_DIR / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no artifact {path}; run `make contracts`")
    artifact: dict[str, Any] = json.loads(path.read_text())
    return artifact


def _fee_fields(w3: Web3) -> TxParams:
    # EIP-1559 with 2x base-fee headroom, so the tx survives a few full blocks of base-fee growth.
    base_fee = int(w3.eth.get_block("latest").get("baseFeePerGas", 0))
    tip = int(w3.eth.max_priority_fee)
    return {"maxPriorityFeePerGas": Wei(tip), "maxFeePerGas": Wei(2 * base_fee + tip)}


def _sign_and_send(w3: Web3, tx: TxParams, private_key: str) -> TxReceipt:
    signed = Account.from_key(private_key).sign_transaction(dict(tx))
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    return w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT_S)


def transact(
    w3: Web3,
    fn: ContractFunction,
    private_key: str,
    *,
    gas: int | None = None,
    require_success: bool = True,
) -> TxReceipt:
    """Sign ``fn`` locally (EIP-1559), send it and wait for the receipt.

    With ``gas=None`` the node estimates gas, which raises on a revert before anything is sent; pass an
    explicit ``gas`` (and ``require_success=False``) to get a mined, reverted receipt instead.
    """
    sender = Account.from_key(private_key).address
    params: TxParams = {
        "from": sender,
        "nonce": w3.eth.get_transaction_count(sender, "pending"),
        "chainId": w3.eth.chain_id,
        **_fee_fields(w3),
    }
    if gas is not None:
        params["gas"] = gas
    receipt = _sign_and_send(w3, fn.build_transaction(params), private_key)
    if require_success and receipt["status"] != 1:
        raise RuntimeError(f"transaction {receipt['transactionHash'].hex()} reverted")
    return receipt


def deploy(w3: Web3, name: str, args: Sequence[Any], private_key: str) -> ChecksumAddress:
    """Deploy artifact ``name`` with constructor ``args``, signed locally by ``private_key``."""
    artifact = load_artifact(name)
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    deployer = Account.from_key(private_key).address
    tx = factory.constructor(*args).build_transaction(
        {
            "from": deployer,
            "nonce": w3.eth.get_transaction_count(deployer, "pending"),
            "chainId": w3.eth.chain_id,
            **_fee_fields(w3),
        }
    )
    receipt = _sign_and_send(w3, tx, private_key)
    address = receipt.get("contractAddress")
    if receipt["status"] != 1 or address is None:
        raise RuntimeError(f"deploying {name} failed: tx {receipt['transactionHash'].hex()}")
    return Web3.to_checksum_address(address)


def deploy_mint_token(
    w3: Web3,
    deployer_key: str,
    *,
    minter: str,
    max_mints: int = 1_000_000,
    amount_per_mint: int = 1000 * 10**18,
    name: str = "Mint Token",
    symbol: str = "MINT",
    contract: str = "MintToken",
) -> ChecksumAddress:
    """Deploy a MintToken (or a constructor-compatible variant such as ``PoisonMintToken``).

    The deployer becomes the admin (DEFAULT_ADMIN_ROLE: pause/unpause, role management); ``minter``
    gets MINTER_ROLE. ``maxSupply = max_mints * amount_per_mint``.
    """
    admin = Account.from_key(deployer_key).address
    args = [
        name,
        symbol,
        max_mints * amount_per_mint,
        amount_per_mint,
        admin,
        Web3.to_checksum_address(minter),
    ]
    return deploy(w3, contract, args, deployer_key)
