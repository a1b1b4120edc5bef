"""The database states the API handlers are measured at: random payers, pending and history
rows by the hundred thousand, the status benchmark's payer, the queue's counts, and the per-payer
cap lifted so that no benchmark request is refused."""

from __future__ import annotations

import os
from typing import Any

from bench.common import progress, set_settings
from mintq import addresses, db

PREFILL_CHUNK = 250_000
#: Pending requests per payer in the prefill (the default per-payer cap is 10).
PREFILL_ROWS_PER_PAYER = 5
#: The payer the status benchmark asks for: 10 pending and 20 completed requests.
STATUS_PAYER_PENDING = 10
STATUS_PAYER_COMPLETED = 20


def random_payers(n: int) -> list[str]:
    """Distinct, valid, non-zero lower-case addresses (the handler checksums them)."""
    seen: set[str] = set()
    while len(seen) < n:
        seen.add("0x" + os.urandom(20).hex())
    return list(seen)


def prefill_pending(url: str, rows: int) -> None:
    """``rows`` pending requests from ``rows / 5`` payers, in a few INSERT … SELECT statements."""
    prefill_rows(
        url,
        rows,
        "prefill: pending rows",
        "INSERT INTO mint_queue (payer_address, payment_type, enqueue_position)"
        " SELECT '0x' || left(encode(sha256(convert_to('payer-' || (g %% %(p)s), 'UTF8')), 'hex'), 40),"
        "        'free', g"
        "   FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) g",
        {"p": max(1, rows // PREFILL_ROWS_PER_PAYER)},
    )


def prefill_history(url: str, rows: int) -> None:
    """``rows`` completed requests in mint_history (500 per batch transaction, 1M payers)."""
    prefill_rows(
        url,
        rows,
        "prefill: history rows",
        "INSERT INTO mint_history (queue_id, payer_address, mint_tx_hash, amount, block_number,"
        "                          payment_type, created_at, completed_at)"
        " SELECT gen_random_uuid(),"
        "        '0x' || left(encode(sha256(convert_to('hpayer-' || (g %% 1000000), 'UTF8')), 'hex'), 40),"
        "        '0x' || encode(sha256(convert_to('tx-' || (g / 500), 'UTF8')), 'hex'),"
        "        '1000000000000000000000', g / 500, 'free',"
        "        now() - make_interval(secs => (%(n)s - g) + 30),"
        "        now() - make_interval(secs => (%(n)s - g))"
        "   FROM generate_series(%(lo)s::bigint, %(hi)s::bigint) g",
        {"n": rows},
    )


def prefill_rows(url: str, rows: int, desc: str, statement: str, params: dict[str, Any]) -> None:
    """Run ``statement`` over ``g`` in [1, rows] in chunks of PREFILL_CHUNK, then VACUUM ANALYZE."""
    if rows <= 0:
        return
    bar = progress(rows, desc, "row")
    with db.connect(url) as conn:
        for lo in range(1, rows + 1, PREFILL_CHUNK):
            hi = min(rows, lo + PREFILL_CHUNK - 1)
            conn.execute(statement, {**params, "lo": lo, "hi": hi})  # type: ignore[arg-type]
            bar.update(hi - lo + 1)
        bar.set_description("prefill: VACUUM ANALYZE")
        conn.execute("VACUUM ANALYZE")
    bar.close()


def add_status_payer(url: str) -> str:
    """One payer with 10 pending and 20 completed requests (and their history rows)."""
    payer = addresses.to_checksum(random_payers(1)[0])
    with db.connect(url) as conn, conn.transaction():
        conn.execute(
            "INSERT INTO mint_queue (payer_address, payment_type, status, created_at, processed_at,"
            "                        mint_tx_hash, enqueue_position)"
            " SELECT %(p)s, 'free', 'completed', now() - make_interval(mins => 60 + g),"
            "        now() - make_interval(mins => 59 + g), '0x' || repeat('ab', 32), g"
            "   FROM generate_series(1, %(c)s) g",
            {"p": payer, "c": STATUS_PAYER_COMPLETED},
        )
        conn.execute(
            "INSERT INTO mint_history (queue_id, payer_address, mint_tx_hash, amount, payment_type,"
            "                          created_at, completed_at)"
            " SELECT id, payer_address, mint_tx_hash, '1', payment_type, created_at, processed_at"
            "   FROM mint_queue WHERE payer_address = %(p)s AND status = 'completed'",
            {"p": payer},
        )
        for _ in range(STATUS_PAYER_PENDING):
            db.one(
                conn, "enqueue_request", {"payer": payer, "payment_type": "free", "default_max_pending": 10}
            )
    return payer


def queue_counts(url: str) -> dict[str, int]:
    with db.connect(url) as conn:
        row = conn.execute("SELECT pending_count, completed_count FROM queue_stats").fetchone()
        hist = conn.execute(
            "SELECT reltuples::bigint AS n FROM pg_class WHERE relname = 'mint_history'"
        ).fetchone()
    return {
        "pending": int(row["pending_count"]) if row else 0,
        "completed_in_queue": int(row["completed_count"]) if row else 0,
        "history_estimate": int(hist["n"]) if hist else 0,
    }


def max_out_payer_cap(url: str) -> None:
    set_settings(url, {"max_pending_per_payer": 1_000_000_000})
