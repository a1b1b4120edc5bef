"""Rows as the status answers show them: timestamps in ISO 8601 (``Z``), UUIDs as text, whole
numbers as integers, a paid request with its payment's status (never its signature)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from mintq import db
from mintq.settings import QueueSettings


def public(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` ready for JSON: datetimes as ISO 8601 with ``Z``, UUIDs as strings."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, datetime):
            out[key] = iso(value)
        elif isinstance(value, uuid.UUID):
            out[key] = str(value)
        else:
            out[key] = value
    return out


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def number(value: float) -> float | int:
    """``10.0`` as ``10``; other floats as they are."""
    return int(value) if float(value).is_integer() else value


def with_payments(conn: db.Conn, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add each paid request's payment status and settlement transaction (never its signature)."""
    if not rows:
        return rows
    found = db.rows(conn, "payments_for_queue_ids", {"ids": [r["id"] for r in rows]})
    by_id = {p["queue_id"]: p for p in found}
    for row in rows:
        payment = by_id.get(row["id"])
        if payment is not None:
            row["payment_status"] = payment["payment_status"]
            row["settlement_tx_hash"] = payment["settlement_tx_hash"]
            # Paid and not minted, for good: the operator owes this payer a refund.
            row["refund_due"] = row["status"] == "failed" and payment["payment_status"] == "settled"
    return rows


def settings(conn: db.Conn) -> QueueSettings:
    """The live runtime settings (every row of ``system_settings``)."""
    return QueueSettings.from_mapping({r["key"]: r["value"] for r in db.rows(conn, "all_settings")})
