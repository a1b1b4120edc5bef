"""``mintq stats --rpc-url``: every signer's nonce and balance in one batched JSON-RPC request
under one overall timeout, against a real anvil and against a node that never answers."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest

from mintq.cli.main import main
from tests.support.chain import ChainEnv, fresh_addresses
from tests.support.slow_http import SlowHttp


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def record_batch(conn: Any, signer: str, nonce: int) -> None:
    """A batch ``signer`` recorded at ``nonce`` and sent, not yet mined."""
    conn.execute(
        "INSERT INTO batch_mints (batch_tx_hash, mint_count, status, sent_at, chain_id, signer_address,"
        " token_address, nonce, gas_limit, max_fee_per_gas, max_priority_fee_per_gas)"
        " VALUES (%(hash)s, 2, 'pending', now(), 31337, %(signer)s, %(token)s, %(nonce)s, 100000, 1, 1)",
        {"hash": "0x" + os.urandom(32).hex(), "signer": signer, "token": "0x" + "22" * 20, "nonce": nonce},
    )


@pytest.mark.chain
def test_stats_reads_every_signers_nonce_and_balance_in_one_request(
    chain_env: ChainEnv, database_url: str, conn: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    w3 = chain_env.w3
    signers = list(w3.eth.accounts[15:18])
    sent = w3.eth.send_transaction({"from": signers[0], "to": signers[1], "value": 12345})
    w3.eth.wait_for_transaction_receipt(sent, timeout=10)
    recorded = {signers[0]: 7, signers[1]: 0, signers[2]: 3}
    for signer, nonce in recorded.items():
        record_batch(conn, signer, nonce)

    with SlowHttp(chain_env.rpc_url) as counted:  # forwards, counting the requests
        code, out, err = run(
            capsys, "--database-url", database_url, "stats", "--rpc-url", counted.url, "--json"
        )
        requests = counted.arrived["/"]
    assert code == 0, err
    assert requests == 1  # three signers, two reads each: one batched round trip
    rows = {row["signer_address"]: row for row in json.loads(out)["signers"]}
    assert set(rows) == set(signers)
    for signer, nonce in recorded.items():
        mined = w3.eth.get_transaction_count(signer, "latest")
        assert rows[signer] == {
            "signer_address": signer,
            "balance_wei": str(w3.eth.get_balance(signer, "latest")),
            "chain_nonce": mined,
            "recorded_next_nonce": nonce + 1,
            "nonce_lag": nonce + 1 - mined,
        }
    assert rows[signers[0]]["chain_nonce"] >= 1  # the transfer above counts


def test_stats_reports_a_node_that_never_answers_within_one_overall_timeout(
    database_url: str, conn: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    signers = fresh_addresses(3)
    for nonce, signer in enumerate(signers):
        record_batch(conn, signer, nonce)
    url = ["--database-url", database_url]
    with SlowHttp("http://127.0.0.1:9") as silent:  # accepts, reads the request, never answers
        silent.on("/", "hang")
        started = time.monotonic()
        code, out, err = run(capsys, *url, "stats", "--rpc-url", silent.url, "--rpc-timeout", "1", "--json")
        took = time.monotonic() - started
        asked = silent.arrived["/"]
        # Per call, three signers' six reads would have taken six timeouts; here one in all.
        assert code == 0, err
        assert took < 2.5, f"stats took {took:.1f} s with a 1 s RPC timeout"
        assert asked == 1
        stats = json.loads(out)
        assert {row["signer_address"] for row in stats["signers"]} == set(signers)
        assert all(
            row
            == {
                "signer_address": row["signer_address"],
                "error": "RPC unreachable: no answer from the node within 1 s",
            }
            for row in stats["signers"]
        )

        code, out, err = run(capsys, *url, "stats", "--rpc-url", silent.url, "--rpc-timeout", "1")
    assert code == 0 and "Traceback" not in out + err
    assert "pending" in out and "signers on chain" in out
    # Said once, naming the node, however many signers it failed for.
    assert out.count("no answer from the node within 1 s") == 1 and silent.url in out
