"""Check an answer against the committed ``openapi.json``: the body schema it documents for
that operation and status (its components resolved), so an undocumented field fails."""

from __future__ import annotations

import functools
import json
from typing import Any

from jsonschema import Draft202012Validator

from tests.support.events import REPO_ROOT


@functools.cache
def document() -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads((REPO_ROOT / "openapi.json").read_text())
    return parsed


def validator(schema: dict[str, Any], doc: dict[str, Any] | None = None) -> Draft202012Validator:
    """``schema`` with the document's components beside it, so ``#/components/...`` resolves."""
    return Draft202012Validator({**schema, "components": (doc or document())["components"]})


def problems(method: str, path: str, status: int, body: Any) -> list[str]:
    """Why ``body`` is not what the document says ``method path`` answers with ``status``."""
    response = document()["paths"][path][method.lower()]["responses"][str(status)]
    schema = response["content"]["application/json"]["schema"]
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator(schema).iter_errors(body)
    ]
