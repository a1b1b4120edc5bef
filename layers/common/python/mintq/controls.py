"""What operators change: settings, pause and resume, and the safe retry of failed requests.

Each function takes an open autocommit connection and returns what it did; refusals are
``errors.MintqError``s whose message says which rule was broken (the ``mintq`` command
prints it and exits 1).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mintq import db, errors, settings


def get_settings(conn: db.Conn, key: str | None = None) -> list[dict[str, Any]]:
    """Every setting (or one) as stored: key, value, description, updated_at, and whether the
    worker accepts it (``valid``; a bad value stored by SQL falls back to its default)."""
    rows = db.rows(conn, "settings_listing")
    if key is not None:
        if key not in settings.FIELDS:
            settings.parse_setting(key, "")  # raises InvalidSetting naming the known keys
        rows = [r for r in rows if r["key"] == key] or [
            {"key": key, "value": None, "description": None, "updated_at": None}
        ]
    out = []
    for row in rows:
        valid = True
        if row["key"] in settings.FIELDS and row["value"] is not None:
            try:
                settings.parse_setting(row["key"], row["value"])
            except errors.InvalidSetting:
                valid = False
        out.append(dict(row) | {"valid": valid})
    return out


def set_setting(conn: db.Conn, key: str, value: str) -> dict[str, Any]:
    """Validate ``value`` by the worker's rules and store it; raises ``errors.InvalidSetting``
    (nothing stored) for an unknown key or a value that breaks its rule."""
    parsed = settings.parse_setting(key, value)
    row = db.one(conn, "upsert_setting", {"key": key, "value": settings.format_setting(parsed)})
    return dict(row or {})


def pause(conn: db.Conn, *, close_api: bool = False) -> dict[str, Any]:
    """Stop the worker claiming new requests (in-flight batches still finish); with
    ``close_api`` ``POST /mint`` also answers 503 with Retry-After."""
    with db.transaction(conn):
        set_setting(conn, "worker_paused", "true")
        if close_api:
            set_setting(conn, "api_closed", "true")
    return {"paused": True, "api_closed": close_api or _flag(conn, "api_closed")}


def resume(conn: db.Conn) -> dict[str, Any]:
    """Undo ``pause``: the worker claims again and the API accepts again."""
    with db.transaction(conn):
        set_setting(conn, "worker_paused", "false")
        set_setting(conn, "api_closed", "false")
    return {"paused": False, "api_closed": False}


def _flag(conn: db.Conn, key: str) -> bool:
    rows = [r for r in db.rows(conn, "settings_listing") if r["key"] == key]
    return bool(rows) and settings.parse_setting(key, rows[0]["value"]) is True


@dataclass(frozen=True, kw_only=True)
class RetryPlan:
    """The failed requests a retry would put back in line (found under lock)."""

    requests: Sequence[dict[str, Any]]

    @property
    def count(self) -> int:
        return len(self.requests)


def retry_failed(
    conn: db.Conn,
    *,
    since: datetime | None = None,
    reason_like: str | None = None,
    force: bool = False,
    dry_run: bool = False,
    confirm: Callable[[RetryPlan], bool] = lambda plan: True,
) -> tuple[RetryPlan, int]:
    """Put failed requests back at the end of the line, in one transaction.

    Only requests whose failure can be retried: never a paid one (it is listed in
    ``refunds_due``), never one failed because supply is exhausted unless ``force``.
    ``reason_like`` is an ILIKE pattern over the failure reason. ``confirm`` sees the plan
    (its count first) before anything changes; ``dry_run`` or a refusal changes nothing.
    Returns the plan and how many requests were requeued.
    """
    with db.transaction(conn):
        rows = db.rows(
            conn,
            "retryable_failed_requests",
            {"since": since, "reason_like": reason_like, "force": force},
        )
        plan = RetryPlan(requests=[dict(r) for r in rows])
        if dry_run or not plan.requests or not confirm(plan):
            return plan, 0
        ids: list[uuid.UUID] = [r["id"] for r in plan.requests]
        requeued = db.rows(conn, "requeue_failed_requests", {"ids": ids})
        return plan, len(requeued)
