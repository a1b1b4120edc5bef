"""events/*.json, the sample events ``sam local invoke`` takes: valid JSON, HTTP API v2 shapes of
routes the template wires, and checksummed addresses.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.support.sam_template import EVENTS_DIR, EXPECTED_ROUTES


def _event_files() -> list[Path]:
    return sorted(EVENTS_DIR.glob("*.json"))


def test_sample_events_exist() -> None:
    names = {p.name for p in _event_files()}
    assert {"enqueue.json", "status.json", "payer.json", "item.json", "batch.json"} <= names


@pytest.mark.parametrize("path", _event_files(), ids=lambda p: p.name)
def test_sample_event_is_valid_json(path: Path) -> None:
    assert isinstance(json.loads(path.read_text(encoding="utf-8")), dict)


@pytest.mark.parametrize("path", [p for p in _event_files() if p.name != "batch.json"], ids=lambda p: p.name)
def test_http_event_has_the_v2_shape(path: Path) -> None:
    event = json.loads(path.read_text(encoding="utf-8"))
    assert event["version"] == "2.0"
    method, route = event["routeKey"].split(" ", 1)
    assert (method, route) in EXPECTED_ROUTES
    http = event["requestContext"]["http"]
    assert http["method"] == method
    assert http["path"] == event["rawPath"]
    assert event["requestContext"]["routeKey"] == event["routeKey"]
    assert event["isBase64Encoded"] is False
    assert all(key == key.lower() for key in event["headers"]), "HTTP API lower-cases header names"
    placeholders = re.findall(r"\{(\w+)\}", route)
    params = event.get("pathParameters") or {}
    assert sorted(params) == sorted(placeholders)
    expected_path = route
    for key, value in params.items():
        expected_path = expected_path.replace("{" + key + "}", value)
    assert event["rawPath"] == expected_path
    if method == "POST":
        assert event["headers"]["content-type"] == "application/json"
        assert isinstance(json.loads(event["body"]), dict)


def _is_eip55(address: str) -> bool:
    from eth_hash.auto import keccak

    body = address[2:]
    digest = keccak(body.lower().encode()).hex()
    return (
        address.startswith("0x")
        and len(body) == 40
        and all(ch == (ch.upper() if int(digest[i], 16) >= 8 else ch.lower()) for i, ch in enumerate(body))
    )


def test_sample_addresses_are_checksummed() -> None:
    enqueue = json.loads((EVENTS_DIR / "enqueue.json").read_text(encoding="utf-8"))
    payer = json.loads((EVENTS_DIR / "payer.json").read_text(encoding="utf-8"))
    assert _is_eip55(json.loads(enqueue["body"])["payer"])
    assert _is_eip55(payer["pathParameters"]["address"])
    assert not _is_eip55("0x70997970c51812dc3a010c7d01b50e0d17dc79c8")
