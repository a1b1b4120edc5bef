"""The local stack's database belongs to one chain (``devstack.chain_database``), and the stack
says plainly when its worker will refuse to send."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from eth_account import Account
from web3 import Web3

from devstack import anvil, chain_database, postgres
from devstack.__main__ import ready_line
from devstack.chain_database import ChainIdentity, ChainMismatch, bind_database, nonce_refusal
from tests.support.worker_process import REPO_ROOT, child_env

FIRST = ChainIdentity(84532, "0x" + "a1" * 32)
SECOND = ChainIdentity(84532, "0x" + "b2" * 32)


@pytest.fixture
def dev_name(pg_server: postgres.Server) -> Iterator[str]:
    if not pg_server.can_create_databases:
        pytest.skip("needs a server the tests may create databases on")
    name = f"mintq_bind_{os.getpid()}"
    yield name
    with psycopg.connect(pg_server.admin_url, autocommit=True) as conn:
        found = conn.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (name,)
        ).fetchall()
    for (datname,) in found:
        postgres.drop_database(pg_server.admin_url, datname)


def _mark(url: str, value: str | None = None) -> Any:
    with psycopg.connect(url, autocommit=True) as conn:
        if value is not None:
            conn.execute("CREATE TABLE IF NOT EXISTS mark (v text)")
            conn.execute("INSERT INTO mark VALUES (%s)", (value,))
            return None
        return [r[0] for r in conn.execute("SELECT v FROM mark").fetchall()]


def test_a_database_stays_with_its_chain_and_a_fresh_chain_gets_a_fresh_one(
    pg_server: postgres.Server, dev_name: str
) -> None:
    url = bind_database(pg_server, dev_name, FIRST)
    _mark(url, "made on the first chain")
    assert bind_database(pg_server, dev_name, FIRST) == url  # the same chain (restarted from its state)
    assert _mark(url) == ["made on the first chain"]

    assert bind_database(pg_server, dev_name, SECOND) == url  # same name, fresh database
    with psycopg.connect(url) as conn, pytest.raises(psycopg.errors.UndefinedTable):
        conn.execute("SELECT v FROM mark")
    aside = _aside(pg_server, f"{dev_name}_{FIRST.tag}_")
    assert _mark(aside) == ["made on the first chain"], "the first chain's database is kept, not dropped"

    # Same chain, but the database is ahead of it (anvil reloaded an older state file).
    _mark(url, "ahead of the chain")
    assert bind_database(pg_server, dev_name, SECOND, renew_because="records nonces the chain lacks") == url
    with psycopg.connect(url) as conn, pytest.raises(psycopg.errors.UndefinedTable):
        conn.execute("SELECT v FROM mark")
    assert _mark(_aside(pg_server, f"{dev_name}_{SECOND.tag}_")) == ["ahead of the chain"]


def _aside(pg_server: postgres.Server, prefix: str) -> str:
    with psycopg.connect(pg_server.admin_url, autocommit=True) as conn:
        found = conn.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (prefix,)
        ).fetchall()
    assert len(found) == 1, found
    return postgres.database_url(pg_server.admin_url, found[0][0])


def test_a_database_from_before_the_record_is_set_aside_too(
    pg_server: postgres.Server, dev_name: str
) -> None:
    url = postgres.ensure_database(pg_server.admin_url, dev_name)  # what today's stacks left behind
    _mark(url, "unknown chain")
    assert bind_database(pg_server, dev_name, FIRST) == url
    assert _mark(_aside(pg_server, f"{dev_name}_unbound_")) == ["unknown chain"]


def test_a_given_database_of_another_chain_is_an_error_saying_so(
    pg_server: postgres.Server, dev_name: str
) -> None:
    url = bind_database(pg_server, dev_name, FIRST)
    given = postgres.Server(admin_url=url, kind="env")  # DATABASE_URL: never renamed or created
    assert bind_database(given, "ignored", FIRST) == url
    with pytest.raises(ChainMismatch, match=f"{dev_name} was made for chain 84532"):
        bind_database(given, "ignored", SECOND)


def test_the_ready_line_says_plainly_when_the_worker_will_refuse_to_send(
    conn: Any, database_url: str, anvil_node: Any
) -> None:
    w3 = Web3(Web3.HTTPProvider(anvil_node.rpc_url))
    chain_id = int(w3.eth.chain_id)
    signer = Account.from_key(anvil.dev_private_key(15)).address  # never sent from in this suite
    stack = {"api_url": "http://127.0.0.1:1", "payment_mode": "free"}
    assert nonce_refusal(database_url, w3, chain_id, signer) is None
    assert "REFUSES" not in ready_line(stack, None)

    # The database remembers nonce 37 of this signer as mined; the chain is at 0 (it was reset).
    conn.execute(
        "INSERT INTO batch_mints (batch_tx_hash, mint_count, status, chain_id, signer_address, token_address,"
        " nonce, gas_limit, max_fee_per_gas, max_priority_fee_per_gas)"
        " VALUES (%s, 1, 'confirmed', %s, %s, %s, 37, 100000, 1, 1)",
        ("0x" + "37" * 32, chain_id, signer, signer),
    )
    refusal = nonce_refusal(database_url, w3, chain_id, signer)
    assert refusal is not None and "nonce 37" in refusal and "refuses to reuse a nonce" in refusal
    line = ready_line(stack, refusal)
    assert "REFUSES TO SEND" in line and "nothing will be minted" in line and refusal in line


def test_the_ready_line_gives_the_mint_pages_url_beside_the_sample_call() -> None:
    free = ready_line({"api_url": "http://127.0.0.1:3000", "payment_mode": "free"}, None)
    assert "open the mint page at http://127.0.0.1:3000/ " in free
    assert "curl -s -X POST http://127.0.0.1:3000/mint" in free
    paid = ready_line({"api_url": "http://127.0.0.1:3000", "payment_mode": "x402"}, None)
    assert "pay and mint in a browser at http://127.0.0.1:3000/ " in paid
    assert "examples/x402_mint.py" in paid


def test_the_chain_identity_is_read_from_the_comment_it_writes() -> None:
    assert chain_database.parse_comment(FIRST.comment()) == FIRST
    assert chain_database.parse_comment(None) is None
    assert chain_database.parse_comment("a database comment of someone else's") is None


def test_a_worker_beside_the_stack_refuses_a_chain_its_stack_file_was_not_written_for(
    anvil_node: Any, database_url: str, tmp_path: Path
) -> None:
    stack = {
        "rpc_url": anvil_node.rpc_url,
        "chain_id": anvil_node.chain_id,
        "genesis_hash": "0x" + "00" * 32,  # the chain the file was written for is gone
        "token_address": "0x" + "11" * 20,
        "database_url": database_url,
    }
    stack_file = tmp_path / "stack.json"
    stack_file.write_text(json.dumps(stack))
    worker = subprocess.run(
        [sys.executable, "-m", "devstack.worker", "--stack", str(stack_file), "--seconds", "20"],
        cwd=REPO_ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert worker.returncode == 1
    assert "is not the one the stack file was written for" in worker.stderr, worker.stderr[-2000:]
