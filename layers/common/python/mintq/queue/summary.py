"""The line at a glance (``GET /queue/status``): counters, the newest batches, the live settings,
the measured throughput and whether the batch workers send."""

from __future__ import annotations

from typing import Any

from mintq import db
from mintq.eta import Throughput, estimate
from mintq.queue.rows import number, public, settings

RECENT_BATCHES = 5


def status(conn: db.Conn) -> dict[str, Any]:
    """``GET /queue/status``: statistics, the newest batches, the live settings, the measured
    throughput (``mintsPerSecond`` and ``confirmSeconds`` null without recent history) and
    ``estimatedWaitSeconds`` for a request that joins the line now."""
    stats = db.one(conn, "queue_stats") or {}
    batches = db.rows(conn, "recent_batches", {"limit": RECENT_BATCHES})
    live = settings(conn)
    measured = db.one(conn, "measured_throughput") or {}
    throughput = Throughput.from_row(measured)
    return {
        "stats": public(stats),
        "recentBatches": [public(b) for b in batches],
        "batchInterval": number(live.batch_interval_seconds),
        "maxBatchSize": live.max_batch_size,
        "worker": worker_state(conn),
        "paused": live.worker_paused,
        "apiClosed": live.api_closed,
        # How stale these figures may be: a read replica's replay lag (0 on the primary).
        "replicaLagSeconds": round(float((db.one(conn, "replica_lag") or {}).get("seconds") or 0), 3),
        "throughput": {
            "mintsPerSecond": throughput.mints_per_second if throughput else None,
            "confirmSeconds": throughput.confirm_seconds if throughput else None,
            "mintsPerBatch": throughput.mints_per_batch if throughput else None,
            "batchPeriodSeconds": throughput.batch_period_seconds if throughput else None,
            "windowSeconds": number(float(measured.get("window_seconds") or 300)),
        },
        "estimatedWaitSeconds": estimate(int(stats.get("pending_count") or 0) + 1, live, throughput),
    }


def worker_state(conn: db.Conn) -> dict[str, Any]:
    """Whether the batch workers send, as their last cycles left it (one read, no chain call).

    ``{"state": "ok" | "refusing", "reason", "since", "signers": [...]}``: ``refusing`` while
    any signer's latest cycle faulted (underfunded signer, unreachable RPC, nonce conflict,
    fee ceiling, a contract that reverts every mint); ``reason`` and ``since`` are the
    earliest such refusal's, ``signers`` lists each one (code, reason, since, last_seen_at).
    """
    refusals = [public(r) for r in db.rows(conn, "worker_refusals")]
    if not refusals:
        return {"state": "ok", "reason": None, "since": None, "signers": []}
    first = refusals[0]
    return {"state": "refusing", "reason": first["reason"], "since": first["since"], "signers": refusals}
