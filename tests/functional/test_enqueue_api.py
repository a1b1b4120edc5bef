"""POST /mint through the real handler and a real PostgreSQL."""

from __future__ import annotations

import base64
import sys
import uuid
from typing import Any

import pytest

from mintq import db
from tests.support.events import http_event, invoke

ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
BOB = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
SEED_KEYS = {"success", "message", "queueId", "queuePosition", "payer", "estimatedWaitSeconds", "paymentType"}


def mint(body: object = None, *, raw: str | None = None) -> tuple[int, dict[str, Any]]:
    status, payload, _ = invoke("enqueue", http_event("POST", "/mint", body=body, raw_body=raw))
    return status, payload


def test_mint_answers_202_with_exactly_the_seed_body_and_commits_the_row(database_url: str) -> None:
    status, body = mint({"payer": ALICE})
    assert status == 202
    assert set(body) == SEED_KEYS
    assert body["success"] is True
    assert body["message"] == "Mint request added to queue"
    assert body["payer"] == ALICE
    assert body["paymentType"] == "free"
    assert body["queuePosition"] == 1
    assert body["estimatedWaitSeconds"] == 10
    # Visible from another session at once: committed before the answer.
    with db.connect(database_url) as other:
        row = other.execute(
            "SELECT payer_address, status::text, payment_type FROM mint_queue WHERE id = %(id)s",
            {"id": uuid.UUID(body["queueId"])},
        ).fetchone()
    assert row == {"payer_address": ALICE, "status": "pending", "payment_type": "free"}


def test_positions_count_the_requests_ahead_and_waits_follow_the_settings(
    database_url: str, set_setting: Any
) -> None:
    set_setting("max_batch_size", 2)
    set_setting("batch_interval_seconds", 5)
    answers = [mint({"payer": payer})[1] for payer in (ALICE, BOB, ALICE, BOB, ALICE)]
    assert [a["queuePosition"] for a in answers] == [1, 2, 3, 4, 5]
    assert [a["estimatedWaitSeconds"] for a in answers] == [5, 5, 10, 10, 15]


def test_lowercase_and_uppercase_addresses_are_accepted_and_checksummed(database_url: str) -> None:
    assert mint({"payer": ALICE.lower()})[1]["payer"] == ALICE
    assert mint({"payer": "0x" + ALICE[2:].upper()})[1]["payer"] == ALICE


@pytest.mark.parametrize(
    ("body", "raw", "status", "code"),
    [
        (None, "{not json", 400, "malformed_json"),
        (None, "", 422, "validation_error"),
        (None, "[1, 2]", 422, "validation_error"),
        ({}, None, 422, "validation_error"),
        ({"payer": 42}, None, 422, "validation_error"),
        ({"payer": None}, None, 422, "validation_error"),
        ({"payer": [ALICE]}, None, 422, "validation_error"),
        ({"payer": ALICE, "amount": 5}, None, 422, "validation_error"),
        ({"payer": "0x1234"}, None, 400, "invalid_address"),
        ({"payer": ALICE[2:]}, None, 400, "invalid_address"),
        ({"payer": "0x" + "g" * 40}, None, 400, "invalid_address"),
        ({"payer": ALICE + "00"}, None, 400, "invalid_address"),
        ({"payer": ALICE[:-1] + "c"}, None, 400, "invalid_address"),  # checksum broken by one letter
        ({"payer": "0x" + "0" * 40}, None, 400, "invalid_address"),
        ({"payer": ALICE.lower() + "\n"}, None, 400, "invalid_address"),  # `$` would let it through
        ({"payer": "x" * 5000}, None, 413, "payload_too_large"),
    ],
)
def test_bad_input_gets_a_4xx_in_the_one_error_shape_and_stores_nothing(
    database_url: str, conn: Any, body: object, raw: str | None, status: int, code: str
) -> None:
    got_status, payload = mint(body, raw=raw)
    assert (got_status, payload["error"]["code"]) == (status, code)
    assert payload["success"] is False
    assert set(payload["error"]) == {"code", "message"}
    assert payload["error"]["message"]
    assert conn.execute("SELECT count(*) AS n FROM mint_queue").fetchone()["n"] == 0


def test_a_body_nested_deeper_than_the_parser_recurses_is_400_not_500(database_url: str) -> None:
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)  # Lambda's default; some test libraries raise it
    try:
        status, payload = mint(None, raw="[" * 2000 + "]" * 2000)  # still under the size limit
    finally:
        sys.setrecursionlimit(limit)
    assert (status, payload["error"]["code"]) == (400, "malformed_json"), payload


def test_a_payer_over_the_pending_cap_gets_429_and_others_are_unaffected(
    database_url: str, set_setting: Any, conn: Any
) -> None:
    set_setting("max_pending_per_payer", 2)
    assert [mint({"payer": ALICE})[0] for _ in range(2)] == [202, 202]
    status, body = mint({"payer": ALICE})
    assert status == 429
    assert body["error"]["code"] == "payer_limit_reached"
    assert mint({"payer": BOB})[0] == 202
    # Once one of Alice's requests leaves the line she may ask again.
    conn.execute(
        "UPDATE mint_queue SET status = 'completed' WHERE id = ("
        " SELECT id FROM mint_queue WHERE payer_address = %(p)s ORDER BY queue_position LIMIT 1)",
        {"p": ALICE},
    )
    assert mint({"payer": ALICE})[0] == 202


def test_unknown_routes_answer_404_in_the_error_shape(database_url: str) -> None:
    status, body, _ = invoke("enqueue", http_event("POST", "/nope", body={"payer": ALICE}))
    assert status == 404
    assert body["error"]["code"] == "not_found"


def test_a_database_outage_is_a_503_with_retry_after_not_a_client_error(
    monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    from mintq import config

    monkeypatch.setenv("MINTQ_DATABASE_URL", "postgresql://postgres@127.0.0.1:1/none?connect_timeout=1")
    config.reset()
    db.close_shared_connection()
    status, body, headers = invoke("enqueue", http_event("POST", "/mint", body={"payer": ALICE}))
    assert status == 503
    assert body["error"]["code"] == "database_error"
    assert headers.get("Retry-After") == "5"


def test_undecodable_or_non_json_bodies_are_4xx_never_5xx(database_url: str, conn: Any) -> None:
    bad_base64 = http_event("POST", "/mint", raw_body="!!!not base64")
    bad_base64["isBase64Encoded"] = True
    not_utf8 = http_event("POST", "/mint", raw_body=base64.b64encode(b"\xff\xfe").decode())
    not_utf8["isBase64Encoded"] = True
    plain_text = http_event("POST", "/mint", body={"payer": ALICE}, headers={"content-type": "text/plain"})
    answers = [invoke("enqueue", event)[:2] for event in (bad_base64, not_utf8, plain_text)]
    assert [(status, body["error"]["code"]) for status, body in answers] == [
        (400, "malformed_json"),
        (400, "malformed_json"),
        (415, "unsupported_media_type"),
    ]
    assert conn.execute("SELECT count(*) AS n FROM mint_queue").fetchone()["n"] == 0
