"""``mintq.media_type.parse``: RFC 9110 media types, total on any text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mintq import media_type


@pytest.mark.parametrize(
    ("value", "essence", "parameters"),
    [
        ("application/json", "application/json", {}),
        ('Application/JSON; Charset="UTF-8"', "application/json", {"charset": "UTF-8"}),
        ("application/json;charset=utf-8", "application/json", {"charset": "utf-8"}),
        ("  application/json ;\tcharset=utf-8 ; ", "application/json", {"charset": "utf-8"}),
        ("application/json;;", "application/json", {}),
        ('multipart/form-data; boundary="a \\"b\\" c"', "multipart/form-data", {"boundary": 'a "b" c'}),
        ("application/merge-patch+json", "application/merge-patch+json", {}),
    ],
)
def test_media_types_parse_by_rfc_9110(value: str, essence: str, parameters: dict[str, str]) -> None:
    parsed = media_type.parse(value)
    assert parsed is not None
    assert (f"{parsed.type}/{parsed.subtype}", parsed.parameters) == (essence, parameters)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "json",
        "application/",
        "application /json",  # no whitespace inside a media type
        "application/json, text/plain",  # two Content-Type headers joined by API Gateway
        "application/json; charset",  # a parameter without a value
        "application/json; charset = utf-8",  # no whitespace around "="
        "application/json; charset=utf-8; Charset=latin-1",  # one parameter twice
        'application/json; charset="utf-8',  # an unterminated quoted string
        "application/json (a comment)",  # MIME has comments, HTTP does not
        "application/json\r\n",
        "=;X^b*",  # raises IndexError in the standard library's MIME parser
        "application/js\ud800on",
    ],
)
def test_malformed_media_types_are_none(value: str) -> None:
    assert media_type.parse(value) is None


@given(st.text(max_size=60) | st.lists(st.sampled_from([*'a/;= \t"\\,+*', "json", "ü"])).map("".join))
def test_parse_is_total(value: str) -> None:
    parsed = media_type.parse(value)
    assert parsed is None or (parsed.type and parsed.subtype)
