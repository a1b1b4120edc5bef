"""POST /mint with an Idempotency-Key: retries are safe."""

from __future__ import annotations

from typing import Any

import pytest

from mintq import db, queue, settings
from tests.support.events import concurrently, http_event, invoke

ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
BOB = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"


def mint(payer: str, key: str | None) -> tuple[int, dict[str, Any]]:
    headers = {"Idempotency-Key": key} if key is not None else {}
    status, body, _ = invoke("enqueue", http_event("POST", "/mint", body={"payer": payer}, headers=headers))
    return status, body


def rows(conn: Any) -> int:
    return int(conn.execute("SELECT count(*) AS n FROM mint_queue").fetchone()["n"])


def test_the_same_key_and_body_return_the_first_answer_and_queue_once(database_url: str, conn: Any) -> None:
    first = mint(ALICE, "order-1")
    mint(BOB, None)  # the line moves on in between
    again = mint(ALICE.lower(), "order-1")  # the same request, spelled differently
    assert first[0] == again[0] == 202
    assert again[1] == first[1]
    assert rows(conn) == 2


def test_the_same_key_with_another_body_is_a_409(database_url: str, conn: Any) -> None:
    assert mint(ALICE, "order-2")[0] == 202
    status, body = mint(BOB, "order-2")
    assert (status, body["error"]["code"]) == (409, "idempotency_key_reused")
    assert rows(conn) == 1


def test_concurrent_retries_with_one_key_queue_one_request(
    database_url: str, conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = concurrently(database_url, monkeypatch, [lambda: mint(ALICE, "burst") for _ in range(10)])
    assert len(results) == 10
    assert [status for status, _ in results] == [202] * 10, results
    assert len({body["queueId"] for _, body in results}) == 1
    assert rows(conn) == 1


def test_a_refused_request_does_not_burn_its_key(database_url: str, set_setting: Any) -> None:
    set_setting("max_pending_per_payer", 1)
    assert mint(ALICE, None)[0] == 202
    assert mint(ALICE, "later")[0] == 429
    set_setting("max_pending_per_payer", 5)
    assert mint(ALICE, "later")[0] == 202


def test_malformed_keys_are_rejected(database_url: str) -> None:
    status, body = mint(ALICE, "x" * 300)
    assert (status, body["error"]["code"]) == (400, "invalid_request")


def _age_key(conn: Any, key: str, hours: float) -> None:
    conn.execute(
        "UPDATE idempotency_keys SET created_at = now() - make_interval(secs => %(s)s) WHERE key = %(k)s",
        {"s": hours * 3600, "k": key},
    )


def _keys(conn: Any) -> set[str]:
    return {r["key"] for r in conn.execute("SELECT key FROM idempotency_keys").fetchall()}


def test_keys_past_their_retention_are_pruned_and_then_start_a_new_request(
    database_url: str, conn: Any, set_setting: Any
) -> None:
    for key in ("old", "young", "keep-me"):
        assert mint(ALICE if key != "young" else BOB, key)[0] == 202
    _age_key(conn, "old", 49)
    _age_key(conn, "young", 47)
    pruned = queue.IdempotencyKeyPruner()(conn, settings.QueueSettings())  # default retention: 48 h
    assert pruned == 1
    assert _keys(conn) == {"young", "keep-me"}
    # A key forgotten after its retention is a fresh key: a new request, a new queueId.
    first_queue_ids = {r["id"] for r in conn.execute("SELECT id FROM mint_queue").fetchall()}
    status, body = mint(ALICE, "old")
    assert status == 202 and body["queueId"] not in {str(i) for i in first_queue_ids}


def test_pruning_never_goes_under_the_24_hours_promised_whatever_the_setting(
    conn: Any, database_url: str, set_setting: Any
) -> None:
    for key in ("a", "b"):
        mint(ALICE, key)
    _age_key(conn, "a", 25)
    _age_key(conn, "b", 23)
    set_setting("idempotency_key_retention_hours", "1")  # by hand, under the 24 h floor
    probe = db.one(conn, "cycle_probe", {"signer": "0x" + "00" * 20, "chain_id": 1})
    configured = settings.QueueSettings.from_mapping((probe or {}).get("settings") or {})
    assert configured.idempotency_key_retention_hours == 48  # refused by the rules: the default stands
    assert queue.IdempotencyKeyPruner()(conn, configured) == 0  # nothing is 48 h old
    # The pruner keeps its own floor for settings built any other way.
    assert queue.IdempotencyKeyPruner()(conn, settings.QueueSettings(idempotency_key_retention_hours=1)) == 1
    assert _keys(conn) == {"b"}


def test_the_pruner_runs_at_most_every_few_minutes_and_in_slices(conn: Any, database_url: str) -> None:
    for i in range(7):
        mint(ALICE if i % 2 else BOB, f"k{i}")
    conn.execute("UPDATE idempotency_keys SET created_at = now() - interval '3 days'")
    now = [0.0]
    pruner = queue.IdempotencyKeyPruner(every_seconds=300, slice_rows=2, max_slices=3, clock=lambda: now[0])
    assert pruner(conn, settings.QueueSettings()) == 6  # three slices of two, then it yields the cycle
    assert pruner(conn, settings.QueueSettings()) == 0  # too soon
    now[0] = 301.0
    assert pruner(conn, settings.QueueSettings()) == 1
    assert _keys(conn) == set()
