"""The mint queue as users see it, one module per job:

* ``new_requests`` — joining the line: ``enqueue`` (free), ``insert_paid`` (a settled payment's
  mint), ``paid_request`` (a replay's answer) and the ``Enqueued`` answer
* ``idempotency`` — Idempotency-Key: its rules, claiming it, pruning old keys
* ``summary`` — ``GET /queue/status``: counters, recent batches, settings, worker state
* ``lookups`` — ``GET /queue/payer/{address}`` and ``GET /queue/item/{queueId}``
* ``rows`` — rows shaped for JSON answers

Every function takes an open connection and returns plain, JSON-ready data shaped like the
seed API. No HTTP here; ``api`` adapts these to routes. The names callers use are importable
from ``mintq.queue`` itself.
"""

from __future__ import annotations

from mintq.queue.idempotency import (
    IDEMPOTENCY_MIN_RETENTION_HOURS,
    IdempotencyKeyPruner,
    parse_idempotency_key,
    prune_idempotency_keys,
)
from mintq.queue.lookups import PAYER_PAGE_DEFAULT, PAYER_PAGE_MAX, item, parse_queue_id, payer_requests
from mintq.queue.new_requests import Enqueued, enqueue, insert_paid, paid_request
from mintq.queue.summary import RECENT_BATCHES, status, worker_state

__all__ = [
    "IDEMPOTENCY_MIN_RETENTION_HOURS",
    "PAYER_PAGE_DEFAULT",
    "PAYER_PAGE_MAX",
    "RECENT_BATCHES",
    "Enqueued",
    "IdempotencyKeyPruner",
    "enqueue",
    "insert_paid",
    "item",
    "paid_request",
    "parse_idempotency_key",
    "parse_queue_id",
    "payer_requests",
    "prune_idempotency_keys",
    "status",
    "worker_state",
]
