"""The local stack's minter keys: one, or a signer pool.

``SIGNER_PRIVATE_KEYS`` (comma-separated) makes a pool, ``SIGNER_PRIVATE_KEY`` one signer,
and without either anvil's account 0 signs. The first key deploys the token (so it is its
admin) and every key is given ``MINTER_ROLE`` on it: a pool member without the role would
only send batches that revert.
"""

from __future__ import annotations

import logging
import os

from eth_account import Account
from web3 import Web3

from devstack import anvil, contracts

log = logging.getLogger("devstack")


def keys_from_env() -> list[str]:
    """The minter keys, first the token's admin; raises ``SystemExit`` for a key given twice."""
    pool = [k.strip() for k in os.environ.get("SIGNER_PRIVATE_KEYS", "").split(",") if k.strip()]
    single = os.environ.get("SIGNER_PRIVATE_KEY", "").strip()
    keys = pool or [single or anvil.dev_private_key(0)]
    addresses = [address(k) for k in keys]
    if len(set(addresses)) != len(addresses):
        raise SystemExit("SIGNER_PRIVATE_KEYS names the same key twice")
    return keys


def address(key: str) -> str:
    """The checksummed address of a private key."""
    return str(Account.from_key(key).address)


def set_worker_environment(keys: list[str]) -> None:
    """Set the batch worker's signer variables to ``keys`` (one key, or the pool) and clear the
    other one, which ``mintq.config`` would otherwise prefer or fall back to."""
    os.environ.pop("MINTQ_SIGNER_PRIVATE_KEY", None)
    os.environ.pop("MINTQ_SIGNER_PRIVATE_KEYS", None)
    if len(keys) == 1:
        os.environ["MINTQ_SIGNER_PRIVATE_KEY"] = keys[0]
    else:
        os.environ["MINTQ_SIGNER_PRIVATE_KEYS"] = ",".join(keys)


def grant_minters(w3: Web3, token: str, admin_key: str, keys: list[str]) -> None:
    """Give every key ``MINTER_ROLE`` on ``token`` that lacks it, granted by ``admin_key`` (the
    admin of a token this stack or the bench deployed). A token given with ``TOKEN_ADDRESS`` whose
    admin is another key cannot be changed here: that is logged, and such a signer's batches revert."""
    abi = contracts.load_artifact("MintToken")["abi"]
    token_contract = w3.eth.contract(address=Web3.to_checksum_address(token), abi=abi)
    role = token_contract.functions.MINTER_ROLE().call()
    admin_role = token_contract.functions.DEFAULT_ADMIN_ROLE().call()
    admin = address(admin_key)
    for key in keys:
        minter = address(key)
        if token_contract.functions.hasRole(role, minter).call():
            continue
        if not token_contract.functions.hasRole(admin_role, admin).call():
            log.warning("%s lacks MINTER_ROLE and %s cannot grant it: its batches will revert", minter, admin)
            continue
        contracts.transact(w3, token_contract.functions.grantRole(role, minter), admin_key)
        log.info("granted MINTER_ROLE on %s to %s", token, minter)
