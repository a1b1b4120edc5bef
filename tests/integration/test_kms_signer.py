"""The KMS signer against moto's KMS server (DIGEST made real, see tests/support/kms.py), a real
PostgreSQL and a real anvil: batches signed in KMS are mined from the key's own address."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from eth_account import Account
from eth_account.typed_transactions.typed_transaction import TypedTransaction
from eth_keys.constants import SECPK1_N
from hexbytes import HexBytes

from mintq import config, errors, kms_signer, signer
from mintq.worker import invocation
from tests.support.chain import ChainEnv, assert_exactly_once, drain, enqueue_all, fresh_addresses, statuses
from tests.support.kms import KmsServer, kms, kms_server, sample_tx

__all__ = ["kms", "kms_server"]  # fixtures, used by name


def _minter(chain_env: ChainEnv, token: str, address: str) -> None:
    """Give ``address`` gas and the token's minter role, as an operator does before deploying."""
    chain_env.w3.provider.make_request("anvil_setBalance", [address, hex(10**20)])
    role = chain_env.token(token).functions.MINTER_ROLE().call()
    chain_env.admin(token, "grantRole", role, address)


def test_moto_still_hashes_a_digest_again(kms_server: KmsServer) -> None:
    """Without ``honour_digest`` moto signs sha256(digest), which recovers no known address.
    When this fails, moto implements DIGEST (getmoto/moto#10202): drop the patch."""
    kms = signer_for(kms_server, kms_server.create_key())
    with pytest.raises(errors.SigningError, match="does not recover"):
        kms.sign(sample_tx(0))


def signer_for(server: KmsServer, key_id: str) -> kms_signer.KmsSigner:
    """A signer as the worker makes one: its own bounded client, pointed at ``server`` by the
    environment (``AWS_ENDPOINT_URL_KMS``)."""
    assert os.environ["AWS_ENDPOINT_URL_KMS"] == server.url
    return kms_signer.KmsSigner(key_id, client=kms_signer.kms_client())


def test_every_kms_signature_is_low_s_and_recovers_the_keys_address(kms: KmsServer) -> None:
    kms_key = signer_for(kms, kms.create_key())
    high_from_kms = 0
    sign = kms_key._client.sign

    def count_high(**kwargs: Any) -> Any:
        nonlocal high_from_kms
        response = sign(**kwargs)
        high_from_kms += decode_dss_signature(response["Signature"])[1] > SECPK1_N // 2
        return response

    kms_key._client.sign = count_high
    for nonce in range(48):
        signed = kms_key.sign(sample_tx(nonce))
        fields = TypedTransaction.from_bytes(HexBytes(signed.raw)).as_dict()
        assert 0 < fields["s"] <= SECPK1_N // 2, f"nonce {nonce}: high s"
        assert fields["v"] in (0, 1)
        assert Account.recover_transaction(signed.raw) == kms_key.address
    # KMS does not normalise s: about half its signatures came back high and were flipped.
    assert high_from_kms > 0


@pytest.mark.chain
def test_a_batch_signed_through_kms_is_mined_from_the_kms_keys_address(
    kms: KmsServer, chain_env: ChainEnv, conn: Any, database_url: str
) -> None:
    kms_key = signer_for(kms, kms.create_key())
    token = chain_env.deploy()
    _minter(chain_env, token, kms_key.address)
    enqueue_all(conn, fresh_addresses(12))
    worker = chain_env.worker(database_url, token, signer=kms_key)
    assert worker.signer_address == kms_key.address
    drain(worker)
    assert assert_exactly_once(chain_env, conn, token) == 12
    for batch in conn.execute("SELECT batch_tx_hash, signer_address FROM batch_mints").fetchall():
        tx = chain_env.w3.eth.get_transaction(batch["batch_tx_hash"])
        assert tx["from"] == kms_key.address == batch["signer_address"]
        assert tx["type"] == 2 and int.from_bytes(tx["s"], "big") <= SECPK1_N // 2


