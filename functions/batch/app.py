"""Scheduled batch worker: cycles until shortly before its own timeout."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from mintq.worker import invocation

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return invocation.run_invocation(context.get_remaining_time_in_millis()).as_dict()
