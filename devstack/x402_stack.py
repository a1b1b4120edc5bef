"""x402 mode of the local stack: the test USDC, its funded payers, and a facilitator.

Every ``MINTQ_X402_*`` variable already in the environment wins over the stack's own value: a
given ``MINTQ_X402_FACILITATOR_URL`` (a proxy, a remote test facilitator) is used and no local
facilitator starts; a given ``MINTQ_X402_ASSET`` is used and no test USDC is deployed or funded.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from eth_account import Account
from web3 import Web3

from devstack import anvil, contracts

log = logging.getLogger("devstack")

#: the test USDC's price per mint (0.01 USDC) and who is funded with it
X402_PRICE = 10_000
X402_FUNDED_ACCOUNTS = range(1, 10)
X402_FUND_AMOUNT = 1_000 * 10**6
DEFAULT_FACILITATOR_PORT = 4022
#: anvil's account 8 settles payments: never the minter (account 0), so their nonces never collide.
FACILITATOR_ACCOUNT = 8


def _given(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def _test_usdc(w3: Web3, previous: dict[str, Any], deployer_key: str) -> str:
    """The stack's TestUSDC (found again from the last run's stack file, else deployed), with
    accounts 1-9 topped up."""
    known = previous.get("payment_asset")
    if isinstance(known, str) and w3.eth.get_code(Web3.to_checksum_address(known)):
        asset = Web3.to_checksum_address(known)
    else:
        asset = contracts.deploy(w3, "TestUSDC", [], deployer_key)
        log.info("deployed TestUSDC at %s", asset)
    usdc = w3.eth.contract(address=asset, abi=contracts.load_artifact("TestUSDC")["abi"])
    for index in X402_FUNDED_ACCOUNTS:
        holder = Account.from_key(anvil.dev_private_key(index)).address
        if usdc.functions.balanceOf(holder).call() < X402_FUND_AMOUNT // 2:
            contracts.transact(w3, usdc.functions.mint(holder, X402_FUND_AMOUNT), deployer_key)
    return str(asset)


def start_x402(
    w3: Web3,
    rpc_url: str,
    chain_id: int,
    deployer_key: str,
    *,
    previous: dict[str, Any],
    facilitator_port: int,
) -> tuple[dict[str, str], Any]:
    """The ``MINTQ_X402_*`` settings for the handlers, and the local facilitator we started (or None).

    ``previous`` is the last run's stack file when it was made on this very chain, else empty;
    ``facilitator_port`` 0 picks a free port.
    """
    from devstack import facilitator
    from mintq import config

    network = _given("MINTQ_X402_NETWORK") or f"eip155:{chain_id}"
    # v1 clients only know the chains in their fixed table (mintq's config holds the same names);
    # a chain outside it gets a local name, which the x402 package learns in this process only.
    v1_network = (
        _given("MINTQ_X402_V1_NETWORK")
        or config.V1_NETWORK_NAMES.get(chain_id)
        or facilitator.register_local_v1_network(chain_id)
    )
    asset = _given("MINTQ_X402_ASSET") or _test_usdc(w3, previous, deployer_key)
    server: Any = None
    facilitator_url = _given("MINTQ_X402_FACILITATOR_URL")
    if facilitator_url is None:
        facilitator.install_multicall3(rpc_url)
        server = facilitator.Facilitator(
            rpc_url=rpc_url,
            private_key=anvil.dev_private_key(FACILITATOR_ACCOUNT),
            network=network,
            v1_network=v1_network,
            port=facilitator_port,
        )
        facilitator_url = server.url
        log.info("x402: facilitator %s settles from %s", server.url, server.address)
    else:
        log.info("x402: using the facilitator at %s (MINTQ_X402_FACILITATOR_URL)", facilitator_url)
    defaults = {
        "MINTQ_X402_PRICE": str(X402_PRICE),
        "MINTQ_X402_PAY_TO": _given("PAY_TO") or Account.from_key(anvil.dev_private_key(9)).address,
        "MINTQ_X402_ASSET": asset,
        "MINTQ_X402_NETWORK": network,
        "MINTQ_X402_V1_NETWORK": v1_network,
        "MINTQ_X402_ASSET_NAME": "USDC",
        "MINTQ_X402_ASSET_VERSION": "2",
        "MINTQ_X402_FACILITATOR_URL": facilitator_url,
    }
    env = {name: _given(name) or value for name, value in defaults.items()}
    log.info(
        "x402: %s per mint in %s on %s (v1: %s), payTo %s",
        env["MINTQ_X402_PRICE"],
        asset,
        network,
        v1_network,
        env["MINTQ_X402_PAY_TO"],
    )
    return env, server
