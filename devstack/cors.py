"""CORS the way an API Gateway HTTP API with a ``CorsConfiguration`` does it (template.yaml's).

AWS's documented behaviour, which the local API copies:

- with CORS configured, API Gateway answers every preflight itself (an ``OPTIONS`` request with
  ``Origin`` and ``Access-Control-Request-Method``), whatever the path and with no route or
  function involved: 204, and the configured allow-* headers when the origin is allowed;
- to any other request that carries ``Origin`` it adds ``Access-Control-Allow-Origin`` (and the
  exposed headers) when the origin is allowed, and nothing when it is not: the browser refuses;
- CORS headers returned by the integration are ignored (dropped);
- an allowed origin is ``*`` (any), an exact origin, or ``https://*`` / ``http://*`` (a prefix).

What CORS cannot close (a POST a browser sends without a preflight), the enqueue function
refuses by ``Origin`` (``mintq.origins``), from ``MINTQ_ALLOWED_ORIGINS`` as on AWS.

The settings below are the template's; tests/unit/test_template_cors_and_throttling.py holds the two equal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mintq import origins

#: The request headers the API reads besides the CORS-safelisted ones.
ALLOW_HEADERS = ("content-type", "idempotency-key", "payment-signature", "x-payment")
#: Response headers a page's script may read (x402's and Retry-After; there is no idempotency
#: replay header: a replayed answer is the first answer, byte for byte).
EXPOSE_HEADERS = ("PAYMENT-REQUIRED", "PAYMENT-RESPONSE", "X-PAYMENT-RESPONSE", "Retry-After")
#: ``AllowedOrigins`` of ``*`` opens the reads only; a list of origins may also POST /mint.
#: Methods alone cannot close POST (browsers never preflight-check GET, HEAD or POST), so ``*``
#: also allows no request header: a mint needs ``content-type: application/json`` (the API
#: answers 415 without it) or a payment header, and the browser refuses their preflight.
READ_METHODS = ("GET",)
ALL_METHODS = ("GET", "POST")
MAX_AGE_S = 600


@dataclass(frozen=True)
class Cors:
    allow_origins: tuple[str, ...]
    allow_methods: tuple[str, ...]
    allow_headers: tuple[str, ...] = ALLOW_HEADERS
    expose_headers: tuple[str, ...] = EXPOSE_HEADERS
    max_age_s: int = MAX_AGE_S

    def allowed_origin(self, origin: str) -> str | None:
        """The ``Access-Control-Allow-Origin`` value for ``origin``, or None if it is not allowed."""
        return origins.match(origin, self.allow_origins)

    def preflight(self, origin: str) -> list[tuple[str, str]]:
        """Headers of the 204 answering a preflight from ``origin`` (none if it is not allowed)."""
        allowed = self.allowed_origin(origin)
        if allowed is None:
            return []
        headers = [
            ("access-control-allow-origin", allowed),
            ("access-control-allow-methods", ",".join(self.allow_methods)),
            ("access-control-allow-headers", ",".join(self.allow_headers)),
            ("access-control-max-age", str(self.max_age_s)),
        ]
        return [(k, v) for k, v in headers if v]

    def apply(self, origin: str | None, headers: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        """An integration response's headers as API Gateway sends them to ``origin``."""
        kept = [(k, v) for k, v in headers if not k.lower().startswith("access-control-")]
        allowed = self.allowed_origin(origin) if origin else None
        if allowed is None:
            return kept
        return [
            *kept,
            ("access-control-allow-origin", allowed),
            ("access-control-expose-headers", ",".join(self.expose_headers)),
        ]


def is_preflight(method: str, headers: Mapping[str, str]) -> bool:
    return method == "OPTIONS" and "origin" in headers and "access-control-request-method" in headers


def for_origins(origins: Sequence[str]) -> Cors:
    """The configuration the template derives from ``AllowedOrigins``: ``*`` alone opens the
    reads to every origin and POST /mint to none; otherwise the listed origins may do both.

    Raises ``ValueError`` for ``*`` among other origins (the template's rule refuses it too).
    """
    cleaned = tuple(o.strip().rstrip("/") for o in origins if o.strip())
    if not cleaned:
        raise ValueError("AllowedOrigins needs at least one origin, or *")
    if cleaned == ("*",):
        return Cors(allow_origins=cleaned, allow_methods=READ_METHODS, allow_headers=())
    if "*" in cleaned:
        raise ValueError("* opens the reads to every origin and must stand alone in AllowedOrigins")
    return Cors(allow_origins=cleaned, allow_methods=ALL_METHODS)
