"""Soak: many mints through a running local stack while its workers are killed at random.

    # terminal 1: the stack without its built-in worker (the soak brings its own)
    make dev   # or: .venv/bin/python -m devstack --no-worker [--port P --rpc-port R]
    # terminal 2:
    .venv/bin/python scripts/soak.py [--count 20000] [--concurrency 8] [--workers 2] \
        [--batch-interval 1 --max-batch-size 100]

Not part of CI. Reads ``.local/stack.json`` (or ``--stack``), POSTs ``--count`` requests to
``/mint`` for fresh random recipients (about one in ten gets a second request) from a small
thread pool, while a chaos loop keeps ``--workers`` processes of ``python -m devstack.worker``
alive and SIGKILLs one of them every 2-8 s (by default three times in four the one holding
the signer's lock, found through pg_locks, so kills land mid-batch), starting a replacement. When
every request is in, it keeps the chaos going until the queue has drained (nothing pending,
processing or in flight), then checks every recipient's on-chain balance against the
database and prints one JSON report:

    submitted, accepted, rejected (by HTTP status), completed, failed,
    doubles   recipients whose balance exceeds amountPerMint x their completed requests,
              plus mint_history rows beyond one per request,
    unminted  recipients whose balance is below it (completed but not minted),
    lost      accepted requests neither completed nor failed,
    elapsed, kills, ...

It exits 1 if anything was lost, doubled or unminted. Only 127.0.0.1 is ever contacted, and
everything is bounded: ``--count``, ``--max-seconds`` overall. ``--batch-interval`` and
``--max-batch-size`` (and ``--max-inflight``) change ``system_settings`` for the run and put the
old values back.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import eth_abi as abi
import psycopg
from eth_utils import function_signature_to_4byte_selector
from psycopg.rows import dict_row

from mintq import rpc

REPO_ROOT = Path(__file__).resolve().parents[1]
STACK_FILE = REPO_ROOT / ".local" / "stack.json"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", None, ""}


def _local_only(url: str) -> str:
    host = urlsplit(url).hostname if "://" in url else "127.0.0.1"
    if host not in LOCAL_HOSTS:
        raise SystemExit(f"refusing to soak a non-local endpoint: {url}")
    return url


def http(method: str, url: str, body: object | None = None, *, timeout: float = 30) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raw = exc.read() or b"{}"
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, {"raw": raw.decode(errors="replace")}


def rpc_batch(rpc_url: str, calls: list[tuple[str, list[Any]]]) -> list[Any]:
    """mintq's own batched JSON-RPC round trip, with the soak's patience."""
    return rpc.call_batch(rpc_url, calls, timeout=60)


def _call_data(signature: str, *args: Any) -> str:
    """ABI-encoded call data for a view function: its selector, then its arguments (eth-abi)."""
    types = signature[signature.index("(") + 1 : -1]
    encoded = abi.encode([t for t in types.split(",") if t], list(args))
    return "0x" + (function_signature_to_4byte_selector(signature) + encoded).hex()


def view(rpc_url: str, token: str, signature: str) -> int:
    """A uint256 view of ``token`` without arguments, e.g. ``totalSupply()``."""
    (result,) = rpc_batch(rpc_url, [("eth_call", [{"to": token, "data": _call_data(signature)}, "latest"])])
    return int(result, 16)


def balances(rpc_url: str, token: str, holders: list[str], chunk: int = 250) -> dict[str, int]:
    """``balanceOf`` each holder, ``chunk`` calls per JSON-RPC batch."""
    found: dict[str, int] = {}
    for i in range(0, len(holders), chunk):
        part = holders[i : i + chunk]
        calls = [
            ("eth_call", [{"to": token, "data": _call_data("balanceOf(address)", h)}, "latest"]) for h in part
        ]
        for holder, result in zip(part, rpc_batch(rpc_url, calls), strict=True):
            found[holder] = int(result, 16)
    return found


def fresh_address() -> str:
    from eth_utils.address import to_checksum_address

    return str(to_checksum_address("0x" + os.urandom(20).hex()))


class Chaos:
    """Keeps ``n`` worker processes alive and SIGKILLs one at random every 2-8 s."""

    def __init__(
        self,
        n: int,
        stack_path: Path,
        log_dir: Path,
        kill_min: float,
        kill_max: float,
        *,
        database_url: str,
        holder_share: float,
    ) -> None:
        self.n = n
        self.database_url = database_url
        self.holder_share = holder_share
        self.holder_kills = 0
        self.stack_path = stack_path
        self.log_dir = log_dir
        self.kill_min, self.kill_max = kill_min, kill_max
        self.procs: list[subprocess.Popen[bytes]] = []
        self.kills = 0
        self.started = 0
        self.crashed = 0  # exits we did not cause
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="chaos", daemon=True)

    def _spawn(self) -> None:
        self.started += 1
        log = (self.log_dir / f"worker-{self.started}.log").open("wb")
        with log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "devstack.worker",
                    "--stack",
                    str(self.stack_path),
                    "--idle-pause",
                    "1",
                ],
                cwd=REPO_ROOT,
                env={
                    **os.environ,
                    "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "layers/common/python"), str(REPO_ROOT)]),
                },
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.procs.append(proc)

    def _reap(self) -> None:
        for proc in list(self.procs):
            if proc.poll() is not None:
                self.procs.remove(proc)
                self.crashed += 1
        while len(self.procs) < self.n:
            self._spawn()

    def _loop(self) -> None:
        self._reap()
        while not self._stop.wait(random.uniform(self.kill_min, self.kill_max)):
            self._reap()
            victim = None
            if random.random() < self.holder_share:
                victim = self._lock_holder()
                self.holder_kills += victim is not None
            victim = victim or random.choice(self.procs)
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            self.procs.remove(victim)
            self.kills += 1
            self._reap()

    def _lock_holder(self) -> subprocess.Popen[bytes] | None:
        """The worker process whose PostgreSQL session holds an advisory lock (the busy one)."""
        try:
            import psutil

            with psycopg.connect(self.database_url, autocommit=True, connect_timeout=5) as conn:
                ports = {
                    r[0]
                    for r in conn.execute(
                        "SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                        " WHERE l.locktype = 'advisory' AND l.granted AND a.client_port IS NOT NULL"
                    )
                }
            for proc in self.procs:
                local = {
                    c.laddr.port for c in psutil.Process(proc.pid).net_connections(kind="tcp") if c.laddr
                }
                if local & ports:
                    return proc
        except Exception:
            return None
        return None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def ensure_running(self) -> None:
        self._reap()

    def terminate_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait()
        self.procs.clear()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/soak.py", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000, help="requests to submit")
    parser.add_argument("--concurrency", type=int, default=8, help="submitting threads (bounded pool)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes kept alive")
    parser.add_argument("--kill-min", type=float, default=2.0)
    parser.add_argument("--kill-max", type=float, default=8.0)
    parser.add_argument(
        "--holder-share", type=float, default=0.75, help="share of kills aimed at the lock holder"
    )
    parser.add_argument("--repeat-share", type=float, default=0.1, help="share of recipients asked twice")
    parser.add_argument("--max-seconds", type=float, default=4 * 3600, help="give up after this long")
    parser.add_argument("--batch-interval", type=float, default=None, help="set batch_interval_seconds")
    parser.add_argument("--max-batch-size", type=int, default=None, help="set max_batch_size")
    parser.add_argument(
        "--max-inflight",
        type=int,
        default=None,
        help="set max_inflight_batches (above 1: the pipelined worker, several batches in flight per kill)",
    )
    parser.add_argument("--stack", type=Path, default=STACK_FILE)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    if args.count < 1 or args.concurrency < 1 or args.workers < 1 or args.kill_min > args.kill_max:
        parser.error("count, concurrency and workers must be positive and kill-min <= kill-max")
    random.seed(args.seed)

    stack = json.loads(args.stack.read_text())
    api = _local_only(str(stack["api_url"]).rstrip("/"))
    rpc_url = _local_only(str(stack["rpc_url"]))
    database_url = _local_only(str(stack["database_url"]))
    token = str(stack["token_address"])
    status, _ = http("GET", f"{api}/queue/status", timeout=5)
    if status != 200:
        raise SystemExit(f"the API at {api} does not answer /queue/status ({status}); start the stack")
    amount = view(rpc_url, token, "amountPerMint()")
    supply_before = view(rpc_url, token, "totalSupply()")

    # The recipients: fresh random addresses, a share of them asked for twice.
    payers: list[str] = []
    while len(payers) < args.count:
        address = fresh_address()
        payers.append(address)
        if len(payers) < args.count and random.random() < args.repeat_share:
            payers.append(address)
    random.shuffle(payers)

    db = psycopg.connect(database_url, autocommit=True, row_factory=dict_row)
    previous_settings = {
        r["key"]: r["value"] for r in db.execute("SELECT key, value FROM system_settings").fetchall()
    }
    overrides = {
        k: v
        for k, v in (
            ("batch_interval_seconds", args.batch_interval),
            ("max_batch_size", args.max_batch_size),
            ("max_inflight_batches", args.max_inflight),
        )
        if v is not None
    }
    for key, value in overrides.items():
        db.execute(
            "INSERT INTO system_settings (key, value) VALUES (%s, %s)"
            " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            (key, str(value)),
        )
    batches_before = db.execute("SELECT now() AS t").fetchone()["t"]

    log_dir = Path(tempfile.mkdtemp(prefix="mintq-soak-"))
    chaos = Chaos(
        args.workers,
        args.stack.resolve(),
        log_dir,
        args.kill_min,
        args.kill_max,
        database_url=database_url,
        holder_share=args.holder_share,
    )
    started = time.monotonic()
    hard_deadline = started + args.max_seconds
    accepted: dict[str, str] = {}  # queueId -> payer
    rejected: Counter[str] = Counter()
    lock = threading.Lock()

    def submit(payer: str) -> None:
        if time.monotonic() > hard_deadline:
            with lock:
                rejected["not_sent_deadline"] += 1
            return
        try:
            code, body = http("POST", f"{api}/mint", {"payer": payer})
        except OSError as exc:
            with lock:
                rejected[f"error:{type(exc).__name__}"] += 1
            return
        with lock:
            if code == 202 and body.get("queueId"):
                accepted[str(body["queueId"])] = payer
            else:
                rejected[str(code)] += 1

    chaos.start()
    report: dict[str, Any] = {}
    try:
        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            list(pool.map(submit, payers))
        submitted_at = time.monotonic()
        ids = list(accepted)
        # Drain, chaos still on: nothing of ours pending or processing, nothing in flight.
        while time.monotonic() < hard_deadline:
            row = db.execute(
                "SELECT count(*) FILTER (WHERE status IN ('pending', 'processing')) AS open"
                " FROM mint_queue WHERE id = ANY(%s::uuid[])",
                (ids,),
            ).fetchone()
            inflight = db.execute(
                "SELECT count(*) AS n FROM batch_mints WHERE status IN ('signed', 'pending')"
            ).fetchone()["n"]
            if row["open"] == 0 and inflight == 0:
                break
            time.sleep(1)
        drained_at = time.monotonic()
        chaos.stop()
        chaos.terminate_all()

        # The verdict, from the database and the chain.
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
        recipients = sorted({p for p in accepted.values()})
        on_chain = balances(rpc_url, token, recipients)
        doubles = [p for p in recipients if on_chain[p] > amount * completed_per_payer[p.lower()]]
        unminted = [p for p in recipients if on_chain[p] < amount * completed_per_payer[p.lower()]]
        history_dupes = sum(n - 1 for n in history_rows.values() if n > 1)
        batches = db.execute(
            "SELECT status::text AS s, count(*) AS n FROM batch_mints WHERE created_at > %s GROUP BY 1",
            (batches_before,),
        ).fetchall()
        supply_after = view(rpc_url, token, "totalSupply()")
        completed = states.get("completed", 0)
        lost = len(ids) - completed - states.get("failed", 0)
        report = {
            "submitted": len(payers),
            "accepted": len(ids),
            "rejected": dict(rejected),
            "completed": completed,
            "failed": states.get("failed", 0),
            "doubles": len(doubles) + history_dupes,
            "double_recipients": doubles[:20],
            "history_duplicates": history_dupes,
            "completed_and_failed": both,
            "unminted": len(unminted),
            "lost": lost,
            "lost_by_state": {k: v for k, v in states.items() if k not in ("completed", "failed")},
            "recipients": len(recipients),
            "supply_delta": (supply_after - supply_before) // amount if amount else None,
            "batches": {r["s"]: r["n"] for r in batches},
            "kills": chaos.kills,
            "lock_holder_kills": chaos.holder_kills,
            "workers_started": chaos.started,
            "worker_exits_not_ours": chaos.crashed,
            "submit_seconds": round(submitted_at - started, 1),
            "drain_seconds": round(drained_at - submitted_at, 1),
            "elapsed": round(time.monotonic() - started, 1),
            "timed_out": drained_at >= hard_deadline,
            "worker_logs": str(log_dir),
        }
    finally:
        with contextlib.suppress(Exception):
            chaos.stop()
        chaos.terminate_all()
        for key in overrides:
            if key in previous_settings:
                db.execute(
                    "UPDATE system_settings SET value = %s WHERE key = %s", (previous_settings[key], key)
                )
            else:
                db.execute("DELETE FROM system_settings WHERE key = %s", (key,))
        db.close()
    print(json.dumps(report, indent=2))
    bad = report["lost"] or report["doubles"] or report["unminted"] or report["completed_and_failed"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
