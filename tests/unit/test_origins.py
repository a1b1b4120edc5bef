"""Which browser origins may read and which may mint (pure rules)."""

from __future__ import annotations

import pytest

from mintq import origins

OWN = "https://abc123.execute-api.us-east-1.amazonaws.com"


def test_parse() -> None:
    assert origins.parse(None) == ("*",)
    assert origins.parse(" ") == ("*",)
    assert origins.parse("https://a.example/, https://*") == ("https://a.example", "https://*")


@pytest.mark.parametrize(
    ("origin", "allowed", "expected"),
    [
        ("https://a.example", ("*",), "*"),
        ("https://a.example", ("https://a.example",), "https://a.example"),
        ("https://b.example", ("https://a.example",), None),
        ("https://b.example", ("https://*",), "https://b.example"),
        ("http://b.example", ("https://*",), None),
        ("https://a.example.evil", ("https://a.example",), None),
    ],
)
def test_match(origin: str, allowed: tuple[str, ...], expected: str | None) -> None:
    assert origins.match(origin, allowed) == expected


@pytest.mark.parametrize(
    ("origin", "allowed", "may"),
    [
        (None, ("*",), True),  # not a browser
        ("", ("*",), True),
        (OWN, ("*",), True),  # a page the API serves itself
        (OWN + "/", ("*",), True),
        ("https://dapp.example", ("*",), False),  # "*" opens the reads only
        ("https://dapp.example", ("https://dapp.example",), True),
        ("https://dapp.example", ("https://*",), True),
        ("https://other.example", ("https://dapp.example",), False),
        ("null", ("https://dapp.example",), False),  # sandboxed frames, file: pages
    ],
)
def test_may_mint(origin: str | None, allowed: tuple[str, ...], may: bool) -> None:
    assert origins.may_mint(origin, OWN, allowed) is may
