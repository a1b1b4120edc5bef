"""HTTP API: Powertools routers, request models and the one error shape.

Every error body is ``{"success": false, "error": {"code": ..., "message": ...}}``, except
402, whose body the x402 protocol fixes (``error`` is the code as a string);
status codes come from the error classes in ``mintq.errors`` by ``HTTP_STATUS``, here only.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Header, Path, Query
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from mintq import api_docs, config, db, errors, metrics, origins, payments, queue, request_body

logger = Logger(child=True)

JSON = "application/json"

#: The one table from error class to HTTP status: an error takes the status of the nearest
#: class in its hierarchy listed here; anything else (a worker-only error reaching a request,
#: a ``ConfigurationError``) is our fault: 500.
HTTP_STATUS: dict[type[errors.MintqError], int] = {
    errors.InvalidRequest: 400,
    errors.ValidationFailed: 422,
    errors.UnsupportedMediaType: 415,
    errors.PayloadTooLarge: 413,
    errors.PaymentError: 402,
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


def http_status(exc: errors.MintqError) -> int:
    """The status ``exc`` is answered with (``HTTP_STATUS``; 500 when none of its classes is listed)."""
    for cls in type(exc).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]  # type: ignore[index]  # cls is a MintqError subclass here
    return 500


class MintRequest(BaseModel):
    """``POST /mint`` body."""

    model_config = ConfigDict(extra="forbid")
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
    body = json.dumps({"success": False, "error": {"code": code, "message": message}, **(extra or {})})
    return Response(status_code=status, content_type=JSON, body=body, headers=headers)


def payment_required_response(
    message: str, headers: dict[str, str], x402_fields: dict[str, Any]
) -> Response[str]:
    """A 402 is x402's own body: the v1 ``PaymentRequired``, whose ``error`` is a string from
    v1's list of reasons (v1 clients refuse anything else), left out on a first challenge (v1
    has no reason for "not paid yet"), with the same ``success`` and a ``message`` beside it."""
    body = json.dumps({"success": False, "message": message, **x402_fields})
    return Response(
        status_code=HTTP_STATUS[errors.PaymentError], content_type=JSON, body=body, headers=headers
    )


def _own_origin() -> str:
    event = enqueue_router.current_event
    headers = event.headers
    host = headers.get("host") or (event.get("requestContext") or {}).get("domainName") or "localhost"
    proto = headers.get("x-forwarded-proto") or "https"
    return f"{proto}://{host}"


def _resource_url() -> str:
    return _own_origin() + enqueue_router.current_event.path


def _deadline() -> float | None:
    """When the answer must be ready (``time.monotonic()``): the invocation's remaining time
    less what writing and sending the answer takes; None without a Lambda context."""
    context = enqueue_router.lambda_context
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return None
    return time.monotonic() + float(remaining()) / 1000 - payments.ANSWER_RESERVE_SECONDS


# --- enqueue -----------------------------------------------------------------

enqueue_router = Router()  # type: ignore[no-untyped-call]

_IDEMPOTENCY = "1 to 255 printable ASCII characters; the same key and body answer the first response again"
_V2 = "x402 v2: base64 JSON `PaymentPayload` (x402 mode)"
_V1 = "x402 v1: base64 JSON `PaymentPayload` (x402 mode)"


@enqueue_router.post("/mint", **api_docs.POST_MINT)  # type: ignore[untyped-decorator]
def post_mint(
    request: MintRequest | None = None,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", description=_IDEMPOTENCY)] = None,
    # Read by mintq.payments from the headers; declared so the document names them.
    payment_signature: Annotated[str | None, Header(alias="PAYMENT-SIGNATURE", description=_V2)] = None,
    x_payment: Annotated[str | None, Header(alias="X-PAYMENT", description=_V1)] = None,
) -> Response[str]:
    cfg = config.load()
    origin = enqueue_router.current_event.headers.get("origin")
    if not origins.may_mint(origin, _own_origin(), cfg.allowed_origins):
        raise errors.OriginNotAllowed(f"pages on {str(origin)[:100]} may not mint (AllowedOrigins)")
    accepted = payments.accept_mint(
        db.shared_connection(),
        cfg,
        body_payer=request.payer if request is not None else None,
        headers=enqueue_router.current_event.headers,
        idempotency_key=idempotency_key,
        resource_url=_resource_url(),
        deadline=_deadline(),
    )
    metrics.count("MintRequested", 1)
    logger.info(
        "request enqueued",
        extra={
            "action": "enqueued",
            "queue_id": accepted.queue_id,
            "queue_position": accepted.queue_position,
            "payment_status": accepted.body.get("paymentStatus"),
        },
    )
    return Response(
        status_code=202, content_type=JSON, body=json.dumps(accepted.body), headers=accepted.headers or None
    )


# --- status ------------------------------------------------------------------

status_router = Router()  # type: ignore[no-untyped-call]


@status_router.get("/queue/status", **api_docs.GET_STATUS)  # type: ignore[untyped-decorator]
def get_status() -> dict[str, Any]:
    return queue.status(db.reader_connection())


@status_router.get("/queue/payer/<address>", **api_docs.GET_PAYER)  # type: ignore[untyped-decorator]
def get_payer(
    address: Annotated[str, Path(**api_docs.ADDRESS_PARAM)],
    limit: Annotated[int | None, Query(ge=1, le=queue.PAYER_PAGE_MAX)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    return queue.payer_requests(
        db.reader_connection(), address, limit=limit, cursor=cursor, primary=db.primary_fallback()
    )


@status_router.get("/queue/item/<queueId>", **api_docs.GET_ITEM)  # type: ignore[untyped-decorator]
def get_item(queueId: Annotated[str, Path(**api_docs.QUEUE_ID_PARAM)]) -> dict[str, Any]:
    return queue.item(db.reader_connection(), queueId, primary=db.primary_fallback())


# --- the document ------------------------------------------------------------

docs_router = Router()  # type: ignore[no-untyped-call]


@docs_router.get("/openapi.json", include_in_schema=False)  # type: ignore[untyped-decorator]
def get_openapi() -> Response[str]:
    from mintq import openapi

    return Response(status_code=200, content_type=JSON, body=openapi.document_json())


@docs_router.get("/docs", include_in_schema=False)  # type: ignore[untyped-decorator]
def get_docs() -> Response[str]:
    from mintq import openapi

    if (docs_router.current_event.query_string_parameters or {}).get("format") == "json":
        return get_openapi()  # what Powertools' Swagger page links to as its source
    return Response(status_code=200, content_type="text/html", body=openapi.swagger_html())


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
    if status >= 500:
        logger.exception("request failed", extra={"action": "request_failed", "code": exc.code})
    if isinstance(exc, errors.PaymentError):
        from mintq import x402  # only x402 deployments refuse payments

        headers, extra = x402.refusal(exc)
        logger.info("payment refused", extra={"action": "payment_refused", "code": exc.code})
        return payment_required_response(exc.message, headers, extra)
    if status >= 500:
        # Our fault: the client gets the class's fixed text; the detail (hosts, SQL) stays in the log.
        message = (type(exc).__doc__ or "internal error").strip()
        retry = {"Retry-After": "5"} if status == 503 else None
        return error_response(status, exc.code, message, retry)
    return error_response(status, exc.code, exc.message)


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
