"""The ``mintq`` operators' command against a real PostgreSQL (and anvil where it reads the chain)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from devstack import postgres
from mintq import db
from mintq.cli.main import main
from tests.support.chain import ChainEnv, assert_exactly_once, drain, enqueue_all, fresh_addresses, statuses
from tests.support.events import http_event, invoke
from tests.support.payment_rows import insert_payment
from tests.support.ports import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()  # drop what came before (the worker's EMF metrics print to stdout)
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    code, out, err = run(capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def fail_requests(conn: Any, ids: list[uuid.UUID], reason: str, *, days_ago: float = 0) -> None:
    conn.execute(
        "UPDATE mint_queue SET status = 'failed', error_message = %(r)s,"
        " processed_at = now() - make_interval(secs => %(s)s) WHERE id = ANY(%(ids)s)",
        {"r": reason, "s": days_ago * 86400, "ids": ids},
    )
    claimed(conn)


def claimed(conn: Any) -> None:
    """As the worker would have: the claim cursor is past every request that was tried."""
    conn.execute(
        "UPDATE queue_cursor SET claimed_through = (SELECT max(queue_position) FROM mint_queue"
        " WHERE status <> 'pending')"
    )


def paid_failed_request(conn: Any, payer: str) -> uuid.UUID:
    """A settled x402 payment whose mint failed for good: listed in refunds_due."""
    payment = insert_payment(conn, payer, "settled", settlement_tx_hash="0x" + os.urandom(32).hex())
    conn.execute(
        "INSERT INTO mint_queue (id, queue_position, enqueue_position, payer_address, payment_type, payment_id,"
        " status, error_message, processed_at)"
        " VALUES (%(q)s, nextval('mint_queue_position_seq'), 1, %(p)s, 'x402', %(pid)s, 'failed',"
        " 'max supply reached: the token has 0 mints left', now() - interval '90 days')",
        {"q": payment["queue_id"], "p": payer, "pid": payment["id"]},
    )
    claimed(conn)
    return payment["queue_id"]


SIGNER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def record_inflight_batch(conn: Any) -> None:
    """A batch the worker recorded and sent, not yet mined (for the per-signer figures)."""
    conn.execute(
        "INSERT INTO batch_mints (batch_tx_hash, mint_count, status, sent_at, chain_id, signer_address,"
        " token_address, nonce, gas_limit, max_fee_per_gas, max_priority_fee_per_gas)"
        " VALUES (%(hash)s, 2, 'pending', now(), 31337, %(signer)s, %(token)s, 0, 100000, 1, 1)",
        {"hash": "0x" + os.urandom(32).hex(), "signer": SIGNER, "token": "0x" + "22" * 20},
    )


# --- migrate -------------------------------------------------------------------------


def test_migrate_lists_pending_then_applies_them_under_the_lock(
    pg_server: postgres.Server, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"mintq_cli_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    url = postgres.ensure_database(pg_server.admin_url, name)
    try:
        before = run_json(capsys, "--database-url", url, "migrate", "--status")
        assert before and {m["state"] for m in before} == {"pending"}
        applied = run_json(capsys, "--database-url", url, "migrate")["applied"]
        assert applied == [m["name"] for m in before]
        after = run_json(capsys, "--database-url", url, "migrate", "--status")
        assert {m["state"] for m in after} == {"applied"} and all(m["applied_at"] for m in after)
        assert run_json(capsys, "--database-url", url, "migrate")["applied"] == []
    finally:
        postgres.drop_database(pg_server.admin_url, name)


# --- settings ------------------------------------------------------------------------


def test_settings_set_stores_a_valid_value_and_refuses_a_bad_one_with_its_rule(
    database_url: str, conn: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        run_json(capsys, "--database-url", database_url, "settings", "set", "batch_interval_seconds", "2.5")[
            "value"
        ]
        == "2.5"
    )
    for key, value, rule in [
        ("batch_interval_seconds", "-1", "a number above 0"),
        ("batch_interval_seconds", "nan", "a number above 0"),
        ("max_batch_size", "1.5", "a whole number above 0"),
        ("worker_paused", "maybe", "true or false"),
        # Floors the worker would otherwise apply silently over a stored value:
        ("fee_bump_percent", "5", "at least 10 (nodes refuse a replacement"),
        ("idempotency_key_retention_hours", "1", "at least 24"),
        ("no_such_setting", "1", "unknown setting"),
    ]:
        code, _, err = run(capsys, "--database-url", database_url, "settings", "set", "--", key, value)
        assert code == 1, (key, value)
        assert rule in " ".join(err.split()), err
    stored = {r["key"]: r["value"] for r in conn.execute("SELECT key, value FROM system_settings")}
    assert stored["batch_interval_seconds"] == "2.5"
    assert stored["max_batch_size"] == "50" and stored["worker_paused"] == "false"
    assert "no_such_setting" not in stored
    listed = run_json(capsys, "--database-url", database_url, "settings", "get", "batch_interval_seconds")
    assert listed[0]["value"] == "2.5" and listed[0]["valid"] is True
    # A bad value stored by hand is shown as one the worker ignores.
    conn.execute("UPDATE system_settings SET value = 'ten' WHERE key = 'max_batch_size'")
    row = run_json(capsys, "--database-url", database_url, "settings", "get", "max_batch_size")[0]
    assert row["valid"] is False


def test_usage_errors_exit_2_and_refusals_exit_1_from_the_installed_command(database_url: str) -> None:
    exe = Path(sys.executable).with_name("mintq")
    assert exe.exists(), "make test installs the project (pip install -e .), which provides `mintq`"
    env = {**os.environ, "MINTQ_DATABASE_URL": database_url}
    usage = subprocess.run(
        [exe, "batches", "list", "--status", "lost"], check=False, capture_output=True, text=True, env=env
    )
    assert usage.returncode == 2
    refused = subprocess.run(
        [exe, "requests", "show", "not-a-uuid"], check=False, capture_output=True, text=True, env=env
    )
    assert refused.returncode == 1 and "queueId must be a UUID" in refused.stderr
    ok = subprocess.run([exe, "stats", "--json"], check=False, capture_output=True, text=True, env=env)
    assert ok.returncode == 0 and json.loads(ok.stdout)["counts"]["pending"] == 0
    # No database given at all is wrong usage, and the message says how to give one.
    bare = {k: v for k, v in env.items() if not k.startswith("MINTQ_DATABASE")}
    nowhere = subprocess.run([exe, "stats"], check=False, capture_output=True, text=True, env=bare)
    assert nowhere.returncode == 2, nowhere.stderr
    assert "no database given" in nowhere.stderr and ".local/stack.json" in " ".join(nowhere.stderr.split())


# --- stats, requests, retry ----------------------------------------------------------


def test_stats_counts_and_requests_show(
    database_url: str, conn: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = enqueue_all(conn, fresh_addresses(3))
    stats = run_json(capsys, "--database-url", database_url, "stats")
    assert stats["counts"]["pending"] == 3 and stats["oldest_pending_seconds"] >= 0
    assert stats["paused"] is False and stats["inflight"] == []
    shown = run_json(capsys, "--database-url", database_url, "requests", "show", str(ids[1]))
    assert shown["id"] == str(ids[1]) and shown["status"] == "pending" and shown["queue_position"] == 2
    code, _, err = run(capsys, "--database-url", database_url, "requests", "show", str(uuid.uuid4()))
    assert code == 1 and "no request" in err


def test_stats_still_shows_the_queue_when_the_rpc_is_unreachable(
    database_url: str, conn: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    enqueue_all(conn, fresh_addresses(2))
    record_inflight_batch(conn)
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there: connection refused
    stats = run_json(capsys, "--database-url", database_url, "stats", "--rpc-url", dead)
    assert stats["counts"]["pending"] == 2
    assert [s["signer_address"].lower() for s in stats["signers"]] == [SIGNER.lower()]
    assert stats["signers"][0]["error"].startswith("RPC unreachable")
    code, out, _ = run(capsys, "--database-url", database_url, "stats", "--rpc-url", dead)
    assert code == 0 and "RPC unreachable" in out and "pending" in out


def test_retry_failed_is_safe_shows_the_count_first_and_runs_in_one_transaction(
    database_url: str, conn: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    reverted, supply, other = (enqueue_all(conn, fresh_addresses(n)) for n in (2, 1, 1))
    fail_requests(conn, reverted, "batch reverted: EnforcedPause()")
    fail_requests(conn, supply, "max supply reached: the token has 0 mints left")
    fail_requests(conn, other, "mint would revert: PoisonedRecipient(0x1)")
    paid = paid_failed_request(conn, fresh_addresses(1)[0])
    url = ["--database-url", database_url]

    dry = run_json(capsys, *url, "requests", "retry-failed", "--dry-run")
    assert (dry["matched"], dry["requeued"]) == (3, 0)
    assert str(paid) not in {r["id"] for r in dry["requests"]}
    assert statuses(conn)["failed"] == 5

    # Declining at the prompt changes nothing.
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    code, out, _ = run(capsys, *url, "requests", "retry-failed", "--reason-like", "%revert%")
    assert code == 1 and "3 failed request(s) can be retried" in out
    assert statuses(conn)["failed"] == 5

    done = run_json(capsys, *url, "requests", "retry-failed", "--reason-like", "batch reverted%", "--yes")
    assert (done["matched"], done["requeued"]) == (2, 2)
    rows = conn.execute(
        "SELECT status::text AS s, retry_count, error_message, processed_at FROM mint_queue WHERE id = ANY(%(i)s)",
        {"i": reverted},
    ).fetchall()
    assert all(r["s"] == "pending" and r["retry_count"] == 0 and r["error_message"] is None for r in rows)
    positions = [db.one(conn, "queue_item", {"id": i})["queue_position"] for i in reverted]
    assert sorted(positions) == [1, 2]  # back in line, and counted: the stats agree
    assert conn.execute("SELECT pending_count FROM queue_stats").fetchone()["pending_count"] == 2

    # Supply-exhausted failures need --force; the paid one is never retried.
    assert run_json(capsys, *url, "requests", "retry-failed", "--yes")["requeued"] == 1
    forced = run_json(capsys, *url, "requests", "retry-failed", "--force", "--yes")
    assert forced["requeued"] == 1 and forced["requests"][0]["id"] == str(supply[0])
    assert db.one(conn, "queue_item", {"id": paid})["status"] == "failed"


# --- batches, pause, resume (the chain) ----------------------------------------------


@pytest.mark.chain
def test_pause_stops_claims_but_finishes_in_flight_and_resume_mints(
    chain_env: ChainEnv, database_url: str, conn: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    token = chain_env.deploy()
    url = ["--database-url", database_url]
    worker = chain_env.worker(database_url, token)
    # One batch recorded and sent, its receipt not yet seen: in flight when the pause lands.
    chain_env.automine(False)
    enqueue_all(conn, fresh_addresses(3))
    worker.cycle(time.monotonic() + 3.5)
    assert statuses(conn) == {"processing": 3}
    assert run_json(capsys, *url, "pause")["paused"] is True
    later = enqueue_all(conn, fresh_addresses(2))
    chain_env.automine(True)
    chain_env.mine()
    drain_until = time.monotonic() + 20
    while statuses(conn).get("processing") and time.monotonic() < drain_until:
        worker.cycle(drain_until)
    assert statuses(conn) == {"completed": 3, "pending": 2}  # finished in flight, claimed nothing new
    stats = run_json(capsys, *url, "stats", "--rpc-url", chain_env.rpc_url)
    assert stats["paused"] is True and stats["counts"]["pending"] == 2
    (signer,) = stats["signers"]
    assert signer["nonce_lag"] == 0 and int(signer["balance_wei"]) > 0
    _, status_body, _ = invoke("status", http_event("GET", "/queue/status"))
    assert status_body["paused"] is True

    run_json(capsys, *url, "resume")
    drain(worker)
    assert statuses(conn) == {"completed": 5}
    assert assert_exactly_once(chain_env, conn, token) == 5
    assert db.one(conn, "queue_item", {"id": later[0]})["status"] == "completed"

    listed = run_json(capsys, *url, "batches", "list", "--status", "confirmed")
    assert len(listed) == 2 and sum(b["mint_count"] for b in listed) == 5
    by_nonce = run_json(capsys, *url, "batches", "show", "--nonce", str(listed[-1]["nonce"]))
    assert by_nonce[0]["id"] == listed[-1]["id"] and by_nonce[0]["attempts"][0]["status"] == "mined"
    # Wei is text for the batch and its attempts alike (exact for any JSON reader).
    assert all(
        isinstance(by_nonce[0]["attempts"][0][k], str)
        for k in ("max_fee_per_gas", "max_priority_fee_per_gas")
    )
    assert isinstance(by_nonce[0]["max_fee_per_gas"], str)
    by_id = run_json(capsys, *url, "batches", "show", listed[0]["id"])
    assert by_id[0]["mint_count"] == listed[0]["mint_count"]
    assert "raw_tx" not in json.dumps(by_id)


def test_pause_close_api_answers_503_with_retry_after_until_resume(
    database_url: str, conn: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    url = ["--database-url", database_url]
    payer = fresh_addresses(1)[0]
    assert run_json(capsys, *url, "pause", "--close-api") == {"paused": True, "api_closed": True}
    status, body, headers = invoke("enqueue", http_event("POST", "/mint", body={"payer": payer}))
    assert status == 503 and body["error"]["code"] == "api_closed" and headers.get("Retry-After")
    assert statuses(conn) == {}
    run_json(capsys, *url, "resume")
    status, body, _ = invoke("enqueue", http_event("POST", "/mint", body={"payer": payer}))
    assert status == 202 and statuses(conn) == {"pending": 1}


# --- refunds, cleanup, signer --------------------------------------------------------


def test_refunds_list_as_csv(database_url: str, conn: Any, capsys: pytest.CaptureFixture[str]) -> None:
    payer = fresh_addresses(1)[0]
    queue_id = paid_failed_request(conn, payer)
    code, out, _ = run(capsys, "--database-url", database_url, "refunds", "list", "--format", "csv")
    assert code == 0
    header, line = out.strip().splitlines()
    assert header.split(",")[:3] == ["payment_id", "queue_id", "payer_address"]
    assert str(queue_id) in line and payer in line and ",10000," in line


def test_cleanup_deletes_old_finished_rows_in_chunks_and_keeps_counters_history_and_refunds(
    database_url: str, conn: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    old_done, new_done, old_failed = (enqueue_all(conn, fresh_addresses(n)) for n in (7, 2, 3))
    pending = enqueue_all(conn, fresh_addresses(2))
    for ids, age in ((old_done, 40), (new_done, 1)):
        conn.execute(
            "UPDATE mint_queue SET status = 'completed', processed_at = now() - make_interval(days => %(d)s),"
            " mint_tx_hash = '0x' || repeat('ab', 32) WHERE id = ANY(%(i)s)",
            {"d": age, "i": ids},
        )
        conn.execute(
            "INSERT INTO mint_history (queue_id, payer_address, mint_tx_hash, amount, payment_type, created_at)"
            " SELECT id, payer_address, mint_tx_hash, '1', payment_type, created_at FROM mint_queue"
            " WHERE id = ANY(%(i)s)",
            {"i": ids},
        )
    fail_requests(conn, old_failed, "batch reverted", days_ago=31)
    paid = paid_failed_request(conn, fresh_addresses(1)[0])
    url = ["--database-url", database_url]

    dry = run_json(capsys, *url, "cleanup", "--dry-run")
    assert (dry["completed"], dry["failed"], dry["deleted"]) == (7, 3, 0)
    assert run_json(capsys, *url, "cleanup", "--older-than", "100d")["deleted"] == 0
    from mintq import retention

    chunks: list[int] = []
    assert retention.delete_expired(conn, older_than_days=30, chunk_rows=4, on_chunk=chunks.append) == 10
    assert chunks == [4, 4, 2]

    left = {r["id"] for r in conn.execute("SELECT id FROM mint_queue")}
    assert left == {*new_done, *pending, paid}
    stats = conn.execute("SELECT * FROM queue_stats").fetchone()
    scan = statuses(conn)
    assert (stats["completed_count"], stats["failed_count"], stats["pending_count"]) == (
        scan["completed"],
        scan["failed"],
        scan["pending"],
    )
    assert conn.execute("SELECT count(*) AS n FROM mint_history").fetchone()["n"] == 9
    _, item, _ = invoke(
        "status",
        http_event(
            "GET",
            f"/queue/item/{old_done[0]}",
            route="/queue/item/{queueId}",
            path_parameters={"queueId": str(old_done[0])},
        ),
    )
    assert item["status"] == "completed"  # answered from mint_history after cleanup
    assert [r["queue_id"] for r in conn.execute("SELECT queue_id FROM refunds_due")] == [paid]
    code, _, _ = run(capsys, *url, "cleanup", "--older-than", "soon")
    assert code == 2


def test_retention_runs_as_its_daily_function_and_in_worker_housekeeping(
    database_url: str, conn: Any, set_setting: Any
) -> None:
    from devstack.lambdas import FakeContext, load_handler
    from mintq import retention
    from mintq.settings import QueueSettings

    ids = enqueue_all(conn, fresh_addresses(6))
    fail_requests(conn, ids, "batch reverted", days_ago=3)
    set_setting("retention_days", 5)
    handler = load_handler(REPO_ROOT / "functions" / "retention")
    assert handler({}, FakeContext(function_name="retention", timeout_s=60)) == {
        "deleted": 0,
        "finished": True,
    }
    set_setting("retention_days", 2)
    assert handler({}, FakeContext(function_name="retention", timeout_s=60)) == {
        "deleted": 6,
        "finished": True,
    }

    more = enqueue_all(conn, fresh_addresses(5))
    fail_requests(conn, more, "batch reverted", days_ago=3)
    clock = [0.0]
    job = retention.RetentionJob(chunk_rows=2, max_chunks_per_cycle=2, clock=lambda: clock[0])
    settings = QueueSettings(retention_days=2)
    assert job(conn, settings) == 4  # a cycle's share; the rest next cycle
    assert job(conn, settings) == 1
    fail_requests(conn, enqueue_all(conn, fresh_addresses(1)), "batch reverted", days_ago=3)
    clock[0] = 3600.0
    assert job(conn, settings) == 0  # done for the day: idle cycles cost nothing
    clock[0] = 86_400.0
    assert job(conn, settings) == 1


def test_signer_address_prints_the_workers_addresses(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from eth_account import Account

    from mintq import config

    keys = [Account.create() for _ in range(2)]
    monkeypatch.setenv("MINTQ_SIGNER_PRIVATE_KEYS", ",".join(k.key.hex() for k in keys))
    config.reset()
    assert run_json(capsys, "signer", "address") == {"addresses": [k.address for k in keys]}


def test_signer_address_prints_kms_keys_addresses(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from mintq import config, kms_signer
    from tests.support.kms import KmsServer, aws_environment, honour_digest

    server = KmsServer()
    server.start()
    try:
        aws_environment(monkeypatch, server)
        honour_digest(monkeypatch)
        keys = [server.create_key(), server.create_key()]
        expected = [kms_signer.key_address(k, client=server.client()) for k in keys]
        monkeypatch.setenv("MINTQ_SIGNER_KMS_KEY_IDS", ",".join(keys))
        config.reset()
        assert run_json(capsys, "signer", "address") == {"addresses": expected}
        wrong = server.create_key("ECC_NIST_P256", "SIGN_VERIFY")
        code, _, err = run(capsys, "signer", "address", "--kms-key-id", wrong)
        assert code == 1 and "ECC_SECG_P256K1" in " ".join(err.split())
    finally:
        server.stop()
        config.reset()
