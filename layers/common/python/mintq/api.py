"""HTTP API: the app, ``POST /mint``, the status tables and the one error shape.

Every error body is ``{"success": false, "error": {"code": ..., "message": ...}}``, except
402, whose body the x402 protocol fixes (``error`` is the code as a string). Statuses come
from here only: an error's from its class by ``HTTP_STATUS``, a mint's from its outcome
(``mintq.mint_outcomes``) by ``OUTCOME_STATUS``; the outcomes' bodies and headers are
``mintq.api_mint_answers``'s. The read routes are in ``mintq.api_reads``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from mintq import api_docs, api_mint_answers, config, db, errors, metrics, origins, payments, request_body
from mintq.api_reads import docs_router, status_router
from mintq.mint_outcomes import Accepted, MintOutcome, PendingSettlement, Refused, Replayed

logger = Logger(child=True)

__all__ = ["create_app", "docs_router", "enqueue_router", "status_router"]

JSON = "application/json"
#: Time (s) kept back from the invocation's end to write the outcome and send the answer.
ANSWER_RESERVE_SECONDS = 1.0

#: The one table from error class to HTTP status: an error takes the status of the nearest
#: class in its hierarchy listed here; anything else (a worker-only error reaching a request,
#: a ``ConfigurationError``) is our fault: 500. A 503 carries ``Retry-After``.
HTTP_STATUS: dict[type[errors.MintqError], int] = {
    errors.InvalidRequest: 400,
    errors.ValidationFailed: 422,
    errors.UnsupportedMediaType: 415,
    errors.PayloadTooLarge: 413,
    errors.NotFound: 404,
    errors.IdempotencyConflict: 409,
    errors.InvalidTransition: 409,
    errors.SupplyExhausted: 410,
    errors.PayerLimitReached: 429,
    errors.OriginNotAllowed: 403,
    errors.FacilitatorUnavailable: 503,
    errors.SupplyUnknown: 503,
    errors.ApiClosed: 503,
    errors.DatabaseError: 503,
    errors.SignerUnavailable: 503,
}
#: Seconds a 503's ``Retry-After`` asks the client to wait.
RETRY_AFTER_SECONDS = 5

#: The status of each outcome of ``payments.accept_mint`` (bodies and headers:
#: ``mintq.api_mint_answers``). A refused payment is x402's 402, never an error shape.
OUTCOME_STATUS: dict[type[MintOutcome], int] = {
    Accepted: 202,
    Replayed: 202,
    PendingSettlement: 202,
    Refused: 402,
}


def http_status(exc: errors.MintqError) -> int:
    """The status ``exc`` is answered with (``HTTP_STATUS``; 500 when none of its classes is listed)."""
    for cls in type(exc).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]  # type: ignore[index]  # cls is a MintqError subclass here
    return 500


class MintRequest(BaseModel):
    """``POST /mint`` body."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=api_docs.MINT_REQUEST_SCHEMA)
    payer: StrictStr | None = Field(
        default=None,
        description="EIP-55 or single-case 0x address that receives the mint (free mode; "
        "x402 mode mints to the verified payer and ignores it)",
        json_schema_extra=api_docs.ADDRESS_SCHEMA,  # documented; checked by mintq.addresses (400)
    )


