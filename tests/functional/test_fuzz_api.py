"""Property: whatever a client sends, the API answers in its error shape and never with a 5xx.

Hypothesis generates bodies (any JSON, any text, forms, multipart, duplicate names, base64 or
not), content types with parameters, content codings, headers, path parameters and query
strings, and drives the real handlers against real PostgreSQL. A refused ``POST /mint`` queues
nothing; a GET ignores whatever body it carries.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.parse
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mintq import config
from tests.support.events import http_event, invoke

FUZZ = settings(
    # A longer hunt: FUZZ_EXAMPLES=5000 make test PYTEST_ARGS=tests/functional/test_fuzz_api.py
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")),
    # CI replays the same cases every run; a longer hunt (FUZZ_EXAMPLES set) explores afresh.
    derandomize="FUZZ_EXAMPLES" not in os.environ,
    deadline=None,
    # One database per test is enough: the rows the examples leave behind are part of the fuzz.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=60),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
addresses_and_noise = st.one_of(
    st.text(max_size=70),
    st.from_regex(r"0x[0-9a-fA-F]{38,42}", fullmatch=True),
    st.sampled_from(["0x" + "0" * 40, "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"]),
)
ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
BOB = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
names = st.sampled_from(["payer", "PAYER", "x", ""]) | st.text(max_size=8)
# JSON string literals as sent: "p\u0061yer" is "payer" once decoded.
name_literals = names.map(json.dumps) | st.just('"p\\u0061yer"')
json_texts = json_values.map(json.dumps) | st.sampled_from(
    ["NaN", "-Infinity", "1e999", "7" * 4400, '"\\ud800"']
)


@st.composite
def objects_with_repeated_names(draw: st.DrawFn) -> str:
    """A JSON object written by hand so a name can appear twice, here or in a nested object."""
    pairs = draw(st.lists(st.tuples(name_literals, json_texts), min_size=1, max_size=4))
    pairs += [draw(st.sampled_from(pairs))] if draw(st.booleans()) else []
    text = "{" + ", ".join(f"{name}: {value}" for name, value in pairs) + "}"
    return draw(st.sampled_from([text, f'{{"payer": "{ALICE}", "x": {text}}}', f"[{text}]"]))


@st.composite
def multipart_forms(draw: st.DrawFn) -> str:
    boundary = draw(st.sampled_from(["XyZ", "----b", ""]) | st.text(max_size=10))
    fields = draw(st.dictionaries(names, addresses_and_noise, max_size=3))
    parts = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    )
    return parts + f"--{boundary}--\r\n"


mint_bodies = st.one_of(
    st.fixed_dictionaries({"payer": addresses_and_noise}).map(json.dumps),
    st.fixed_dictionaries({"payer": json_values}).map(json.dumps),
    json_texts,
    objects_with_repeated_names(),
    multipart_forms(),
    st.dictionaries(names, addresses_and_noise, max_size=3).map(urllib.parse.urlencode),
    st.text(max_size=200),
)
media_types = st.sampled_from(
    [
        "application/json",
        "Application/JSON",
        "multipart/form-data",
        "application/x-www-form-urlencoded",
        "text/plain",
        "application/merge-patch+json",
        "application/json-patch+json",
        "application/jsonx",
        "*/*",
        "json",
        "",
    ]
)
parameters = st.tuples(
    st.sampled_from(["charset", "Charset", "boundary", "profile", ""]) | st.text(max_size=8),
    st.sampled_from(["utf-8", "UTF-8", '"utf-8"', "latin-1", "utf-16", "XyZ", ""]) | st.text(max_size=8),
).map("=".join)
content_types = (
    st.tuples(media_types, st.lists(parameters, max_size=3), st.sampled_from([";", "; ", " ; ", ","])).map(
        lambda t: t[2].join([t[0], *t[1]])
    )
    | st.text(max_size=30)
    | st.none()
)
content_codings = st.none() | st.sampled_from(["identity", "gzip", "br, identity", "IDENTITY", ""])
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=300)


def _assert_well_formed(status: int, body: dict[str, Any]) -> None:
    assert status < 500, body
    if status >= 400:
        assert body["success"] is False, body
        error = body["error"]
        assert isinstance(error, dict) and error["code"] and error["message"], body


MULTIPART = f'--XyZ\r\nContent-Disposition: form-data; name="payer"\r\n\r\n{ALICE}\r\n--XyZ--\r\n'
CORPUS = [  # (body, base64, content type, content coding): the inputs issue 8 found, and their kin
    (json.dumps({"payer": ALICE}), False, "multipart/form-data", None),
    ("", False, "multipart/form-data", None),
    (MULTIPART, False, "multipart/form-data; boundary=XyZ", None),
    (MULTIPART.replace(ALICE, "€"), False, "multipart/form-data; boundary=XyZ", None),
    (MULTIPART, True, "multipart/form-data; boundary=XyZ", None),
    (f'{{"payer": "{ALICE}", "payer": "{BOB}"}}', False, "application/json", None),
    (f'{{"payer": "{ALICE}", "p\\u0061yer": "{BOB}"}}', False, "application/json", None),
    (f'{{"payer": "{ALICE}", "x": [{{"a": 1, "a": 2}}]}}', False, "application/json", None),
    (f"payer={ALICE}", False, "application/x-www-form-urlencoded", None),
    (json.dumps({"payer": ALICE}), False, "application/x-www-form-urlencoded", None),
    (json.dumps({"payer": ALICE}), False, "application/json-patch+json", None),
    (json.dumps({"payer": ALICE}), False, "application/json; charset=latin-1", None),
    (json.dumps({"payer": ALICE}), False, "application/json, text/plain", None),
    (json.dumps({"payer": ALICE}), False, "application/json; charset", None),
    (json.dumps({"payer": ALICE}), False, 'Application/JSON; Charset="UTF-8"', None),
    (json.dumps({"payer": ALICE}), False, None, None),
    (json.dumps({"payer": ALICE}), False, "application/json", "gzip"),
    ("\ufeff" + json.dumps({"payer": ALICE}), False, "application/json", None),
    ('{"payer": NaN}', False, "application/json", None),
    ('{"payer": ' + "7" * 5000 + "}", False, "application/json", None),
    ('{"payer": "\\ud800"}', False, "application/json", None),
    ("null", False, "application/json", None),
    (json.dumps([{"payer": ALICE}]), False, "application/json", None),
    ("x" * 20_000, False, "text/plain", None),
]


def _examples(test: Any) -> Any:
    for body, encode, content_type, coding in CORPUS:
        test = example(body=body, encode=encode, content_type=content_type, coding=coding, key=None)(test)
    return test


@FUZZ
@given(
    body=mint_bodies,
    encode=st.booleans(),
    content_type=content_types,
    coding=content_codings,
    key=st.none() | header_text,
)
@_examples
def test_post_mint_never_fails_on_input(
    database_url: str,
    conn: Any,
    monkeypatch: pytest.MonkeyPatch,
    body: str,
    encode: bool,
    content_type: str | None,
    coding: str | None,
    key: str | None,
) -> None:
    # Room for numbers longer than Python converts (4300 digits); 20 kB still meets the limit.
    monkeypatch.setenv("MINTQ_MAX_BODY_BYTES", "16384")
    config.reset()
    event = http_event("POST", "/mint", raw_body=body)
    event["headers"].pop("content-type")
    for name, value in {
        "content-type": content_type,
        "content-encoding": coding,
        "idempotency-key": key,
    }.items():
        if value is not None:
            event["headers"][name] = value
    if encode:
        event["body"] = base64.b64encode(body.encode("utf-8", "surrogatepass")).decode()
        event["isBase64Encoded"] = True
    before = _queued(conn)
    status, answer, _ = invoke("enqueue", event)
    _assert_well_formed(status, answer)
    assert status in (202, 400, 409, 413, 415, 422, 429), answer
    if status != 202:
        assert _queued(conn) == before, answer
    else:  # queued only for one JSON object, labelled as JSON or not at all
        assert (content_type or "").split(";")[0].strip().lower() in ("", "application/json"), content_type
        assert isinstance(json.loads(body.removeprefix("\ufeff"), object_pairs_hook=_unique), dict), body


@FUZZ
@given(body=mint_bodies, encode=st.booleans(), content_type=content_types)
@example(body="!!!not base64", encode=False, content_type="application/json")  # flagged base64 below
@example(body=json.dumps({"payer": ALICE}), encode=False, content_type="multipart/form-data")
@example(body="x" * 20_000, encode=False, content_type="text/plain")
def test_a_get_ignores_whatever_body_it_carries(
    database_url: str, body: str, encode: bool, content_type: str | None
) -> None:
    event = http_event("GET", "/queue/status", raw_body=body)
    event["headers"].pop("content-type")
    if content_type is not None:
        event["headers"]["content-type"] = content_type
    event["isBase64Encoded"] = encode or body == "!!!not base64"
    if encode:
        event["body"] = base64.b64encode(body.encode("utf-8", "surrogatepass")).decode()
    status, answer, _ = invoke("status", event)
    assert status == 200, answer


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    assert len({name for name, _ in pairs}) == len(pairs), pairs
    return dict(pairs)


def _queued(conn: Any) -> int:
    return int(conn.execute("SELECT count(*) AS n FROM mint_queue").fetchone()["n"])


@FUZZ
@given(
    address=st.text(max_size=80),
    limit=st.none() | st.text(max_size=12) | st.integers(-5, 1000).map(str),
    cursor=st.none() | st.text(max_size=250),
)
def test_payer_lookups_never_fail_on_input(
    database_url: str, address: str, limit: str | None, cursor: str | None
) -> None:
    query = {k: v for k, v in {"limit": limit, "cursor": cursor}.items() if v is not None}
    path = "/queue/payer/" + urllib.parse.quote(address, safe="")
    event = http_event(
        "GET", path, route="/queue/payer/{address}", path_parameters={"address": address}, query=query or None
    )
    event["rawQueryString"] = urllib.parse.urlencode(query)
    status, answer, _ = invoke("status", event)
    _assert_well_formed(status, answer)
    assert status in (200, 400, 404, 422), answer


@FUZZ
@given(queue_id=st.text(max_size=80) | st.uuids().map(str))
def test_item_lookups_never_fail_on_input(database_url: str, queue_id: str) -> None:
    path = "/queue/item/" + urllib.parse.quote(queue_id, safe="")
    event = http_event("GET", path, route="/queue/item/{queueId}", path_parameters={"queueId": queue_id})
    status, answer, _ = invoke("status", event)
    _assert_well_formed(status, answer)
    assert status in (200, 400, 404), answer


@pytest.mark.parametrize("function", ["enqueue", "status"])
@FUZZ
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]), path=st.text(max_size=40))
def test_unknown_routes_and_methods_are_4xx(database_url: str, function: str, method: str, path: str) -> None:
    raw = "/unknown/" + urllib.parse.quote(path, safe="/")  # never one of our routes
    status, answer, _ = invoke(function, http_event(method, raw))
    _assert_well_formed(status, answer)
    assert status == 404, answer