@pytest.mark.chain
def test_a_pool_of_two_kms_keys_drains_a_queue_at_two_nonce_sequences(
    kms: KmsServer,
    chain_env: ChainEnv,
    conn: Any,
    database_url: str,
    set_setting: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key_ids = [kms.create_key(), kms.create_key()]
    token = chain_env.deploy()
    monkeypatch.setenv("MINTQ_SIGNER_KMS_KEY_IDS", ",".join(key_ids))
    monkeypatch.setenv("MINTQ_RPC_URL", chain_env.rpc_url)
    monkeypatch.setenv("MINTQ_TOKEN_ADDRESS", token)
    config.reset()
    pool = signer.from_config()
    assert all(isinstance(s, kms_signer.KmsSigner) for s in pool) and len(pool) == 2
    for kms_key in pool:
        _minter(chain_env, token, kms_key.address)
    set_setting("max_batch_size", 4)
    set_setting("batch_interval_seconds", 0.5)
    enqueue_all(conn, fresh_addresses(40))
    # The Lambda's own path: configuration -> signers -> one worker, connection and lock each.
    monkeypatch.setattr(invocation, "_workers", [])
    faults = 0
    try:
        # As the schedule would: invocation after invocation until the line is empty (a loaded
        # machine may need more than one; each leaves no cycle running past its deadline).
        for _ in range(4):
            faults += invocation.run_invocation(remaining_ms=22_000).faults
            assert {w.signer_address for w in invocation._workers} == {s.address for s in pool}
            if statuses(conn).keys() <= {"completed"}:
                break
    finally:
        for worker in invocation._workers:
            worker.conn.close()
    assert faults == 0
    per_signer = conn.execute(
        "SELECT signer_address, array_agg(nonce ORDER BY nonce) AS nonces FROM batch_mints GROUP BY 1"
    ).fetchall()
    assert {r["signer_address"] for r in per_signer} == {s.address for s in pool}
    for row in per_signer:
        nonces = row["nonces"]
        assert nonces == list(range(len(nonces))), "each key has its own gap-free nonce sequence"
    assert assert_exactly_once(chain_env, conn, token) == 40


@pytest.mark.chain
def test_a_kms_outage_while_signing_leaves_requests_pending_and_uncharged_and_the_worker_backs_off(
    kms: KmsServer, chain_env: ChainEnv, conn: Any, database_url: str, set_setting: Any
) -> None:
    kms_key = signer_for(kms, kms.create_key())  # the address is fetched while KMS is up
    token = chain_env.deploy()
    _minter(chain_env, token, kms_key.address)
    set_setting("batch_interval_seconds", 0.5)
    enqueue_all(conn, fresh_addresses(5))
    worker = chain_env.worker(database_url, token, signer=kms_key)
    # The run's own clock advances only by its pauses, which are recorded, not waited out.
    pauses: list[float] = []

    def pause(seconds: float) -> None:
        pauses.append(seconds)

    worker.clock = lambda: sum(pauses)
    worker.sleep = pause
    kms.stop()
    try:
        summary = worker.run(10.0)
        assert summary.locked and summary.faults == summary.cycles == 5
        # Exponential backoff from the batch interval: one doubling per failed cycle.
        assert pauses == [0.5, 1.0, 2.0, 4.0]
        rows = conn.execute("SELECT status::text AS s, retry_count FROM mint_queue").fetchall()
        assert {(r["s"], r["retry_count"]) for r in rows} == {("pending", 0)}
        assert conn.execute("SELECT count(*) AS n FROM batch_mints").fetchone()["n"] == 0
        assert chain_env.w3.eth.get_transaction_count(kms_key.address, "pending") == 0
        # The status endpoints can say why the line waits.
        refusal = conn.execute("SELECT signer_address, code FROM worker_refusals").fetchone()
        assert dict(refusal) == {"signer_address": kms_key.address, "code": "signer_unavailable"}
    finally:
        kms.start()
    worker.clock, worker.sleep = time.monotonic, time.sleep
    drain(worker)
    assert statuses(conn) == {"completed": 5}
    assert conn.execute("SELECT count(*) AS n FROM worker_refusals").fetchone()["n"] == 0
    assert assert_exactly_once(chain_env, conn, token) == 5


def test_a_key_of_the_wrong_spec_or_usage_is_a_configuration_error_naming_the_spec(kms: KmsServer) -> None:
    for spec, usage in (("ECC_NIST_P256", "SIGN_VERIFY"), ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")):
        with pytest.raises(errors.ConfigurationError, match="ECC_SECG_P256K1"):
            signer_for(kms, kms.create_key(spec, usage))
    missing = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000"
    with pytest.raises(errors.ConfigurationError, match="refused"):
        signer_for(kms, missing)


def test_the_signer_pool_is_kms_keys_or_local_keys_never_both_nor_neither_nor_one_key_twice(
    kms: KmsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_arn = kms.create_key()
    key_id = key_arn.rsplit("/", 1)[1]
    monkeypatch.setenv("MINTQ_SIGNER_KMS_KEY_IDS", key_arn)
    monkeypatch.setenv("MINTQ_SIGNER_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:123456789012:secret:k")
    with pytest.raises(errors.ConfigurationError, match="not both"):
        signer.from_config()
    monkeypatch.delenv("MINTQ_SIGNER_SECRET_ARN")
    monkeypatch.delenv("MINTQ_SIGNER_KMS_KEY_IDS")
    with pytest.raises(errors.ConfigurationError, match="no signer"):
        signer.from_config()
    # The key's ARN and its bare id are one key: one address, so one worker.
    monkeypatch.setenv("MINTQ_SIGNER_KMS_KEY_IDS", f"{key_arn}, {key_id}")
    with pytest.raises(errors.ConfigurationError, match="same key twice"):
        signer.from_config()


def test_the_operator_command_prints_kms_keys_addresses_and_refuses_a_key_of_another_spec(
    kms: KmsServer,
) -> None:
    """``mintq signer address --kms-key-id`` as an operator runs it, before granting the role."""
    key_ids = [kms.create_key(), kms.create_key()]
    expected = [kms_signer.key_address(k, client=kms.client()) for k in key_ids]
    mintq = [str(Path(sys.executable).parent / "mintq"), "signer", "address"]
    args = [a for k in key_ids for a in ("--kms-key-id", k)]
    done = subprocess.run([*mintq, *args], capture_output=True, text=True, timeout=120, check=False)
    assert (done.returncode, done.stdout.split()) == (0, expected), done.stderr
    wrong = kms.create_key("ECC_NIST_P256", "SIGN_VERIFY")
    done = subprocess.run(
        [*mintq, "--kms-key-id", wrong], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 1 and not done.stdout
    assert "ECC_SECG_P256K1" in done.stderr.replace("\n", "")
