"""template.yaml's schedules and its singleton worker: at most once a minute, never retried, one
batch worker at a time, and a payload like the sample event's.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tests.support import sam_template as sam
from tests.support.sam_template import EVENTS_DIR, template

__all__ = ["template"]  # the fixture, used by name


_RATE = re.compile(r"^rate\((?P<n>\d+) (?P<unit>minute|minutes|hour|hours|day|days)\)$")
_UNIT_S = {"minute": 60, "hour": 3600, "day": 86400}


def _schedules(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, props in sam.functions(template).items():
        for event in props.get("Events", {}).values():
            if event["Type"] in ("Schedule", "ScheduleV2"):
                found.append((name, event["Properties"]))
    return found


def _batch_schedule(template: dict[str, Any]) -> dict[str, Any]:
    (schedule,) = [props for name, props in _schedules(template) if name == "BatchFunction"]
    return schedule


def test_batch_is_scheduled_at_most_once_a_minute(template: dict[str, Any]) -> None:
    schedules = _schedules(template)
    assert sorted(name for name, _ in schedules) == ["BatchFunction", "RetentionFunction"]
    for _, props in schedules:
        expression = props["ScheduleExpression"]
        if expression.startswith("cron("):
            continue  # cron's finest field is the minute
        match = _RATE.match(expression)
        assert match, f"{expression!r}: EventBridge rates take minute(s), hour(s) or day(s) only"
        n, unit = int(match["n"]), match["unit"]
        assert n >= 1
        assert (n == 1) == (not unit.endswith("s")), f"{expression!r}: use the singular unit only for 1"
        assert n * _UNIT_S[unit.rstrip("s")] >= 60


def test_rate_check_rejects_sub_minute_rates() -> None:
    assert _RATE.match("rate(10 seconds)") is None
    assert _RATE.match("rate(1 minute)") is not None


def test_batch_ticks_are_never_retried(template: dict[str, Any]) -> None:
    batch = sam.functions(template)["BatchFunction"]
    invoke_config = batch["EventInvokeConfig"]
    assert invoke_config["MaximumRetryAttempts"] == 0
    assert invoke_config["MaximumEventAgeInSeconds"] <= 120
    schedule = _batch_schedule(template)
    assert schedule.get("RetryPolicy", {}).get("MaximumRetryAttempts") == 0


def test_batch_schedule_payload_matches_the_sample_event(template: dict[str, Any]) -> None:
    payload = json.loads(_batch_schedule(template)["Input"])
    sample = json.loads((EVENTS_DIR / "batch.json").read_text(encoding="utf-8"))
    assert set(payload) == set(sample)
    assert sample["source"] == payload["source"]


def test_batch_reserved_concurrency_is_one_by_default_and_can_be_omitted(template: dict[str, Any]) -> None:
    reserved = sam.functions(template)["BatchFunction"]["ReservedConcurrentExecutions"]
    params = sam.defaults(template)
    assert int(sam.resolve(reserved, template, params)) == 1
    assert sam.resolve(reserved, template, {**params, "BatchReservedConcurrency": "0"}) is None


def test_retention_runs_daily_and_is_never_retried(template: dict[str, Any]) -> None:
    (schedule,) = [props for name, props in _schedules(template) if name == "RetentionFunction"]
    minute, hour, *rest = schedule["ScheduleExpression"].removeprefix("cron(").removesuffix(")").split()
    assert minute.isdigit() and hour.isdigit() and rest[:3] == ["*", "*", "?"], "once a day"
    assert schedule["RetryPolicy"]["MaximumRetryAttempts"] == 0
    assert sam.functions(template)["RetentionFunction"]["EventInvokeConfig"]["MaximumRetryAttempts"] == 0


def test_only_the_batch_worker_is_singleton(template: dict[str, Any]) -> None:
    for name, props in sam.functions(template).items():
        if name != "BatchFunction":
            assert "ReservedConcurrentExecutions" not in props, name
