"""What a request body may be: one JSON object, sent as ``application/json`` in UTF-8.

The one body policy for every route that reads a body (``POST /mint``); ``api`` installs
``JsonBodyValidation`` in place of Powertools' own body reading, which also parses forms and
multipart and raises errors nothing maps to a 4xx (multipart without a boundary was a 500).
Routes without a body parameter (the status GETs) never read one, so a body there is ignored.

In order, each refusal a ``mintq.errors`` class (status and code in brackets):

- Flagged base64 but not base64 [400 ``malformed_json``].
- Empty (zero bytes): no body, whatever ``Content-Type`` says; the route decides (free mode:
  422, ``payer`` is required; x402 mode: the 402 challenge).
- ``Content-Encoding`` other than ``identity`` [415 ``unsupported_media_type``]: never decompressed.
- ``Content-Type`` (RFC 9110 §8.3.1, ``mintq.media_type``): absent (read as JSON, as
  ``requests``/``httpx`` send ``data=`` bodies), or ``application/json`` with type and subtype in
  any case. Its ``charset``, if given, must be ``utf-8`` in any case (RFC 8259 §8.1: JSON between
  systems is UTF-8); other parameters are ignored. Anything else [415 ``unsupported_media_type``]:
  forms (``curl -d`` without ``-H``), multipart, ``text/plain``, ``application/*+json``
  (merge-patch, problem+json, … name other documents than a mint request), and a malformed
  value (two types joined by a comma, a parameter without a value, a parameter named twice).
- Over ``MINTQ_MAX_BODY_BYTES`` bytes (after base64) [413 ``payload_too_large``].
- Not UTF-8 [400 ``malformed_json``]; a leading BOM is ignored (RFC 8259 §8.1 allows that).
- Not one JSON text as I-JSON (RFC 7493) restricts it: ``NaN``/``Infinity``, unpaired surrogate
  escapes, numbers Python refuses to convert, nesting deeper than the parser recurses
  [400 ``malformed_json``]; a name twice in one object at any depth [400 ``duplicate_json_key``]:
  parsers disagree on which one wins, so two readers could see two different payers.
- A top-level value that is not an object [422 ``validation_error``].
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.event_handler.middlewares.openapi_validation import (
    OpenAPIRequestValidationMiddleware,
)
from aws_lambda_powertools.event_handler.types import EventHandlerInstance

from mintq import config, errors, media_type

MEDIA_TYPE = "application/json"
CHARSET = "utf-8"
_BOM = "\ufeff"


def read_json_object(
    headers: Mapping[str, str], body: str | None, *, base64_encoded: bool, max_bytes: int
) -> dict[str, Any] | None:
    """The body as a JSON object, or ``None`` when there is none.

    ``headers``: the request's headers, looked up by lower-case name (API Gateway HTTP API
    lower-cases them); ``body``/``base64_encoded``: the event's ``body``/``isBase64Encoded``;
    ``max_bytes``: the size limit in bytes of the decoded body.
    Raises ``errors.UnsupportedMediaType``, ``PayloadTooLarge``, ``MalformedJson``,
    ``DuplicateJsonKey`` or ``ValidationFailed`` as the module docstring lists.
    """
    raw = _decoded(body or "", base64_encoded=base64_encoded)
    if not raw:
        return None
    _check_encoding(headers.get("content-encoding"))
    _check_media_type(headers.get("content-type"))
    if len(raw) > max_bytes:
        raise errors.PayloadTooLarge(f"the body must be at most {max_bytes} bytes")
    try:
        text = raw.decode("utf-8").removeprefix(_BOM)
    except UnicodeDecodeError:
        raise errors.MalformedJson("the request body is not UTF-8") from None
    value = _parse(text)
    if not isinstance(value, dict):
        raise errors.ValidationFailed(
            f'the body must be a JSON object such as {{"payer": "0x…"}}, not {_json_kind(value)}'
        )
    return value


def _decoded(body: str, *, base64_encoded: bool) -> bytes:
    if not base64_encoded:
        # API Gateway passes non-UTF-8 content base64-encoded, so text here came from UTF-8;
        # "surrogatepass" keeps a test's lone surrogate for the UTF-8 check to refuse.
        return body.encode("utf-8", "surrogatepass")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise errors.MalformedJson("the request body is not valid base64") from None


def _check_encoding(content_encoding: str | None) -> None:
    codings = [c.strip().lower() for c in (content_encoding or "").split(",") if c.strip()]
    if any(c != "identity" for c in codings):
        raise errors.UnsupportedMediaType(
            f"Content-Encoding {_shown(content_encoding or '')} is not accepted: send the JSON uncompressed"
        )


def _check_media_type(content_type: str | None) -> None:
    if content_type is None or not content_type.strip(" \t"):
        return  # no label: the content is read as JSON (RFC 9110 §8.3 lets a recipient examine it)
    media = media_type.parse(content_type)
    if media is None:
        raise errors.UnsupportedMediaType(
            f"Content-Type {_shown(content_type)} is malformed: send {MEDIA_TYPE}; charset={CHARSET}"
        )
    essence = f"{media.type}/{media.subtype}"
    if essence != MEDIA_TYPE:
        # curl -d labels a body as a form unless told otherwise
        hint = (
            " (curl: -H 'content-type: application/json')" if media.subtype == "x-www-form-urlencoded" else ""
        )
        raise errors.UnsupportedMediaType(
            f"Content-Type {_shown(essence)} is not accepted: send the body as {MEDIA_TYPE}{hint}"
        )
    charset = media.parameters.get("charset")
    if charset is not None and charset.lower() != CHARSET:
        raise errors.UnsupportedMediaType(f"charset {_shown(charset)} is not accepted: JSON is {CHARSET}")


def _shown(text: str) -> str:
    """Client text quoted for a message, cut short."""
    return repr(text[:80] + ("…" if len(text) > 80 else ""))


def _parse(text: str) -> Any:
    try:
        value = json.loads(text, object_pairs_hook=_unique_names, parse_constant=_no_constant)
        # I-JSON: no unpaired surrogates (an escape like "\ud800" decodes to one).
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except errors.MintqError:
        raise
    except RecursionError:
        raise errors.MalformedJson("the request body is nested too deeply") from None
    except UnicodeEncodeError:
        raise errors.MalformedJson("the request body holds an unpaired surrogate escape") from None
    except ValueError as exc:  # JSONDecodeError, and int() refusing over 4300 digits
        raise errors.MalformedJson(f"the request body is not valid JSON: {_reason(exc)}") from None
    return value


def _unique_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) < len(pairs):
        names = [name for name, _ in pairs]
        twice = next(name for i, name in enumerate(names) if name in names[:i])
        raise errors.DuplicateJsonKey(f"the name {_shown(twice)} appears twice in one JSON object")
    return value


def _no_constant(name: str) -> Any:
    raise errors.MalformedJson(f"{name} is not JSON")


def _reason(exc: ValueError) -> str:
    return exc.msg if isinstance(exc, json.JSONDecodeError) else "a number is too long"


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    kinds = {bool: "a boolean", list: "an array", str: "a string"}
    return kinds.get(type(value), "a number")


class JsonBodyValidation(OpenAPIRequestValidationMiddleware):
    """Powertools' request validation with ``read_json_object`` as its only body reader.

    Powertools reads JSON, forms and multipart for any route with a body parameter and has no
    public switch to accept only JSON; ``_get_body`` is its one body entry point (pinned
    ``aws-lambda-powertools==3.37.0``; ``tests/functional/test_request_bodies.py`` fails if that moves).
    What this raises happens inside the route call, so ``api``'s exception handlers answer it.
    """

    def _get_body(self, app: EventHandlerInstance) -> dict[str, Any]:
        event = app.current_event
        body = read_json_object(
            event.headers,
            event.body,
            base64_encoded=bool(event.is_base64_encoded),
            max_bytes=config.load().max_body_bytes,
        )
        # Powertools' own contract says dict, but it hands None on as "no body" to the model.
        return body  # type: ignore[return-value]
