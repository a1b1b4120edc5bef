"""The OpenAPI 3.1 description of the whole HTTP API: response models, per-route metadata, the document.

The routes in ``mintq.api`` take their ``summary``/``description``/``responses`` from here, so the
document Powertools generates lists every status code a route can answer with its body schema,
headers and examples. The models exist for the document only (handlers return dicts), so they
are ``defer_build``: pydantic builds their schemas when the document is generated, not at import,
and the functions' cold start does not pay for them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

TITLE = "mintq"
#: The API contract's version (not the package's): bump on a breaking change to a route or body.
VERSION = "1.0.0"
DESCRIPTION = (
    "A serverless mint queue. `POST /mint` (free, or paid with x402) queues a mint and answers "
    "with a queue id, position and wait; a batch worker mints queued requests on chain in "
    "`batchMint(address[])` transactions; the `/queue/*` reads follow every request and batch.\n\n"
    "Every error body is `Error` (`{success: false, error: {code, message}}`) except x402's 402, "
    "whose body the protocol fixes (`PaymentRequired`). A 5xx is always the API's own fault, never "
    'the input\'s. API Gateway itself answers a throttled request with 429 `{"message": "Too Many '
    'Requests"}` before any function runs.'
)

_DOC_ONLY = ConfigDict(defer_build=True, extra="forbid")

# Parameter schemas are documentation only: the domain checks them and answers its own 400s
# (invalid_address, invalid_queue_id) rather than Powertools' 422.
ADDRESS_SCHEMA: dict[str, Any] = {"pattern": "^0x[0-9a-fA-F]{40}$"}
ADDRESS_PARAM: dict[str, Any] = {
    "description": "0x address, single case or EIP-55 (a mixed-case address must pass its checksum)",
    "json_schema_extra": ADDRESS_SCHEMA,
}
QUEUE_ID_PARAM: dict[str, Any] = {
    "description": "The queueId POST /mint answered (a UUID)",
    "json_schema_extra": {"format": "uuid"},
}


class ErrorDetail(BaseModel):
    model_config = _DOC_ONLY
    code: str = Field(description="Machine-readable error code, e.g. `invalid_address`")
    message: str = Field(description="What was wrong, for a person")


class Error(BaseModel):
    """Every non-402 error."""

    model_config = _DOC_ONLY
    success: Literal[False]
    error: ErrorDetail


class GatewayMessage(BaseModel):
    """API Gateway's own answer (throttling, payload quota): no function ran."""

    model_config = _DOC_ONLY
    message: str


class PaymentRequired(BaseModel):
    """x402's 402 body: v1 ``PaymentRequired`` (``x402Version``, ``accepts``, ``error`` as a
    string) with mintq's ``success`` and ``message`` beside it. v2 clients read the
    ``PAYMENT-REQUIRED`` header instead."""

    model_config = ConfigDict(defer_build=True, extra="allow")
    success: Literal[False]
    error: str | None = Field(
        default=None, description="Why a payment was refused, in x402 v1's words; absent on a first challenge"
    )
    message: str
    x402Version: int | None = Field(default=None, description="1 (the body is x402 v1's)")
    accepts: list[dict[str, Any]] | None = Field(
        default=None, description="x402 v1 `PaymentRequirements`: scheme, network, amount, asset, payTo, …"
    )


class MintAccepted(BaseModel):
    """``POST /mint``'s 202."""

    model_config = _DOC_ONLY
    success: Literal[True]
    message: str
    queueId: str = Field(description="UUID of the request; follow it at /queue/item/{queueId}")
    queuePosition: int | None = Field(
        description="Requests ahead + 1 (0 once minted; null while a payment is settling)"
    )
    payer: str = Field(description="EIP-55 address that receives the mint")
    estimatedWaitSeconds: int | float | None = Field(
        description="ceil(position / max_batch_size) * batch_interval_seconds; null while settling"
    )
    paymentType: Literal["free", "x402"]
    paymentStatus: Literal["settling", "settlement_pending", "settled", "failed"] | None = Field(
        default=None, description="x402 mode only"
    )
    settlementTransaction: str | None = Field(default=None, description="x402 mode only: the transfer's hash")


class QueueStats(BaseModel):
    model_config = _DOC_ONLY
    pending_count: int
    processing_count: int
    completed_count: int
    failed_count: int
    oldest_pending: str | None = Field(description="ISO 8601 UTC time the oldest pending request was queued")
    unique_payers_pending: int


class Batch(BaseModel):
    model_config = _DOC_ONLY
    id: str
    batch_tx_hash: str
    mint_count: int
    status: Literal["signed", "pending", "confirmed", "failed", "dropped"]
    nonce: int
    created_at: str
    sent_at: str | None
    confirmed_at: str | None
    block_number: int | None
    gas_used: int | None
    error_message: str | None


class WorkerRefusal(BaseModel):
    model_config = _DOC_ONLY
    chain_id: int
    signer_address: str
    code: str = Field(description="e.g. `signer_underfunded`, `chain_unavailable`")
    reason: str
    since: str
    last_seen_at: str


class WorkerState(BaseModel):
    model_config = _DOC_ONLY
    state: Literal["ok", "refusing"] = Field(description="`refusing` while any signer's latest cycle faulted")
    reason: str | None = Field(description="The earliest refusal's reason")
    since: str | None
    signers: list[WorkerRefusal]


