"""CloudWatch metrics (EMF via Powertools) that can never fail the work they describe.

A metric is a side note: if Powertools cannot serialise it (say, no namespace is
configured), the request or batch it counts must still succeed. The names here are the
ones ``template.yaml``'s alarms watch.
"""

from __future__ import annotations

import logging

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

logger = logging.getLogger(__name__)
_metrics = Metrics()


def count(name: str, value: float = 1) -> None:
    _add(name, MetricUnit.Count, value)


def gauge(name: str, value: float, *, seconds: bool = False) -> None:
    """A level (queue depth, age) sampled now; alarms read its Maximum."""
    _add(name, MetricUnit.Seconds if seconds else MetricUnit.Count, value)


def flush() -> None:
    """Publish what is buffered now. A batch invocation lives for minutes; without this its
    metrics would only reach CloudWatch (and its alarms) when it ends."""
    try:
        _metrics.flush_metrics(raise_on_empty_metrics=False)
    except Exception as exc:
        logger.warning("metrics dropped: %s", exc)


def _add(name: str, unit: MetricUnit, value: float) -> None:
    try:
        _metrics.add_metric(name=name, unit=unit, value=value)
    except Exception as exc:
        logger.warning("metric %s dropped: %s", name, exc)
