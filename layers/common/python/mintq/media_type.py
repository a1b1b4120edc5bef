"""HTTP media types (``Content-Type`` values) by RFC 9110's grammar.

Written out because the standard library's MIME parser (``email.headerregistry``) raises on
some malformed values (``IndexError`` for ``=;X^b*``, ``UnicodeEncodeError`` for a lone
surrogate) and follows MIME's looser grammar (comments, RFC 2231 continuations).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class MediaType:
    """A parsed ``Content-Type``: type and subtype lower-cased, parameter names lower-cased."""

    type: str
    subtype: str
    parameters: dict[str, str]


# RFC 9110 §5.6.2 token, §5.6.4 quoted-string (with obs-text), §5.6.6 parameters, §8.3.1 media-type.
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = r'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
_MEDIA_TYPE = re.compile(rf"({_TOKEN})/({_TOKEN})")
_PARAMETER = re.compile(rf"[ \t]*;[ \t]*(?:({_TOKEN})=({_TOKEN}|{_QUOTED}))?")


def parse(value: str) -> MediaType | None:
    """``value`` (a ``Content-Type`` field value) by RFC 9110 §8.3.1, or ``None`` if malformed.

    A parameter named twice is malformed here: which one counts would be a guess."""
    text = value.strip(" \t")
    media = _MEDIA_TYPE.match(text)
    if media is None:
        return None
    parameters: dict[str, str] = {}
    at = media.end()
    while at < len(text):
        parameter = _PARAMETER.match(text, at)
        if parameter is None:
            return None
        at = parameter.end()
        name, raw = parameter.groups()
        if name is None:
            continue  # "type/subtype;;" is allowed: parameters may be empty
        if name.lower() in parameters:
            return None
        quoted = raw.startswith('"')
        parameters[name.lower()] = re.sub(r"\\(.)", r"\1", raw[1:-1]) if quoted else raw
    return MediaType(type=media[1].lower(), subtype=media[2].lower(), parameters=parameters)
