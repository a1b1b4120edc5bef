"""What ``make dev`` brings up before serving: the chain (adopted, reloaded from its state file or
started), the database made for that chain, migrated, and the token deployed once."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from web3 import Web3

from devstack import anvil, chain_database, contracts, postgres, signers

log = logging.getLogger("devstack")


def env(name: str) -> str | None:
    """The variable's value stripped, or None when it is unset or blank."""
    value = os.environ.get(name, "").strip()
    return value or None


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object kept in ``path``; empty when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (and may be signalled by us)."""
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def start_chain(
    state_dir: Path, rpc_port: int, block_time: float, chain_id: int
) -> tuple[str, anvil.Anvil | None, int | None]:
    """Returns the RPC URL, the node we started (to stop on exit) and an adopted anvil's pid."""
    url = env("RPC_URL")
    if url:
        return url, None, None
    anvil_file = state_dir / "anvil.json"
    previous = read_json(anvil_file)
    pid, port = previous.get("pid"), previous.get("port")
    if isinstance(pid, int) and isinstance(port, int) and pid_alive(pid):
        url = f"http://127.0.0.1:{port}"
        if anvil.rpc_alive(url):
            log.info("adopting anvil pid %s left running by a previous run", pid)
            return url, None, pid
    node = anvil.start_anvil(
        port=rpc_port,
        block_time=block_time,
        chain_id=chain_id,
        state_path=state_dir / "anvil-state.json",
        new_session=True,  # survives a kill -9 of this process, to be adopted on restart
        log_path=state_dir / "anvil.log",
    )
    if node.process is not None:
        anvil_file.write_text(json.dumps({"pid": node.process.pid, "port": node.port}))
    return node.rpc_url, node, None


def start_database(
    server: postgres.Server,
    name: str,
    identity: chain_database.ChainIdentity,
    w3: Web3,
    signer_addresses: list[str],
) -> tuple[str, str | None]:
    """The database made for this chain, migrated, and why the worker would refuse to send (if
    it would: only a database given with DATABASE_URL, which is never renewed)."""
    from mintq import migrations

    def refusal_of(url: str) -> str | None:
        found = (chain_database.nonce_refusal(url, w3, identity.chain_id, s) for s in signer_addresses)
        return next((r for r in found if r), None)

    url = chain_database.bind_database(server, name, identity)
    applied = migrations.apply(url)
    refusal = refusal_of(url)
    if refusal and server.can_create_databases:
        # Same chain by its genesis, but a shorter history than the database remembers.
        url = chain_database.bind_database(
            server, name, identity, renew_because=f"records a history this chain does not have ({refusal})"
        )
        applied = migrations.apply(url)
        refusal = refusal_of(url)
    log.info("postgres (%s) ready; migrations applied now: %s", server.kind, applied or "none")
    return url, refusal


def ensure_token(w3: Web3, signer_key: str, previous: dict[str, Any]) -> str:
    given = env("TOKEN_ADDRESS")
    if given:
        return Web3.to_checksum_address(given)
    known = previous.get("token_address")
    if isinstance(known, str) and w3.eth.get_code(Web3.to_checksum_address(known)):
        return Web3.to_checksum_address(known)
    minter = signers.address(signer_key)
    address = contracts.deploy_mint_token(w3, signer_key, minter=minter)
    log.info("deployed MintToken at %s (minter %s)", address, minter)
    return str(address)
