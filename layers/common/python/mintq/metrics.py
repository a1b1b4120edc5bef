"""CloudWatch metrics (EMF via Powertools) that can never fail the work they describe.

A metric is a side note: if Powertools cannot serialise it (say, no namespace is
configured), the request or batch it counts must still succeed.
"""

from __future__ import annotations

import logging

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

logger = logging.getLogger(__name__)
_metrics = Metrics()


def count(name: str, value: float = 1) -> None:
    try:
        _metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    except Exception as exc:
        logger.warning("metric %s dropped: %s", name, exc)