def error_response(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response[str]:
    """The one error shape: ``{"success": false, "error": {"code", "message"}}`` (plus ``extra``)."""
    body = json.dumps({"success": False, "error": {"code": code, "message": message}, **(extra or {})})
    return Response(status_code=status, content_type=JSON, body=body, headers=headers)


def answer_mint(outcome: MintOutcome) -> Response[str]:
    """``outcome`` as an HTTP answer: status by ``OUTCOME_STATUS``, body and headers by
    ``api_mint_answers``; logged (and a 202 counted as ``MintRequested``)."""
    status = OUTCOME_STATUS[type(outcome)]
    body, headers = api_mint_answers.body_and_headers(outcome)
    if isinstance(outcome, Refused):
        code = outcome.reason or "payment_required"
        logger.info("payment refused", extra={"action": "payment_refused", "code": code})
    else:
        metrics.count("MintRequested", 1)
        logger.info(
            "request enqueued",
            extra={
                "action": "enqueued",
                "queue_id": body["queueId"],
                "queue_position": body["queuePosition"],
                "payment_status": body.get("paymentStatus"),
            },
        )
    return Response(status_code=status, content_type=JSON, body=json.dumps(body), headers=headers or None)


# --- enqueue -----------------------------------------------------------------

enqueue_router = Router()  # type: ignore[no-untyped-call]


def _own_origin(event: Any, headers: Mapping[str, str]) -> str:
    host = headers.get("host") or (event.get("requestContext") or {}).get("domainName") or "localhost"
    proto = headers.get("x-forwarded-proto") or "https"
    return f"{proto}://{host}"


def _deadline() -> float | None:
    """When the answer must be ready (``time.monotonic()``): the invocation's remaining time
    less what writing and sending the answer takes; None without a Lambda context."""
    context = enqueue_router.lambda_context
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return None
    return time.monotonic() + float(remaining()) / 1000 - ANSWER_RESERVE_SECONDS


def payment_header(headers: Mapping[str, str]) -> str | None:
    """The payment: ``PAYMENT-SIGNATURE`` (x402 v2), else ``X-PAYMENT`` (v1); None if neither.
    ``headers`` as Powertools gives them, looked up in any case."""
    return headers.get("payment-signature") or headers.get("x-payment")


# The request headers POST /mint reads (Idempotency-Key, PAYMENT-SIGNATURE, X-PAYMENT) are not
# parameters of this function: Powertools would re-inspect each declared header's annotation on
# every request (about a seventh of the handler's Python), and each is checked where it is read
# (queue.parse_idempotency_key, x402_payment). mintq.openapi documents them (api_docs.POST_MINT_HEADERS).
@enqueue_router.post("/mint", **api_docs.POST_MINT)  # type: ignore[untyped-decorator]
def post_mint(request: MintRequest | None = None) -> Response[str]:
    cfg = config.load()
    event = enqueue_router.current_event
    headers = event.headers  # case-insensitive; Powertools builds it anew on each access
    origin = headers.get("origin")
    own_origin = _own_origin(event, headers)
    if not origins.may_mint(origin, own_origin, cfg.allowed_origins):
        raise errors.OriginNotAllowed(f"pages on {str(origin)[:100]} may not mint (AllowedOrigins)")
    outcome = payments.accept_mint(
        db.shared_connection(),
        cfg,
        body_payer=request.payer if request is not None else None,
        payment_header=payment_header(headers),
        idempotency_key=headers.get("idempotency-key"),
        resource_url=own_origin + event.path,
        deadline=_deadline(),
    )
    return answer_mint(outcome)


# --- the app -----------------------------------------------------------------


class MintqResolver(APIGatewayHttpResolver):
    """HTTP API resolver whose validation reads bodies by ``mintq.request_body``'s one policy."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self._enable_validation:
            # Powertools' middleware classes are untyped
            self._request_validation_middleware = request_body.JsonBodyValidation()  # type: ignore[no-untyped-call]


def _validation_error(exc: RequestValidationError) -> Response[str]:
    problems = exc.errors()
    details = []
    for problem in problems:
        where = ".".join(str(part) for part in problem.get("loc", ()) if part != "body") or "body"
        details.append(f"{where}: {problem.get('msg', 'invalid')}")
    if problems and all(p.get("loc", ("body",))[0] in ("query", "path") for p in problems):
        # A bad limit or path parameter is a bad request line, not a body of the wrong shape.
        return error_response(
            HTTP_STATUS[errors.InvalidRequest], errors.InvalidRequest.code, "; ".join(details)
        )
    return error_response(
        HTTP_STATUS[errors.ValidationFailed], errors.ValidationFailed.code, "; ".join(details)
    )


def _mintq_error(exc: errors.MintqError) -> Response[str]:
    status = http_status(exc)
    if status < 500:
        return error_response(status, exc.code, exc.message)
    logger.exception("request failed", extra={"action": "request_failed", "code": exc.code})
    # Our fault: the client gets the class's fixed text; the detail (hosts, SQL) stays in the log.
    message = (type(exc).__doc__ or "internal error").strip()
    retry = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else None
    return error_response(status, exc.code, message, retry)


def _unexpected(exc: Exception) -> Response[str]:
    logger.exception("unexpected error", extra={"action": "request_failed"})
    return error_response(500, errors.MintqError.code, "internal error")


def create_app(*routers: Router, docs: bool = False) -> MintqResolver:
    """A resolver for ``routers``; ``docs`` adds ``GET /openapi.json`` and Swagger UI at ``GET /docs``
    (the whole API's document, not only these routers': see ``mintq.openapi``)."""
    app = MintqResolver(enable_validation=True)
    for router in routers:
        app.include_router(router)
    if docs:
        app.include_router(docs_router)
    app.exception_handler(RequestValidationError)(_validation_error)
    app.exception_handler(errors.MintqError)(_mintq_error)
    app.exception_handler(NotFoundError)(
        lambda exc: error_response(HTTP_STATUS[errors.NotFound], errors.NotFound.code, "no such route")
    )
    app.exception_handler(Exception)(_unexpected)
    return app
