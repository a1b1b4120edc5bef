"""template.yaml's alarms: each watches a metric the code emits, the backlog alarm fires on
silence too, and alarms notify a topic only when one is given.
"""

from __future__ import annotations

import ast
from typing import Any

import pytest

from tests.support import sam_template as sam
from tests.support.sam_template import REPO_ROOT, template

__all__ = ["template"]  # the fixture, used by name


def _emitted_metric_names() -> set[str]:
    """Every name passed to mintq.metrics.count/gauge in the package, or counted through the
    worker's ``Telemetry.event(..., metric={name: value})``."""
    names: set[str] = set()
    for path in (REPO_ROOT / "layers" / "common" / "python" / "mintq").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if (
                isinstance(node.func.value, ast.Name)
                and node.func.value.id == "metrics"
                and node.func.attr in ("count", "gauge")
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                names.add(str(node.args[0].value))
            if node.func.attr == "event":
                for keyword in node.keywords:
                    if keyword.arg == "metric" and isinstance(keyword.value, ast.Dict):
                        names |= {str(k.value) for k in keyword.value.keys if isinstance(k, ast.Constant)}
    return names


def test_every_custom_metric_alarm_watches_a_metric_the_code_emits(template: dict[str, Any]) -> None:
    emitted = _emitted_metric_names()
    assert {"WorkerFault", "MintFailed", "FeeCeilingReached", "OldestPendingSeconds"} <= emitted
    alarms = sam.resources(template, "AWS::CloudWatch::Alarm")
    custom = {n: a["Properties"] for n, a in alarms.items() if a["Properties"]["Namespace"] == "Mintq"}
    assert {p["MetricName"] for p in custom.values()} == {
        "OldestPendingSeconds",
        "WorkerFault",
        "FeeCeilingReached",
        "MintFailed",
    }
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    for name, props in custom.items():
        assert props["MetricName"] in emitted, name
        # Powertools EMF: the namespace and the one default dimension, service=<service name>.
        assert props["Namespace"] == env["POWERTOOLS_METRICS_NAMESPACE"], name
        assert props["Dimensions"] == [{"Name": "service", "Value": env["POWERTOOLS_SERVICE_NAME"]}], name


def test_the_backlog_alarm_also_fires_when_the_worker_publishes_nothing(template: dict[str, Any]) -> None:
    backlog = template["Resources"]["BacklogAlarm"]["Properties"]
    assert backlog["TreatMissingData"] == "breaching"
    assert backlog["Statistic"] == "Maximum" and backlog["Threshold"] == {"Ref": "BacklogAlarmSeconds"}
    others = [a for n, a in sam.resources(template, "AWS::CloudWatch::Alarm").items() if n != "BacklogAlarm"]
    assert {a["Properties"]["TreatMissingData"] for a in others} == {"notBreaching"}


@pytest.mark.parametrize("topic", ["", "arn:aws:sns:us-east-1:123456789012:ops"])
def test_alarms_notify_the_topic_only_when_one_is_given(template: dict[str, Any], topic: str) -> None:
    params = {**sam.defaults(template), "AlarmTopicArn": topic}
    for name, alarm in sam.resources(template, "AWS::CloudWatch::Alarm").items():
        actions = sam.resolve(alarm["Properties"]["AlarmActions"], template, params)
        if actions is not None:
            actions = [sam.resolve(a, template, params) for a in actions]
        assert actions == ([topic] if topic else None), name
