"""The soak's final audit: every accepted request's state in the database set against every
recipient's balance on chain, once the queue has drained."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import psycopg
from soak_stack import Stack, balances, view


def audit(
    db: psycopg.Connection[Any],
    stack: Stack,
    accepted: dict[str, str],
    *,
    amount: int,
    supply_before: int,
    batches_since: dt.datetime,
) -> dict[str, Any]:
    """The verdict on the ``accepted`` requests (queue id -> payer): their states, doubles (a
    balance above ``amount`` x the payer's completed requests, plus mint_history rows beyond one per
    request), unminted recipients (a balance below it), lost requests (neither completed nor
    failed), the supply minted since ``supply_before`` and the batches since ``batches_since``."""
    ids = list(accepted)
    queue_rows = db.execute(
        "SELECT id::text, payer_address, status::text FROM mint_queue WHERE id = ANY(%s::uuid[])", (ids,)
    ).fetchall()
    history = db.execute(
        "SELECT queue_id::text AS id, count(*) AS n FROM mint_history WHERE queue_id = ANY(%s::uuid[])"
        " GROUP BY 1",
        (ids,),
    ).fetchall()
    history_rows = {r["id"]: r["n"] for r in history}
    status_of = {r["id"]: r["status"] for r in queue_rows}
    for queue_id in history_rows:
        status_of.setdefault(queue_id, "completed")  # archived: the queue row was cleaned up
    completed_per_payer: Counter[str] = Counter()
    both = 0
    for queue_id, payer in accepted.items():
        state = status_of.get(queue_id)
        if state == "completed":
            completed_per_payer[payer.lower()] += 1
        elif state == "failed" and queue_id in history_rows:
            both += 1
    states = Counter(status_of.get(i, "missing") for i in ids)
    recipients = sorted(set(accepted.values()))
    on_chain = balances(stack.rpc_url, stack.token, recipients)
    doubles = [p for p in recipients if on_chain[p] > amount * completed_per_payer[p.lower()]]
    unminted = [p for p in recipients if on_chain[p] < amount * completed_per_payer[p.lower()]]
    history_dupes = sum(n - 1 for n in history_rows.values() if n > 1)
    batches = db.execute(
        "SELECT status::text AS s, count(*) AS n FROM batch_mints WHERE created_at > %s GROUP BY 1",
        (batches_since,),
    ).fetchall()
    supply_after = view(stack.rpc_url, stack.token, "totalSupply()")
    completed = states.get("completed", 0)
    return {
        "completed": completed,
        "failed": states.get("failed", 0),
        "doubles": len(doubles) + history_dupes,
        "double_recipients": doubles[:20],
        "history_duplicates": history_dupes,
        "completed_and_failed": both,
        "unminted": len(unminted),
        "lost": len(ids) - completed - states.get("failed", 0),
        "lost_by_state": {k: v for k, v in states.items() if k not in ("completed", "failed")},
        "recipients": len(recipients),
        "supply_delta": (supply_after - supply_before) // amount if amount else None,
        "batches": {r["s"]: r["n"] for r in batches},
    }
