"""Pure rules: no database, no chain."""

from __future__ import annotations

import re

import pytest

from mintq import addresses, db, errors, eta, node_replies
from mintq.settings import QueueSettings


def test_query_file_parses_into_named_blocks() -> None:
    parsed = db.parse_queries("-- name: a\n-- first\nSELECT 1;\n\n-- name: b\nSELECT %(x)s;\n")
    assert parsed == {"a": "-- first\nSELECT 1;", "b": "SELECT %(x)s;"}
    with pytest.raises(ValueError, match="twice"):
        db.parse_queries("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;\n")


def test_every_query_the_code_names_exists() -> None:
    import pathlib

    root = pathlib.Path(db.__file__).parent
    used = set()
    for source in root.rglob("*.py"):
        used |= set(re.findall(r'db\.(?:one|rows|execute)\(\s*[\w.]+,\s*"([a-z_]+)"', source.read_text()))
    assert used, "the pattern should find the query names"
    assert used <= set(db.queries())


@pytest.mark.parametrize(
    "value",
    [
        "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        "0x70997970c51812dc3a010c7d01b50e0d17dc79c8",
        "0x70997970C51812DC3A010C7D01B50E0D17DC79C8",
    ],
)
def test_addresses_without_or_with_a_correct_checksum_are_accepted(value: str) -> None:
    assert addresses.parse(value) == "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


@pytest.mark.parametrize(
    "value",
    [
        None,
        5,
        "",
        "0x",
        "70997970C51812dc3A010C7d01b50e0d17dc79C8",
        "0x70997970C51812dc3A010C7d01b50e0d17dc79c8",
        "0x" + "0" * 40,
        "0x" + "1" * 39,
        "0x" + "1" * 41,
        " 0x" + "1" * 40,
    ],
)
def test_bad_addresses_are_rejected(value: object) -> None:
    with pytest.raises(errors.InvalidAddress):
        addresses.parse(value)


@pytest.mark.parametrize(
    ("position", "size", "interval", "wait"),
    [(1, 50, 10, 10), (50, 50, 10, 10), (51, 50, 10, 20), (5, 1, 2.5, 13), (0, 50, 10, 10)],
)
def test_wait_estimate_is_one_interval_per_batch_ahead(
    position: int, size: int, interval: float, wait: int
) -> None:
    assert eta.estimate_wait_seconds(position, size, interval) == wait


def test_settings_parse_and_fall_back_on_garbage() -> None:
    s = QueueSettings.from_mapping(
        {
            "max_batch_size": "100",
            "batch_interval_seconds": "2.5",
            "retry_max_attempts": "lots",
            "max_pending_per_payer": "-1",
        }
    )
    assert (s.max_batch_size, s.batch_interval_seconds) == (100, 2.5)
    assert (s.retry_max_attempts, s.max_pending_per_payer) == (3, 10)


def test_revert_data_decodes_to_readable_reasons() -> None:
    from eth_abi.abi import encode

    selector = node_replies.selector("MaxSupplyExceeded(uint256,uint256)")
    data = "0x" + (selector + encode(["uint256", "uint256"], [5, 2])).hex()
    assert node_replies.decode_revert(data) == "MaxSupplyExceeded(5, 2)"
    assert (
        node_replies.decode_revert("0x" + node_replies.selector("EnforcedPause()").hex()) == "EnforcedPause()"
    )
    assert node_replies.decode_revert("0xdeadbeef") == "reverted (data 0xdeadbeef)"


@pytest.mark.parametrize(
    ("message", "outcome"),
    [
        ("already known", node_replies.SendOutcome.ALREADY_KNOWN),
        ("nonce too low: next nonce 5, tx nonce 3", node_replies.SendOutcome.NONCE_USED),
        ("replacement transaction underpriced", node_replies.SendOutcome.UNDERPRICED),
        ("insufficient funds for gas * price + value", None),
    ],
)
def test_send_errors_are_classified_as_reconciliation_signals(message: str, outcome: object) -> None:
    assert node_replies.classify_send_error(message) == outcome
