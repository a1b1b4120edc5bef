"""MintToken / PoisonMintToken against a real anvil node."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from eth_abi.abi import encode
from eth_account import Account
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractCustomError, ContractLogicError
from web3.types import TxReceipt

from devstack.anvil import Anvil, dev_private_key, start_anvil, stop_quietly
from devstack.contracts import deploy_mint_token, load_artifact, transact

pytestmark = pytest.mark.chain

ZERO = "0x" + "00" * 20
AMOUNT = 1000 * 10**18
ADMIN_KEY = dev_private_key(0)
MINTER_KEY = dev_private_key(1)
OTHER_KEY = dev_private_key(2)
ADMIN = Account.from_key(ADMIN_KEY).address
MINTER = Account.from_key(MINTER_KEY).address
OTHER = Account.from_key(OTHER_KEY).address
# Explicit gas so a reverting batch is mined (status 0) instead of failing in estimation, which lets the
# tests check on-chain state after the revert, not only the eth_call result.
REVERT_GAS = 2_000_000
MAX_GAS_PER_MINT_AT_200 = 25_300


@pytest.fixture(scope="module")
def anvil() -> Iterator[Anvil]:
    node = start_anvil(gas_limit=30_000_000)
    try:
        yield node
    finally:
        stop_quietly(node)


@pytest.fixture(scope="module")
def w3(anvil: Anvil) -> Web3:
    return Web3(Web3.HTTPProvider(anvil.rpc_url))


def make_token(w3: Web3, *, max_mints: int = 1_000, contract: str = "MintToken") -> Contract:
    address = deploy_mint_token(w3, ADMIN_KEY, minter=MINTER, max_mints=max_mints, contract=contract)
    return w3.eth.contract(address=address, abi=load_artifact(contract)["abi"])


@pytest.fixture
def token(w3: Web3) -> Contract:
    return make_token(w3)


_counter = 0


def fresh(n: int) -> list[str]:
    """``n`` never-used, random-looking addresses (unique across the whole module)."""
    global _counter  # a module-wide sequence keeps every test's recipients fresh
    start, _counter = _counter, _counter + n
    return [
        Web3.to_checksum_address(Web3.keccak(text=f"test-contract:{i}")[-20:])
        for i in range(start, start + n)
    ]


def error_data(signature: str, *args: Any) -> str:
    """ABI-encoded custom error, as it appears in revert data."""
    types = signature[signature.index("(") + 1 : -1]
    encoded = encode([t for t in types.split(",") if t], list(args))
    return "0x" + (Web3.keccak(text=signature)[:4] + encoded).hex()


def revert_data(fn: ContractFunction, sender: str) -> str:
    with pytest.raises(ContractCustomError) as info:
        fn.call({"from": sender})
    return str(info.value.data)


def mint(w3: Web3, token: Contract, recipients: list[str]) -> TxReceipt:
    return transact(w3, token.functions.batchMint(recipients), MINTER_KEY)


def mint_reverted(w3: Web3, token: Contract, recipients: list[str]) -> None:
    receipt = transact(
        w3, token.functions.batchMint(recipients), MINTER_KEY, gas=REVERT_GAS, require_success=False
    )
    assert receipt["status"] == 0


def test_configuration(token: Contract) -> None:
    assert token.functions.name().call() == "Mint Token"
    assert token.functions.symbol().call() == "MINT"
    assert token.functions.decimals().call() == 18
    assert token.functions.amountPerMint().call() == AMOUNT
    assert token.functions.maxSupply().call() == 1_000 * AMOUNT
    assert token.functions.remainingMints().call() == 1_000
    assert token.functions.totalSupply().call() == 0
    assert token.functions.hasRole(token.functions.DEFAULT_ADMIN_ROLE().call(), ADMIN).call()
    assert token.functions.hasRole(token.functions.MINTER_ROLE().call(), MINTER).call()
    assert not token.functions.hasRole(token.functions.MINTER_ROLE().call(), ADMIN).call()


def test_batch_mint_credits_each_recipient_and_emits_one_transfer_each(w3: Web3, token: Contract) -> None:
    recipients = fresh(5)
    receipt = mint(w3, token, recipients)

    for r in recipients:
        assert token.functions.balanceOf(r).call() == AMOUNT
    assert token.functions.totalSupply().call() == 5 * AMOUNT
    assert token.functions.remainingMints().call() == 995
    events = token.events.Transfer().process_receipt(receipt)
    assert [(e["args"]["from"], e["args"]["to"], e["args"]["value"]) for e in events] == [
        (ZERO, r, AMOUNT) for r in recipients
    ]
    assert len(receipt["logs"]) == 5


def test_existing_balances_and_duplicates_accumulate(w3: Web3, token: Contract) -> None:
    a, b = fresh(2)
    mint(w3, token, [a])
    mint(w3, token, [a, b, a])
    assert token.functions.balanceOf(a).call() == 3 * AMOUNT
    assert token.functions.balanceOf(b).call() == AMOUNT
    assert token.functions.totalSupply().call() == 4 * AMOUNT


def test_minted_tokens_are_ordinary_erc20(w3: Web3, token: Contract) -> None:
    # The batch path writes balances directly; a normal transfer must see them.
    mint(w3, token, [OTHER])
    transact(w3, token.functions.transfer(ADMIN, AMOUNT // 4), OTHER_KEY)
    assert token.functions.balanceOf(OTHER).call() == AMOUNT - AMOUNT // 4
    assert token.functions.balanceOf(ADMIN).call() == AMOUNT // 4
    assert token.functions.totalSupply().call() == AMOUNT


def test_non_minter_reverts(token: Contract) -> None:
    minter_role = token.functions.MINTER_ROLE().call()
    for sender in (OTHER, ADMIN):
        assert revert_data(token.functions.batchMint(fresh(1)), sender) == error_data(
            "AccessControlUnauthorizedAccount(address,bytes32)", sender, minter_role
        )


def test_exceeding_max_supply_reverts_and_mints_nothing(w3: Web3) -> None:
    token = make_token(w3, max_mints=5)
    mint(w3, token, fresh(3))
    too_many = fresh(3)

    assert revert_data(token.functions.batchMint(too_many), MINTER) == error_data(
        "MaxSupplyExceeded(uint256,uint256)", 3 * AMOUNT, 2 * AMOUNT
    )
    mint_reverted(w3, token, too_many)
    assert token.functions.totalSupply().call() == 3 * AMOUNT
    assert all(token.functions.balanceOf(r).call() == 0 for r in too_many)

    # Exactly filling the cap is allowed; then nothing more fits.
    mint(w3, token, too_many[:2])
    assert token.functions.remainingMints().call() == 0
    assert token.functions.totalSupply().call() == token.functions.maxSupply().call()
    assert revert_data(token.functions.batchMint(fresh(1)), MINTER) == error_data(
        "MaxSupplyExceeded(uint256,uint256)", AMOUNT, 0
    )


def test_zero_address_rejects_whole_batch(w3: Web3, token: Contract) -> None:
    recipients = [*fresh(2), ZERO]
    assert revert_data(token.functions.batchMint(recipients), MINTER) == error_data(
        "ERC20InvalidReceiver(address)", ZERO
    )
    mint_reverted(w3, token, recipients)
    assert token.functions.totalSupply().call() == 0
    assert token.functions.balanceOf(recipients[0]).call() == 0


def test_dirty_address_bits_revert(w3: Web3, token: Contract) -> None:
    # A hand-built call whose address word has non-zero upper bytes must not mint to the truncated address.
    (recipient,) = fresh(1)
    calldata = bytes.fromhex(token.encode_abi("batchMint", args=[[recipient]])[2:])
    dirty = calldata[:-32] + b"\x01" + calldata[-31:]
    w3.eth.call({"from": MINTER, "to": token.address, "data": calldata})  # the clean word is fine
    with pytest.raises(ContractLogicError) as info:
        w3.eth.call({"from": MINTER, "to": token.address, "data": dirty})
    assert info.value.data == "0x"  # an empty revert, like the ABI decoder's


def test_empty_batch_reverts(token: Contract) -> None:
    assert revert_data(token.functions.batchMint([]), MINTER) == error_data("EmptyBatch()")


def test_paused_reverts_until_unpaused(w3: Web3, token: Contract) -> None:
    assert revert_data(token.functions.pause(), MINTER) == error_data(
        "AccessControlUnauthorizedAccount(address,bytes32)", MINTER, b"\x00" * 32
    )
    transact(w3, token.functions.pause(), ADMIN_KEY)
    assert token.functions.paused().call()
    recipients = fresh(2)
    assert revert_data(token.functions.batchMint(recipients), MINTER) == error_data("EnforcedPause()")
    mint_reverted(w3, token, recipients)
    assert token.functions.totalSupply().call() == 0

    transact(w3, token.functions.unpause(), ADMIN_KEY)
    mint(w3, token, recipients)
    assert token.functions.totalSupply().call() == 2 * AMOUNT


def test_poison_token_reverts_only_for_poisoned_recipients(w3: Web3) -> None:
    token = make_token(w3, contract="PoisonMintToken")
    clean_a, clean_b, bad = fresh(3)
    assert revert_data(token.functions.setPoisoned(bad, True), MINTER) == error_data(
        "AccessControlUnauthorizedAccount(address,bytes32)", MINTER, b"\x00" * 32
    )
    transact(w3, token.functions.setPoisoned(bad, True), ADMIN_KEY)
    assert token.functions.poisoned(bad).call()

    assert revert_data(token.functions.batchMint([clean_a, bad]), MINTER) == error_data(
        "PoisonedRecipient(address)", bad
    )
    mint_reverted(w3, token, [clean_a, bad])
    assert token.functions.totalSupply().call() == 0

    mint(w3, token, [clean_a, clean_b])
    transact(w3, token.functions.setPoisoned(bad, False), ADMIN_KEY)
    mint(w3, token, [bad])
    assert [token.functions.balanceOf(r).call() for r in (clean_a, clean_b, bad)] == [AMOUNT] * 3
    # Everything else is inherited: the supply cap still applies.
    assert token.functions.remainingMints().call() == 997


def test_gas_per_mint_at_200_fresh_addresses(w3: Web3, token: Contract) -> None:
    recipients = fresh(200)
    receipt = mint(w3, token, recipients)
    gas_per_mint = receipt["gasUsed"] / 200
    assert gas_per_mint <= MAX_GAS_PER_MINT_AT_200, f"{gas_per_mint:.1f} gas per mint"
    assert token.functions.totalSupply().call() == 200 * AMOUNT
    assert token.functions.balanceOf(recipients[0]).call() == AMOUNT
    assert token.functions.balanceOf(recipients[-1]).call() == AMOUNT
    assert len(token.events.Transfer().process_receipt(receipt)) == 200
