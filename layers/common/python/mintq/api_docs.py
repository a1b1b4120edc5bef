"""The OpenAPI 3.1 description of each route: parameters, summaries, every response.

The routes in ``mintq.api`` and ``mintq.api_reads`` take their ``summary``/``description``/
``responses`` from here, so the document Powertools generates (``mintq.openapi``) lists every
status code a route can answer with its body schema (``mintq.api_models``), headers and
examples (the bodies themselves in ``mintq.api_examples``).
"""

from __future__ import annotations

from typing import Any

from mintq import api_examples
from mintq.api_models import (
    Error,
    GatewayMessage,
    MintAccepted,
    PayerPage,
    PaymentRequired,
    QueueItem,
    QueueStatus,
)

# Parameter schemas are documentation only: the domain checks them and answers its own 400s
# (invalid_address, invalid_queue_id) rather than Powertools' 422.
ADDRESS_SCHEMA: dict[str, Any] = {"pattern": "^0x[0-9a-fA-F]{40}$", "examples": [api_examples.PAYER]}
ADDRESS_PARAM: dict[str, Any] = {
    "description": "0x address, single case or EIP-55 (a mixed-case address must pass its checksum)",
    "json_schema_extra": ADDRESS_SCHEMA,
}
MINT_REQUEST_SCHEMA: dict[str, Any] = {"examples": [api_examples.MINT_REQUEST]}
QUEUE_ID_PARAM: dict[str, Any] = {
    "description": "The queueId POST /mint answered (a UUID)",
    "json_schema_extra": {"format": "uuid", "examples": [api_examples.QUEUE_ID]},
}

#: The request headers ``POST /mint`` reads, by name, with their descriptions. Documented by
#: ``mintq.openapi`` rather than declared as the route's parameters, which Powertools would
#: re-inspect on every request; each is checked where it is read.
POST_MINT_HEADERS: dict[str, str] = {
    "Idempotency-Key": "1 to 255 printable ASCII characters; the same key and body answer the first response again",
    "PAYMENT-SIGNATURE": "x402 v2: base64 JSON `PaymentPayload` (x402 mode)",
    "X-PAYMENT": "x402 v1: base64 JSON `PaymentPayload` (x402 mode)",
}

# --- responses ---------------------------------------------------------------------------


def _error(description: str, *examples: tuple[str, str]) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/json": {
                "model": Error,
                "examples": {
                    code: {"value": {"success": False, "error": {"code": code, "message": message}}}
                    for code, message in examples
                },
            }
        },
    }


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string"}}


_THROTTLED = {
    "description": "Throttled by API Gateway (the stage's rate or burst limit), before any function runs",
    "content": {
        "application/json": {
            "model": GatewayMessage,
            "examples": {"throttled": {"value": {"message": "Too Many Requests"}}},
        }
    },
}
_UNAVAILABLE = _error(
    "A dependency (database, facilitator, chain RPC) is unreachable, or an operator closed the "
    "API; retry after `Retry-After` seconds",
    ("database_error", "the database is unreachable; retry shortly"),
    ("api_closed", "The API is closed for maintenance; retry later."),
)
_UNAVAILABLE["headers"] = {"Retry-After": _header("Seconds to wait before retrying")}
_INTERNAL = _error("The API's own fault (a bug or a misconfiguration)", ("internal_error", "internal error"))
_COMMON: dict[int, dict[str, Any]] = {500: _INTERNAL, 503: _UNAVAILABLE}
# Powertools documents a 422 for every validated route; ours has the one error shape.
_INVALID = _error(
    "A parameter failed validation", ("validation_error", "query.limit: Input should be a valid integer")
)

_SETTLEMENT_HEADERS = {
    "PAYMENT-RESPONSE": _header("x402 v2: base64 JSON `SettleResponse` (paid requests)"),
    "X-PAYMENT-RESPONSE": _header("x402 v1: base64 JSON `SettleResponse` (paid requests)"),
}

