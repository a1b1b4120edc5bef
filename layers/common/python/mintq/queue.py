"""The mint queue as users see it: enqueue a request, follow it, read the line.

Every function takes an open connection and returns plain, JSON-ready data shaped
like the seed API. No HTTP here; ``api`` adapts these to routes.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from mintq import addresses, db, errors
from mintq.config import PaymentMode
from mintq.eta import Throughput, estimate
from mintq.settings import QueueSettings

RECENT_BATCHES = 5
PAYER_PAGE_DEFAULT = 20
PAYER_PAGE_MAX = 100
#: Clients are promised their Idempotency-Key answers for this long, whatever the setting says.
IDEMPOTENCY_MIN_RETENTION_HOURS = 24.0


@dataclass(frozen=True, kw_only=True)
class Enqueued:
    queue_id: str
    queue_position: int
    payer: str
    estimated_wait_seconds: int
    payment_type: str


def enqueue(conn: db.Conn, *, payer: str, payment_type: str, idempotency_key: str | None = None) -> Enqueued:
    """Commit one pending request for ``payer`` (already validated) and place it in line.

    With an ``idempotency_key`` the same request returns its first answer again, and a
    different request under the same key is refused; the key, the row and the stored
    answer commit together, so a crash can never leave one without the others.
    """
    if idempotency_key is None:
        return _insert(conn, payer=payer, payment_type=payment_type)
    request_hash = hashlib.sha256(json.dumps([payer, payment_type]).encode()).hexdigest()
    with db.transaction(conn):
        taken = db.one(conn, "claim_idempotency_key", {"key": idempotency_key, "request_hash": request_hash})
        if taken is None:
            previous = db.one(conn, "idempotent_response", {"key": idempotency_key})
            if previous is None or previous["request_hash"] != request_hash or previous["response"] is None:
                raise errors.IdempotencyConflict(
                    "this Idempotency-Key was already used for a different request; use a new key"
                )
            return Enqueued(**previous["response"])
        queued = _insert(conn, payer=payer, payment_type=payment_type)
        db.execute(
            conn,
            "store_idempotent_response",
            {
                "key": idempotency_key,
                "queue_id": uuid.UUID(queued.queue_id),
                "status_code": 202,
                "response": Jsonb(dataclasses.asdict(queued)),
            },
        )
        return queued


def parse_idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not 1 <= len(value) <= 255 or not value.isascii() or not value.isprintable():
        raise errors.InvalidRequest("Idempotency-Key must be 1 to 255 printable ASCII characters")
    return value


def prune_idempotency_keys(conn: db.Conn, *, retention_hours: float, limit: int = 5000) -> int:
    """Delete up to ``limit`` keys older than the retention (floored at 24 h); the count deleted."""
    hours = max(retention_hours, IDEMPOTENCY_MIN_RETENTION_HOURS)
    return db.execute(conn, "prune_idempotency_keys", {"retention_seconds": hours * 3600, "limit": limit})


class IdempotencyKeyPruner:
    """Batch-worker housekeeping: prune expired idempotency keys every few minutes, in slices
    small enough that no cycle stalls, and skip entirely in between so idle cycles stay one query."""

    def __init__(
        self,
        *,
        every_seconds: float = 300,
        slice_rows: int = 5000,
        max_slices: int = 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.every_seconds = every_seconds
        self.slice_rows = slice_rows
        self.max_slices = max_slices
        self.clock = clock
        self._last: float | None = None

    def __call__(self, conn: db.Conn, settings: QueueSettings) -> int:
        now = self.clock()
        if self._last is not None and now - self._last < self.every_seconds:
            return 0
        self._last = now
        pruned = 0
        for _ in range(self.max_slices):
            deleted = prune_idempotency_keys(
                conn, retention_hours=settings.idempotency_key_retention_hours, limit=self.slice_rows
            )
            pruned += deleted
            if deleted < self.slice_rows:
                break
        return pruned


def _insert(conn: db.Conn, *, payer: str, payment_type: str) -> Enqueued:
    default_cap = QueueSettings.max_pending_per_payer
    row = db.one(
        conn,
        "enqueue_request",
        {"payer": payer, "payment_type": payment_type, "default_max_pending": default_cap},
    )
    if row is not None and row["api_closed"]:
        raise errors.ApiClosed()
    if row is None or row["id"] is None:
        limit = row["max_pending"] if row else default_cap
        raise errors.PayerLimitReached(
            f"{payer} already has {limit} pending requests; wait for them to be minted"
        )
    return _answer(row, payer=payer, payment_type=payment_type)


def insert_paid(
    conn: db.Conn,
    *,
    queue_id: uuid.UUID,
    payer: str,
    payment_id: uuid.UUID,
    payment_tx_hash: str | None,
    tx_hash_bytes32: str,
) -> Enqueued:
    """Queue a settled payment's mint inside the caller's transaction, under the queueId the
    payment reserved. No per-payer cap here: it was checked before the payer was charged,
    and a paid request is never refused."""
    row = db.one(
        conn,
        "enqueue_paid_request",
        {
            "id": queue_id,
            "payer": payer,
            "payment_type": PaymentMode.X402.value,
            "payment_id": payment_id,
            "payment_tx_hash": payment_tx_hash,
            "tx_hash_bytes32": tx_hash_bytes32,
        },
    )
    if row is None:
        raise errors.InvalidTransition(f"payment {payment_id} could not be queued")
    return _answer(row, payer=payer, payment_type=PaymentMode.X402.value)


def paid_request(conn: db.Conn, queue_id: uuid.UUID, payer: str) -> Enqueued | None:
    """The request a payment bought (a replay's answer), or None if it is not queued yet."""
    row = db.one(conn, "paid_request", {"queue_id": queue_id})
    if row is None:
        return None
    return _answer(row, payer=payer, payment_type=str(row["payment_type"]))


def _answer(row: dict[str, Any], *, payer: str, payment_type: str) -> Enqueued:
    settings = QueueSettings.from_mapping(
        {"max_batch_size": row["max_batch_size"], "batch_interval_seconds": row["batch_interval_seconds"]}
    )
    position = int(row["queue_position"] or 0)
    return Enqueued(
        queue_id=str(row["id"]),
        queue_position=position,
        payer=payer,
        estimated_wait_seconds=estimate(position, settings, Throughput.from_row(row)),
        payment_type=payment_type,
    )


def _with_payments(conn: db.Conn, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
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


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def _public(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, datetime):
            out[key] = _iso(value)
        elif isinstance(value, uuid.UUID):
            out[key] = str(value)
        else:
            out[key] = value
    return out


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _settings(conn: db.Conn) -> QueueSettings:
    return QueueSettings.from_mapping({r["key"]: r["value"] for r in db.rows(conn, "all_settings")})


def status(conn: db.Conn) -> dict[str, Any]:
    """``GET /queue/status``: statistics, the newest batches, the live settings, the measured
    throughput (``mintsPerSecond`` and ``confirmSeconds`` null without recent history) and
    ``estimatedWaitSeconds`` for a request that joins the line now."""
    stats = db.one(conn, "queue_stats") or {}
    batches = db.rows(conn, "recent_batches", {"limit": RECENT_BATCHES})
    settings = _settings(conn)
    measured = db.one(conn, "measured_throughput") or {}
    throughput = Throughput.from_row(measured)
    return {
        "stats": _public(stats),
        "recentBatches": [_public(b) for b in batches],
        "batchInterval": _number(settings.batch_interval_seconds),
        "maxBatchSize": settings.max_batch_size,
        "worker": worker_state(conn),
        "paused": settings.worker_paused,
        "apiClosed": settings.api_closed,
        # How stale these figures may be: a read replica's replay lag (0 on the primary).
        "replicaLagSeconds": round(float((db.one(conn, "replica_lag") or {}).get("seconds") or 0), 3),
        "throughput": {
            "mintsPerSecond": throughput.mints_per_second if throughput else None,
            "confirmSeconds": throughput.confirm_seconds if throughput else None,
            "mintsPerBatch": throughput.mints_per_batch if throughput else None,
            "batchPeriodSeconds": throughput.batch_period_seconds if throughput else None,
            "windowSeconds": _number(float(measured.get("window_seconds") or 300)),
        },
        "estimatedWaitSeconds": estimate(int(stats.get("pending_count") or 0) + 1, settings, throughput),
    }


def worker_state(conn: db.Conn) -> dict[str, Any]:
    """Whether the batch workers send, as their last cycles left it (one read, no chain call).

    ``{"state": "ok" | "refusing", "reason", "since", "signers": [...]}``: ``refusing`` while
    any signer's latest cycle faulted (underfunded signer, unreachable RPC, nonce conflict,
    fee ceiling, a contract that reverts every mint); ``reason`` and ``since`` are the
    earliest such refusal's, ``signers`` lists each one (code, reason, since, last_seen_at).
    """
    refusals = [_public(r) for r in db.rows(conn, "worker_refusals")]
    if not refusals:
        return {"state": "ok", "reason": None, "since": None, "signers": []}
    first = refusals[0]
    return {"state": "refusing", "reason": first["reason"], "since": first["since"], "signers": refusals}


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
    rows = _with_payments(conn, rows[:page])
    return {
        "payer": payer,
        "requests": [_public(r) for r in rows],
        "nextCursor": _encode_cursor(rows[-1]) if more else None,
    }


def parse_queue_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError) as exc:
        raise errors.InvalidQueueId(f"queueId must be a UUID, not {value[:64]!r}") from exc


def _item_wait(conn: db.Conn, row: dict[str, Any]) -> int:
    """A pending request's estimate from its live position; a processing one waits for its
    batch's receipt (one measured confirmation, else one nominal batch); others wait for nothing."""
    if row.get("status") not in ("pending", "processing"):
        return 0
    throughput = Throughput.from_row(db.one(conn, "measured_throughput"))
    settings = _settings(conn)
    if row["status"] == "processing":
        if throughput is not None:
            return math.ceil(throughput.confirm_seconds)
        return estimate(1, settings, None)
    return estimate(int(row.get("queue_position") or 1), settings, throughput)


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
        return _public(
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
    answer = _public(_with_payments(conn, [row])[0])
    answer["estimatedWaitSeconds"] = _item_wait(conn, row)
    return answer
