"""Drain: N queued requests, the real batch worker(s), a real anvil (30M gas, 1-s blocks, or a
Base-sized chain: 150M gas, 2-s blocks; 2^24 gas per transaction either way).

Requests are inserted by SQL (distinct, pseudo-random, non-zero addresses, so calldata
and storage costs are those of real fresh recipients), then ``Worker.run`` drains them
in-process, one thread and one connection per signer. Throughput is measured on chain
time (block timestamps of the blocks that carried our batches) and set against what the
same blocks could hold at the measured gas per mint.
"""

from __future__ import annotations

import dataclasses
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import Databases, log, progress, set_settings
from devstack import anvil, contracts
from devstack.signers import grant_minters
from mintq import chain as chainlib
from mintq import db
from mintq import signer as signerlib
from mintq.settings import QueueSettings
from mintq.worker.loop import Worker
from mintq.worker.telemetry import RunSummary

BLOCK_GAS_LIMIT = 30_000_000
BLOCK_TIME_S = 1
SAMPLE_EVERY_S = 0.5


@dataclasses.dataclass(frozen=True)
class DrainOptions:
    requests: int
    signers: int
    timeout_s: float
    max_batch_size: int
    batch_gas_target: int
    max_inflight_batches: int
    poll_seconds: float
    chart_path: Path
    block_gas_limit: int = BLOCK_GAS_LIMIT
    block_time_s: int = BLOCK_TIME_S
    label: str = "30M gas, 1-s blocks"


def throughput_settings(opts: DrainOptions) -> dict[str, object]:
    """The settings the drain asks for; only keys this version of mintq knows are set."""
    wanted: dict[str, object] = {
        "batch_interval_seconds": 1,
        "max_batch_size": opts.max_batch_size,
        "batch_gas_target": opts.batch_gas_target,
        "max_inflight_batches": opts.max_inflight_batches,
        "receipt_wait_seconds": 30,
    }
    known = {f.name for f in dataclasses.fields(QueueSettings)}
    return {k: v for k, v in wanted.items() if k in known}


def insert_requests(url: str, n: int) -> None:
    """N pending requests in one statement; each payer is sha256(tag || i) cut to 20 bytes."""
    with db.connect(url) as conn:
        conn.execute(
            "INSERT INTO mint_queue (payer_address, payment_type)"
            " SELECT '0x' || left(encode(sha256(convert_to('mintq-bench-drain-' || g, 'UTF8')), 'hex'), 40),"
            "        'free'"
            "   FROM generate_series(1, %(n)s::bigint) g",
            {"n": n},
        )
        row = conn.execute(
            "SELECT count(*) AS n, count(DISTINCT payer_address) AS distinct_payers,"
            "       count(*) FILTER (WHERE payer_address = '0x' || repeat('0', 40)) AS zero"
            "  FROM mint_queue"
        ).fetchone()
        assert row and row["n"] == n and row["distinct_payers"] == n and row["zero"] == 0, row
        conn.execute("VACUUM ANALYZE")


class StoppableClock:
    """``time.monotonic`` that jumps a day ahead once stopped, so ``Worker.run`` ends its loop
    at the next check against its deadline without any change to mintq."""

    def __init__(self) -> None:
        self.stopped = threading.Event()

    def __call__(self) -> float:
        return time.monotonic() + (86_400.0 if self.stopped.is_set() else 0.0)


def _stats(conn: Any) -> dict[str, int]:
    row = conn.execute(
        "SELECT pending_count, processing_count, completed_count, failed_count FROM queue_stats"
    ).fetchone()
    return {k.removesuffix("_count"): int(v) for k, v in row.items()}


def run(dbs: Databases, opts: DrainOptions) -> dict[str, Any]:
    node = anvil.start_anvil(
        block_time=opts.block_time_s, gas_limit=opts.block_gas_limit, accounts=max(10, opts.signers + 1)
    )
    try:
        return _run(dbs, opts, node)
    finally:
        anvil.stop_quietly(node)


