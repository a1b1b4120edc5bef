"""The drain's figures, from its database and from the chain's blocks that carried its batches."""

from __future__ import annotations

import statistics
from typing import Any

from mintq import db


def figures(url: str, w3: Any, start_block: int, start_wall: float, block_time_s: int) -> dict[str, Any]:
    """The drain's figures from its database (confirmed batches, their statuses, request latency, the
    queue after) and from the blocks that carried its batches, measured on chain time: mints per
    minute against what the same blocks could hold at the measured gas per mint, fullness of the
    saturated blocks, batch sizes. Only the statuses and the queue when no batch confirmed."""
    with db.connect(url) as conn:
        batches = conn.execute(
            "SELECT block_number, gas_used, mint_count, signer_address FROM batch_mints"
            " WHERE status = 'confirmed' ORDER BY block_number"
        ).fetchall()
        statuses = {
            r["status"]: r["n"]
            for r in conn.execute("SELECT status::text, count(*) AS n FROM batch_mints GROUP BY 1").fetchall()
        }
        lat = conn.execute(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s) AS p50,"
            "       percentile_cont(0.99) WITHIN GROUP (ORDER BY s) AS p99, max(s) AS max"
            "  FROM (SELECT extract(epoch FROM processed_at - created_at)::float8 AS s"
            "          FROM mint_queue WHERE status = 'completed') x"
        ).fetchone()
        queue = conn.execute(
            "SELECT pending_count, processing_count, completed_count, failed_count FROM queue_stats"
        ).fetchone()
    out: dict[str, Any] = {"batch_statuses": statuses, "queue_after": dict(queue) if queue else {}}
    mints = sum(int(b["mint_count"]) for b in batches)
    out["mints"] = mints
    if not batches:
        return out
    gas = sum(int(b["gas_used"]) for b in batches)
    gas_per_mint = gas / mints
    first, last = int(batches[0]["block_number"]), int(batches[-1]["block_number"])
    blocks = [w3.eth.get_block(n) for n in range(first, last + 1)]
    t_first, t_last = int(blocks[0]["timestamp"]), int(blocks[-1]["timestamp"])
    n_blocks = len(blocks)
    # Each block stands for one block interval; the interval is measured, not assumed.
    interval = (t_last - t_first) / (n_blocks - 1) if n_blocks > 1 else float(block_time_s)
    window_s = n_blocks * interval
    blocks_per_minute = 60 / interval
    gas_limit = statistics.mean(int(b["gasLimit"]) for b in blocks)
    mints_per_minute = mints / window_s * 60
    capacity = gas_limit / gas_per_mint * blocks_per_minute
    sizes = sorted(int(b["mint_count"]) for b in batches)
    # Saturated: the blocks whose whole interval the workers ran through (the parent was sealed
    # after they started; a worker that starts moments before a block is sealed cannot fill
    # it) and that left work of ours for a later block (the last block carried whatever the
    # queue had left). Fullness is gas used against the block gas limit, the baseline.
    sealed = [int(w3.eth.get_block(first - 1)["timestamp"]), *(int(b["timestamp"]) for b in blocks)]
    saturated = [b for i, b in enumerate(blocks[:-1]) if sealed[i] >= start_wall] or blocks
    fullness = sum(int(b["gasUsed"]) for b in saturated) / sum(int(b["gasLimit"]) for b in saturated)
    per_block: dict[int, int] = {}
    for b in batches:
        per_block[int(b["block_number"])] = per_block.get(int(b["block_number"]), 0) + 1
    out.update(
        {
            "mints_per_minute": round(mints_per_minute),
            "chain_capacity_per_minute": round(capacity),
            "capacity_ratio": round(mints_per_minute / capacity, 4),
            "gas_per_mint": round(gas_per_mint, 1),
            "gas_used_total": gas,
            "batches": len(batches),
            "batch_size": {"min": sizes[0], "median": statistics.median(sizes), "max": sizes[-1]},
            "batches_per_block_max": max(per_block.values()),
            "block_fullness_saturated": round(fullness, 4),
            "saturated_blocks": [int(b["number"]) for b in saturated],
            "block_fullness_per_block": [round(int(b["gasUsed"]) / int(b["gasLimit"]), 3) for b in blocks],
            "blocks": {
                "first": first,
                "last": last,
                "count": n_blocks,
                "with_our_batches": len(per_block),
                "interval_s": round(interval, 3),
                "window_s": round(window_s, 1),
                "gas_used_ratio": round(sum(int(b["gasUsed"]) for b in blocks) / (gas_limit * n_blocks), 4),
                "first_after_start": first - start_block,
                "base_fee_gwei_first_last": [
                    round(int(blocks[0].get("baseFeePerGas", 0)) / 1e9, 3),
                    round(int(blocks[-1].get("baseFeePerGas", 0)) / 1e9, 3),
                ],
            },
            "wall_mints_per_minute_from_start": round(mints / max(t_last - start_wall + interval, 1e-9) * 60),
            "latency_s": {
                "p50": round(float(lat["p50"]), 2) if lat and lat["p50"] is not None else None,
                "p99": round(float(lat["p99"]), 2) if lat and lat["p99"] is not None else None,
                "max": round(float(lat["max"]), 2) if lat and lat["max"] is not None else None,
            },
        }
    )
    return out
