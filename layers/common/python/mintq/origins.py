"""Which browser origins may mint: the deployment's ``AllowedOrigins`` (``MINTQ_ALLOWED_ORIGINS``).

CORS only decides what a page's script may *read*. A request a browser sends without a
preflight (a ``POST`` whose body has no type or ``text/plain``, from any page) still reaches
``POST /mint``, and a body without a type is read as JSON. So the enqueue function refuses a
request whose ``Origin`` is neither the API's own nor allowed to mint: with ``*`` (every origin
may read) no other origin may mint; with a list, those origins may. Clients that are not
browsers send no ``Origin`` and are not concerned.
"""

from __future__ import annotations

from collections.abc import Sequence

ANY = "*"


def parse(value: str | None) -> tuple[str, ...]:
    """``"https://a.example,https://*"`` -> its origins (no trailing slash); empty means ``*``."""
    found = tuple(o.strip().rstrip("/") for o in (value or "").split(",") if o.strip())
    return found or (ANY,)


def match(origin: str, allowed: Sequence[str]) -> str | None:
    """The ``Access-Control-Allow-Origin`` value for ``origin`` under ``allowed`` (``*``, an exact
    origin, or ``https://*`` / ``http://*`` as a prefix, as API Gateway reads them), or None."""
    for entry in allowed:
        if entry == ANY:
            return ANY
        if entry == origin or (entry.endswith("*") and origin.startswith(entry[:-1])):
            return origin
    return None


def may_mint(origin: str | None, own_origin: str, allowed: Sequence[str]) -> bool:
    """Whether a request with this ``Origin`` header may ``POST /mint``: none (not a browser),
    the API's own origin (a page it serves), or an origin listed by name (never via ``*``)."""
    if not origin or origin.rstrip("/") == own_origin:
        return True
    return match(origin.rstrip("/"), [o for o in allowed if o != ANY]) is not None
