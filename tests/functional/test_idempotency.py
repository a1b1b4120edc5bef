"""POST /mint with an Idempotency-Key: retries are safe."""

from __future__ import annotations

import threading
from typing import Any

from tests.support.events import http_event, invoke

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


def test_concurrent_retries_with_one_key_queue_one_request(database_url: str, conn: Any) -> None:
    results: list[tuple[int, dict[str, Any]]] = []
    lock = threading.Lock()

    def call() -> None:
        # Each thread is its own "execution environment": its own connection.
        outcome = _mint_with_own_connection(database_url, ALICE, "burst")
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=call) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {status for status, _ in results} == {202}
    assert len({body["queueId"] for _, body in results}) == 1
    assert rows(conn) == 1


def _mint_with_own_connection(url: str, payer: str, key: str) -> tuple[int, dict[str, Any]]:
    from mintq import db, queue

    with db.connect(url) as own:
        queued = queue.enqueue(own, payer=payer, payment_type="free", idempotency_key=key)
    return 202, {"queueId": queued.queue_id}


def test_a_refused_request_does_not_burn_its_key(database_url: str, set_setting: Any) -> None:
    set_setting("max_pending_per_payer", 1)
    assert mint(ALICE, None)[0] == 202
    assert mint(ALICE, "later")[0] == 429
    set_setting("max_pending_per_payer", 5)
    assert mint(ALICE, "later")[0] == 202


def test_malformed_keys_are_rejected(database_url: str) -> None:
    status, body = mint(ALICE, "x" * 300)
    assert (status, body["error"]["code"]) == (400, "invalid_request")
