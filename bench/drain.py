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
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import Databases, progress, set_settings
from bench.drain_chart import chart
from bench.drain_figures import figures
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

        result = figures(url, w3, start_block, start_wall, opts.block_time_s)
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
        result["chart"] = chart(
            samples, title=_title(opts, result), path=opts.chart_path, sample_every_s=SAMPLE_EVERY_S
        )
        return result
    finally:
        dbs.drop(url)


def _title(opts: DrainOptions, result: dict[str, Any]) -> str:
    """The chart's title: the scenario and its size, and the rate reached when one was measured."""
    rate = result.get("mints_per_minute")
    ratio = result.get("capacity_ratio")
    title = f"mintq drain ({opts.label}): {opts.requests:,} requests, {opts.signers} signer(s)"
    if rate is not None and ratio is not None:
        title += f" - {rate:,} mints/min, {ratio:.0%} of chain capacity"
    return title
