"""The read routes: ``GET /queue/status``, ``/queue/payer/{address}``, ``/queue/item/{queueId}``
(the status function), and the API's own document at ``GET /openapi.json`` and ``GET /docs``.

Each answers one domain read (``mintq.queue``) from the read replica when one is configured;
their errors are answered by ``mintq.api``'s handlers like every route's.
"""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from mintq import api_docs, db, queue

JSON = "application/json"

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
