"""What ``POST /mint`` accepts as a body (``mintq.request_body``), through the enqueue handler.

Every case starts from the repository's own ``events/enqueue.json`` and changes only the
body, its content type (and encoding flags); the answer is checked for status, code and that
nothing reached ``mint_queue``.
"""

from __future__ import annotations

import base64
import copy
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from mintq import config
from tests.support.events import REPO_ROOT, invoke
from tests.support.x402_env import x402_mode

ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
BOB = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
SAMPLE_EVENT = json.loads(Path(REPO_ROOT / "events" / "enqueue.json").read_text())
JSON_BODY = json.dumps({"payer": ALICE})
FORM_PART = f'--XyZ\r\nContent-Disposition: form-data; name="payer"\r\n\r\n{ALICE}\r\n--XyZ--\r\n'


def sample(
    body: str, content_type: str | None, *, base64_encoded: bool = False, **headers: str
) -> dict[str, Any]:
    event = copy.deepcopy(SAMPLE_EVENT)
    event["headers"].pop("content-length")  # would no longer match; API Gateway sets it anyway
    event["headers"].pop("content-type")
    if content_type is not None:
        event["headers"]["content-type"] = content_type
    event["headers"].update(headers)
    event["body"] = body
    event["isBase64Encoded"] = base64_encoded
    return event


def queued(conn: Any) -> int:
    return int(conn.execute("SELECT count(*) AS n FROM mint_queue").fetchone()["n"])


# Each row failed on main before this module: a 500, a 202 for a body that should be refused,
# or another answer than this one.
REFUSED = [
    # (case, event, status, code, a fragment of the message)
    ("multipart without a boundary", sample(JSON_BODY, "multipart/form-data"), 415, "unsupported_media_type", "multipart/form-data"),
    ("multipart form part", sample(FORM_PART, "multipart/form-data; boundary=XyZ"), 415, "unsupported_media_type", "application/json"),
    ("multipart, not Latin-1", sample('{"payer": "€"}', "multipart/form-data; boundary=XyZ"), 415, "unsupported_media_type", "multipart"),
    ("form-urlencoded field", sample(f"payer={ALICE}", "application/x-www-form-urlencoded"), 415, "unsupported_media_type", "application/json"),
    ("curl -d without -H", sample(JSON_BODY, "application/x-www-form-urlencoded"), 415, "unsupported_media_type", "curl: -H"),
    ("a type that only starts like JSON", sample(JSON_BODY, "application/json-patch+json"), 415, "unsupported_media_type", "json-patch"),
    ("a charset other than UTF-8", sample(JSON_BODY, "application/json; charset=latin-1"), 415, "unsupported_media_type", "latin-1"),
    ("two content types joined", sample(JSON_BODY, "application/json, text/plain"), 415, "unsupported_media_type", "malformed"),
    ("charset given twice", sample(JSON_BODY, "application/json; charset=utf-8; charset=utf-16"), 415, "unsupported_media_type", "malformed"),
    ("charset without a value", sample(JSON_BODY, "application/json; charset"), 415, "unsupported_media_type", "malformed"),
    ("gzip content coding", sample(base64.b64encode(gzip.compress(JSON_BODY.encode())).decode(), "application/json", base64_encoded=True, **{"content-encoding": "gzip"}), 415, "unsupported_media_type", "Content-Encoding"),
    ("duplicate payer", sample(f'{{"payer": "{ALICE}", "payer": "{BOB}"}}', "application/json"), 400, "duplicate_json_key", "payer"),
    ("duplicate payer by escape", sample(f'{{"payer": "{ALICE}", "p\\u0061yer": "{BOB}"}}', "application/json"), 400, "duplicate_json_key", "payer"),
    ("duplicate name deeper down", sample(f'{{"payer": "{ALICE}", "x": [{{"a": 1, "a": 2}}]}}', "application/json"), 400, "duplicate_json_key", "'a'"),
    ("NaN", sample('{"payer": NaN}', "application/json"), 400, "malformed_json", "NaN"),
    ("unpaired surrogate escape", sample('{"payer": "\\ud800"}', "application/json"), 400, "malformed_json", "surrogate"),
    ("an array", sample(f'[{{"payer": "{ALICE}"}}]', "application/json"), 422, "validation_error", "JSON object"),
    ("a string", sample(json.dumps(ALICE), "application/json"), 422, "validation_error", "JSON object"),
    ("null", sample("null", "application/json"), 422, "validation_error", "JSON object"),
    ("no body, multipart without a boundary", sample("", "multipart/form-data"), 422, "validation_error", "payer"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("event", "status", "code", "fragment"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED]
)
def test_bodies_that_are_not_one_json_object_are_a_4xx_and_queue_nothing(
    database_url: str, conn: Any, event: dict[str, Any], status: int, code: str, fragment: str
) -> None:
    got_status, body, _ = invoke("enqueue", copy.deepcopy(event))
    assert (got_status, body.get("error", {}).get("code")) == (status, code), body
    assert body["success"] is False and set(body["error"]) == {"code", "message"}
    assert fragment in body["error"]["message"], body
    assert queued(conn) == 0


def test_a_number_too_long_for_python_is_malformed_json_not_a_500(
    database_url: str, conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINTQ_MAX_BODY_BYTES", "8192")  # room for more than int()'s 4300 digits
    config.reset()
    status, body, _ = invoke("enqueue", sample('{"payer": ' + "7" * 5000 + "}", "application/json"))
    assert (status, body["error"]["code"]) == (400, "malformed_json"), body
    assert queued(conn) == 0


@pytest.mark.parametrize(
    ("content_type", "text"),
    [
        ("application/json", JSON_BODY),
        ("application/json; charset=utf-8", JSON_BODY),
        ('Application/JSON; Charset="UTF-8"', JSON_BODY),
        ("application/json;charset=UTF-8; profile=mint", JSON_BODY),
        (None, JSON_BODY),  # requests' and httpx's data= bodies carry no content type
        ("application/json", "\ufeff" + JSON_BODY),
    ],
    ids=["plain", "charset", "any case, quoted", "unknown parameter", "no content type", "BOM"],
)
def test_one_json_object_as_json_in_utf8_is_queued(
    database_url: str, conn: Any, content_type: str | None, text: str
) -> None:
    status, body, _ = invoke("enqueue", sample(text, content_type))
    assert status == 202, body
    assert body["payer"] == ALICE
    assert queued(conn) == 1


def test_an_empty_body_in_x402_mode_still_gets_the_challenge_whatever_its_content_type(
    database_url: str, conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    x402_mode(monkeypatch)
    config.reset()
    for content_type in ("multipart/form-data", "text/plain", "application/x-www-form-urlencoded", None):
        status, body, headers = invoke("enqueue", sample("", content_type))
        assert (status, "PAYMENT-REQUIRED" in headers) == (402, True), (content_type, body)
        assert body["accepts"], body
    assert queued(conn) == 0