POST_MINT: dict[str, Any] = {
    "operation_id": "postMint",
    "summary": "Queue a mint",
    "description": (
        "Free mode mints to the `payer` in the body. x402 mode mints to the verified payer of the "
        "payment in `PAYMENT-SIGNATURE` (v2) or `X-PAYMENT` (v1) and ignores the body; without a "
        "payment it answers 402 with the payment requirements. An `Idempotency-Key` makes retries "
        "safe: the same key and body answer the first response again."
    ),
    "responses": {
        202: {
            "description": "Queued (or, paid, settling: follow the queueId)",
            "headers": _SETTLEMENT_HEADERS,
            "content": {
                "application/json": {
                    "model": MintAccepted,
                    "examples": {"free": {"value": api_examples.MINT_ACCEPTED}},
                }
            },
            "links": {
                "GetQueueItem": {
                    "operationId": "getQueueItem",
                    "parameters": {"queueId": "$response.body#/queueId"},
                    "description": "The request just queued",
                },
                "GetPayerRequests": {
                    "operationId": "getPayerRequests",
                    "parameters": {"address": "$response.body#/payer"},
                    "description": "Every request of the payer just served",
                },
            },
        },
        400: _error(
            "Malformed input",
            ("malformed_json", "the request body is not valid JSON"),
            ("invalid_address", "payer is not a 0x-prefixed 20-byte hex address"),
            ("invalid_request", "Idempotency-Key must be 1 to 255 printable ASCII characters"),
        ),
        402: {
            "description": "x402 mode: pay first (no payment, or the payment was refused)",
            "headers": {
                "PAYMENT-REQUIRED": _header("x402 v2: base64 JSON `PaymentRequired` (the challenge)"),
                **_SETTLEMENT_HEADERS,
            },
            "content": {
                "application/json": {
                    "model": PaymentRequired,
                    "examples": {"payment_required": {"value": api_examples.PAYMENT_REQUIRED}},
                }
            },
        },
        403: _error(
            "Sent by a browser page on an origin that may not mint (`AllowedOrigins`)",
            ("origin_not_allowed", "pages on https://elsewhere.example may not mint (AllowedOrigins)"),
        ),
        409: _error(
            "The Idempotency-Key was already used with another body",
            ("idempotency_key_reused", "this Idempotency-Key was already used for a different request"),
        ),
        410: _error("Nothing left to mint", ("supply_exhausted", "the token's supply is exhausted")),
        413: _error("Body too large", ("payload_too_large", "the body must be at most 1024 bytes")),
        415: _error("Not JSON", ("unsupported_media_type", "send the body as application/json")),
        422: _error(
            "A missing field, wrong type or extra field",
            ("validation_error", "payer: Input should be a valid string"),
        ),
        429: {
            "description": "The payer already has `max_pending_per_payer` requests waiting, or API "
            "Gateway throttled the request (then the body is `GatewayMessage`)",
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {"$ref": "#/components/schemas/Error"},
                            {"$ref": "#/components/schemas/GatewayMessage"},
                        ]
                    },
                    "examples": {
                        "payer_limit_reached": {
                            "value": {
                                "success": False,
                                "error": {
                                    "code": "payer_limit_reached",
                                    "message": "too many pending requests",
                                },
                            }
                        },
                        "throttled": {"value": {"message": "Too Many Requests"}},
                    },
                }
            },
        },
        **_COMMON,
    },
    "tags": ["mint"],
}

_ROUTE_COMMON = {422: _INVALID, 429: _THROTTLED, **_COMMON}


def _ok(description: str, model: type, example: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"model": model, "examples": {"ok": {"value": example}}}},
    }


GET_STATUS: dict[str, Any] = {
    "operation_id": "getQueueStatus",
    "summary": "Queue statistics, the newest batches and the live settings",
    "description": (
        "Counts by status, the newest batches, whether the batch workers send (and why not), the "
        "measured throughput and the wait a request joining now can expect. Read from a replica "
        "when there is one (`replicaLagSeconds` says how stale)."
    ),
    "responses": {200: _ok("The queue now", QueueStatus, api_examples.QUEUE_STATUS)} | _ROUTE_COMMON,
    "tags": ["queue"],
}

GET_PAYER: dict[str, Any] = {
    "operation_id": "getPayerRequests",
    "summary": "A payer's requests, newest first, a page at a time",
    "description": (
        "Up to `limit` requests (20 by default, at most 100) of the payer, newest first; pass "
        "`nextCursor` back as `cursor` for the next page. Paid requests carry their payment's status."
    ),
    "responses": {
        200: _ok("One page", PayerPage, api_examples.PAYER_PAGE),
        400: _error(
            "Not an address, or a cursor this API never returned",
            ("invalid_address", "not a 0x-prefixed 20-byte hex address"),
            ("invalid_request", "cursor is not one this API returned"),
        ),
    }
    | _ROUTE_COMMON,
    "tags": ["queue"],
}

GET_ITEM: dict[str, Any] = {
    "operation_id": "getQueueItem",
    "summary": "One request's state",
    "description": (
        "The request `POST /mint` queued under this queueId: its status, live position and "
        "estimated wait while it waits, its mint transaction once minted, and for a paid request "
        "its payment (`awaiting_payment` while the payment settles, before the request exists)."
    ),
    "responses": {
        200: _ok("The request (or its payment while it settles)", QueueItem, api_examples.QUEUE_ITEM),
        400: _error("queueId is not a UUID", ("invalid_queue_id", "queueId must be a UUID")),
        404: _error("No such request", ("not_found", f"no request with queueId {api_examples.QUEUE_ID}")),
    }
    | _ROUTE_COMMON,
    "tags": ["queue"],
}