def _run(dbs: Databases, opts: DrainOptions, node: anvil.Anvil) -> dict[str, Any]:
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(node.rpc_url, request_kwargs={"timeout": 30}))
    admin_key = anvil.dev_private_key(0)
    keys = [anvil.dev_private_key(i + 1) for i in range(opts.signers)]
    signers = [signerlib.LocalSigner(k) for k in keys]
    token = contracts.deploy_mint_token(
        w3, admin_key, minter=signers[0].address, max_mints=opts.requests + 10_000
    )
    grant_minters(w3, token, admin_key, keys)  # the first has it from the deployment

    url = dbs.create("drain")
    try:
        settings = set_settings(url, throughput_settings(opts))
        bar = progress(None, "drain: inserting requests", "req")
        insert_requests(url, opts.requests)
        bar.close()

        clock = StoppableClock()
        workers = [
            Worker(
                db.connect(url, application_name=f"mintq-bench-signer-{i}"),
                chainlib.Chain(node.rpc_url, token, timeout=30),
                s,
                chain_id=anvil.DEV_CHAIN_ID,
                poll_seconds=opts.poll_seconds,
                min_cycle_seconds=0.5,
                clock=clock,
            )
            for i, s in enumerate(signers)
        ]
        summaries: list[RunSummary | None] = [None] * len(workers)
        errors: list[str] = []
        start_wall = time.time()
        start = time.monotonic()
        deadline = start + opts.timeout_s

        def work(i: int) -> None:
            try:
                summaries[i] = workers[i].run(deadline)
            except Exception as exc:  # reported with the partial figures
                errors.append(f"signer {i}: {type(exc).__name__}: {exc}")
                clock.stopped.set()

        start_block = int(w3.eth.block_number)
        threads = [
            threading.Thread(target=work, args=(i,), name=f"bench-signer-{i}") for i in range(len(workers))
        ]
        for t in threads:
            t.start()

        samples: list[dict[str, float]] = []
        timed_out = False
        bar = progress(opts.requests, f"drain: {opts.signers} signer(s)", "mint")
        with db.connect(url, application_name="mintq-bench-sampler") as sampler:
            while True:
                stats = _stats(sampler)
                samples.append({"t": round(time.monotonic() - start, 2), **stats})
                bar.n = stats["completed"]
                bar.set_postfix(pending=stats["pending"], in_flight=stats["processing"], refresh=False)
                bar.refresh()
                done = stats["completed"] + stats["failed"]
                if done >= opts.requests and stats["pending"] == 0 and stats["processing"] == 0:
                    break
                if clock.stopped.is_set() or not any(t.is_alive() for t in threads):
                    break
                if time.monotonic() >= deadline:
                    timed_out = True
                    break
                time.sleep(SAMPLE_EVERY_S)
            clock.stopped.set()
            for t in threads:
                t.join(timeout=120)
            samples.append({"t": round(time.monotonic() - start, 2), **_stats(sampler)})
        bar.close()
        for w in workers:
            w.conn.close()
        if any(t.is_alive() for t in threads):
            errors.append("a worker thread did not stop within 120 s of the end of the drain")

        result = _figures(url, w3, start_block, start_wall, opts.block_time_s)
        result.update(
            {
                "requests": opts.requests,
                "signers": opts.signers,
                "settings": settings,
                "worker": {"poll_seconds": opts.poll_seconds, "min_cycle_seconds": 0.5},
                "scenario": opts.label,
                "block_gas_limit": opts.block_gas_limit,
                "block_time_s": opts.block_time_s,
                "timeout_s": opts.timeout_s,
                "timed_out": timed_out,
                "partial": timed_out or bool(errors) or result["mints"] < opts.requests,
                "errors": errors,
                "wall_seconds": round(time.monotonic() - start, 1),
                "run_summaries": [s.as_dict() for s in summaries if s is not None],
                "samples": samples,
            }
        )
        result["chart"] = _chart(samples, opts, result)
        return result
    finally:
        dbs.drop(url)


def _figures(url: str, w3: Any, start_block: int, start_wall: float, block_time_s: int) -> dict[str, Any]:
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


def _chart(samples: list[dict[str, float]], opts: DrainOptions, result: dict[str, Any]) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed: no drain chart (pip install -r bench/requirements.txt)")
        return None
    t = [s["t"] for s in samples]
    depth = [s["pending"] + s["processing"] for s in samples]
    done = [s["completed"] for s in samples]
    fig, ax = plt.subplots(figsize=(9, 4.8), dpi=120)
    ax.plot(t, depth, label="queue depth (pending + in flight)", color="tab:orange", drawstyle="steps-post")
    ax.plot(t, done, label="cumulative confirmed mints", color="tab:blue", drawstyle="steps-post")
    ax.set_xlabel(f"seconds since the worker started (sampled every {SAMPLE_EVERY_S} s)")
    ax.set_ylabel("requests")
    rate = result.get("mints_per_minute")
    ratio = result.get("capacity_ratio")
    title = f"mintq drain ({opts.label}): {opts.requests:,} requests, {opts.signers} signer(s)"
    if rate is not None and ratio is not None:
        title += f" - {rate:,} mints/min, {ratio:.0%} of chain capacity"
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="center right")
    fig.tight_layout()
    opts.chart_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(opts.chart_path)
    plt.close(fig)
    return str(opts.chart_path)
