"""The API's response bodies as pydantic models, for the OpenAPI document only.

Handlers return dicts; these models describe them in the document (``mintq.api_docs`` names
them per route and status). They are ``defer_build``: pydantic builds their schemas when the
document is generated, not at import, so the functions' cold start does not pay for them.
The component names in ``openapi.json`` are these class names.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

_DOC_ONLY = ConfigDict(defer_build=True, extra="forbid")


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


_REFUND_DUE = "Paid requests only: paid and failed for good, so the operator owes the payer a refund"
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
    refund_due: bool | None = Field(default=None, description=_REFUND_DUE)


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
    refund_due: bool | None = Field(default=None, description=_REFUND_DUE)