class Throughput(BaseModel):
    model_config = _DOC_ONLY
    mintsPerSecond: int | float | None = Field(
        description="Measured over the window; null before two batches"
    )
    confirmSeconds: int | float | None = Field(description="A batch's mean time from broadcast to receipt")
    mintsPerBatch: int | float | None = Field(
        description="The largest batch confirmed in the window; null before two batches"
    )
    batchPeriodSeconds: int | float | None = Field(
        description="Mean time between two batch confirmations in the window; null before two batches"
    )
    windowSeconds: int | float


class QueueStatus(BaseModel):
    """``GET /queue/status``."""

    model_config = _DOC_ONLY
    stats: QueueStats
    recentBatches: list[Batch] = Field(description="The newest batches, newest first")
    batchInterval: int | float = Field(description="Seconds between batch cycles")
    maxBatchSize: int
    worker: WorkerState = Field(description="Whether the batch workers send (why the line waits if not)")
    paused: bool = Field(description="An operator paused the batch workers (`mintq pause`)")
    apiClosed: bool = Field(description="An operator closed POST /mint (it answers 503 `api_closed`)")
    replicaLagSeconds: int | float = Field(
        description="How stale these figures may be: the read replica's replay lag (0 on the primary)"
    )
    throughput: Throughput
    estimatedWaitSeconds: int | float | None = Field(description="For a request joining the line now")


_MINT_STATUS = Literal["pending", "processing", "completed", "failed"]
_PAYMENT_STATUS = Literal["settling", "settlement_pending", "settled", "failed"]


class PayerRequest(BaseModel):
    model_config = _DOC_ONLY
    id: str
    status: _MINT_STATUS
    created_at: str
    processed_at: str | None
    mint_tx_hash: str | None
    error_message: str | None
    queue_position: int | None = Field(description="Live position while pending, at enqueue time after")
    payment_status: _PAYMENT_STATUS | None = Field(default=None, description="Paid requests only")
    settlement_tx_hash: str | None = Field(default=None, description="Paid requests only")


class PayerPage(BaseModel):
    """``GET /queue/payer/{address}``."""

    model_config = _DOC_ONLY
    payer: str
    requests: list[PayerRequest] = Field(description="Newest first")
    nextCursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last")


class QueueItem(BaseModel):
    """``GET /queue/item/{queueId}``: a queued request, or a payment still settling."""

    model_config = _DOC_ONLY
    id: str
    payer_address: str
    status: Literal["pending", "processing", "completed", "failed", "awaiting_payment"]
    created_at: str
    updated_at: str
    processed_at: str | None = None
    mint_tx_hash: str | None = None
    error_message: str | None = None
    retry_count: int | None = None
    payment_type: Literal["free", "x402"]
    queue_position: int | None = None
    waiting_reason: str | None = Field(
        default=None, description="Pending or processing: why the worker is not sending, if it is not"
    )
    estimatedWaitSeconds: int | float | None = Field(
        default=None, description="Seconds until minted, estimated"
    )
    payment_error_reason: str | None = Field(default=None, description="Why a payment failed, if it did")
    payment_status: _PAYMENT_STATUS | None = Field(default=None, description="Paid requests only")
    settlement_tx_hash: str | None = Field(default=None, description="Paid requests only")


# --- responses ---------------------------------------------------------------------------

_PAYER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
_QUEUE_ID = "3f1c9a52-8d0e-4a57-9a3b-2f61d1c0b7e4"


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
                    "examples": {
                        "free": {
                            "value": {
                                "success": True,
                                "message": "Mint request added to queue",
                                "queueId": _QUEUE_ID,
                                "queuePosition": 1,
                                "payer": _PAYER,
                                "estimatedWaitSeconds": 10,
                                "paymentType": "free",
                            }
                        }
                    },
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
                    "examples": {
                        "payment_required": {
                            "value": {
                                "success": False,
                                "error": "payment_required",
                                "message": "this API is paid with x402",
                                "x402Version": 1,
                                "accepts": [
                                    {"scheme": "exact", "network": "base", "maxAmountRequired": "10000"}
                                ],
                            }
                        }
                    },
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

GET_STATUS: dict[str, Any] = {
    "operation_id": "getQueueStatus",
    "summary": "Queue statistics, the newest batches and the live settings",
    "responses": {
        200: {"description": "The queue now", "content": {"application/json": {"model": QueueStatus}}}
    }
    | _ROUTE_COMMON,
    "tags": ["queue"],
}

GET_PAYER: dict[str, Any] = {
    "operation_id": "getPayerRequests",
    "summary": "A payer's requests, newest first, a page at a time",
    "responses": {
        200: {"description": "One page", "content": {"application/json": {"model": PayerPage}}},
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
    "responses": {
        200: {
            "description": "The request (or its payment while it settles)",
            "content": {"application/json": {"model": QueueItem}},
        },
        400: _error("queueId is not a UUID", ("invalid_queue_id", "queueId must be a UUID")),
        404: _error("No such request", ("not_found", f"no request with queueId {_QUEUE_ID}")),
    }
    | _ROUTE_COMMON,
    "tags": ["queue"],
}
