"""GET /queue/status, /queue/payer/{address}, /queue/item/{queueId}; the mint page at GET /
(with /static/{name} and /config.json; files in static/, packaged with this function); the API's
document at GET /openapi.json and Swagger UI at GET /docs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from mintq import api, page

logger = Logger()
app = api.create_app(api.status_router, page.router(Path(__file__).resolve().parent / "static"), docs=True)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
