"""Following requests: one payer's requests a page at a time (``GET /queue/payer/{address}``)
and one request by its queueId (``GET /queue/item/{queueId}``), on a read replica when there
is one, with the primary to look again for what the replica has not replayed yet."""

from __future__ import annotations

import base64
import binascii
import math
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from mintq import addresses, db, errors
from mintq.config import PaymentMode
from mintq.eta import Throughput, estimate
from mintq.queue.rows import public, settings, with_payments

PAYER_PAGE_DEFAULT = 20
PAYER_PAGE_MAX = 100


def payer_requests(
    conn: db.Conn,
    address: str,
    *,
    limit: int | None = None,
    cursor: str | None = None,
    primary: Callable[[], db.Conn] | None = None,
) -> dict[str, Any]:
    """``GET /queue/payer/{address}``: the payer's requests, newest first, one page at a time.

    A page that comes back empty from a read replica (``conn``) is read again on ``primary()``.
    """
    page = _payer_page(conn, address, limit=limit, cursor=cursor)
    if not page["requests"] and primary is not None:
        page = _payer_page(primary(), address, limit=limit, cursor=cursor)
    return page


def _payer_page(conn: db.Conn, address: str, *, limit: int | None, cursor: str | None) -> dict[str, Any]:
    payer = addresses.parse(address)
    page = PAYER_PAGE_DEFAULT if limit is None else limit
    if not 1 <= page <= PAYER_PAGE_MAX:
        raise errors.InvalidRequest(f"limit must be between 1 and {PAYER_PAGE_MAX}")
    before_created_at, before_id = _decode_cursor(cursor) if cursor else (None, None)
    rows = db.rows(
        conn,
        "payer_requests",
        {"payer": payer, "limit": page + 1, "before_created_at": before_created_at, "before_id": before_id},
    )
    more = len(rows) > page
    rows = with_payments(conn, rows[:page])
    return {
        "payer": payer,
        "requests": [public(r) for r in rows],
        "nextCursor": _encode_cursor(rows[-1]) if more else None,
    }


def _encode_cursor(row: dict[str, Any]) -> str:
    raw = f"{row['created_at'].isoformat()}|{row['id']}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, ident = raw.split("|", 1)
        return datetime.fromisoformat(created), uuid.UUID(ident)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise errors.InvalidRequest("cursor is not one this API returned") from exc


def parse_queue_id(value: str) -> uuid.UUID:
    """The queueId as a UUID; raises ``errors.InvalidQueueId`` otherwise."""
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError) as exc:
        raise errors.InvalidQueueId(f"queueId must be a UUID, not {value[:64]!r}") from exc


def item(conn: db.Conn, queue_id: str, *, primary: Callable[[], db.Conn] | None = None) -> dict[str, Any]:
    """``GET /queue/item/{queueId}``: one request's public state, with ``estimatedWaitSeconds``
    (0 once it is final).

    ``conn`` may be a read replica's: what it does not have yet (a request enqueued a moment
    ago) is looked up again on ``primary()``, so a request just accepted is never a 404.
    Raises ``errors.InvalidQueueId`` or ``errors.NotFound``.
    """
    ident = parse_queue_id(queue_id)
    try:
        return _item(conn, ident)
    except errors.NotFound:
        if primary is None:
            raise
        return _item(primary(), ident)


def _item(conn: db.Conn, ident: uuid.UUID) -> dict[str, Any]:
    row = db.one(conn, "queue_item", {"id": ident}) or db.one(conn, "archived_item", {"id": ident})
    if row is None:
        # A payment still settling has reserved its queueId before its request exists.
        payment = db.one(conn, "payment_by_queue_id", {"queue_id": ident})
        if payment is None:
            raise errors.NotFound(f"no request with queueId {ident}")
        failed = payment["payment_status"] == "failed"
        reason = payment["error_reason"] or "unexpected_settle_error"
        return public(
            {
                "id": payment["queue_id"],
                "payer_address": payment["payer_address"],
                "status": "failed" if failed else "awaiting_payment",
                "created_at": payment["created_at"],
                "updated_at": payment["updated_at"],
                "payment_type": PaymentMode.X402.value,
                "payment_status": payment["payment_status"],
                "settlement_tx_hash": payment["settlement_tx_hash"],
                # A final state says why: a payment fails only when it was never charged.
                "error_message": f"the payment was never settled ({reason}); you were not charged"
                if failed
                else None,
                "payment_error_reason": reason if failed else None,
            }
        )
    answer = public(with_payments(conn, [row])[0])
    answer["estimatedWaitSeconds"] = _item_wait(conn, row)
    return answer


def _item_wait(conn: db.Conn, row: dict[str, Any]) -> int:
    """A pending request's estimate from its live position; a processing one waits for its
    batch's receipt (one measured confirmation, else one nominal batch); others wait for nothing."""
    if row.get("status") not in ("pending", "processing"):
        return 0
    throughput = Throughput.from_row(db.one(conn, "measured_throughput"))
    live = settings(conn)
    if row["status"] == "processing":
        if throughput is not None:
            return math.ceil(throughput.confirm_seconds)
        return estimate(1, live, None)
    return estimate(int(row.get("queue_position") or 1), live, throughput)
