"""The soak's workload: fresh random recipients (a share of them asked for twice) POSTed to
``/mint`` from a bounded thread pool, then the wait until the queue has drained."""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
from soak_stack import http


def fresh_address() -> str:
    from eth_utils.address import to_checksum_address

    return str(to_checksum_address("0x" + os.urandom(20).hex()))


def recipients(count: int, repeat_share: float) -> list[str]:
    """``count`` payers, shuffled: fresh random addresses, a share of them asked for twice."""
    payers: list[str] = []
    while len(payers) < count:
        address = fresh_address()
        payers.append(address)
        if len(payers) < count and random.random() < repeat_share:
            payers.append(address)
    random.shuffle(payers)
    return payers


class Submitter:
    """POSTs ``/mint`` for each payer; records the accepted ones (queue id -> payer) and counts the
    others by HTTP status (or error, or not sent once ``hard_deadline`` has passed)."""

    def __init__(self, api: str, hard_deadline: float) -> None:
        self.api = api
        self.hard_deadline = hard_deadline
        self.accepted: dict[str, str] = {}  # queueId -> payer
        self.rejected: Counter[str] = Counter()
        self._lock = threading.Lock()

    def submit(self, payer: str) -> None:
        if time.monotonic() > self.hard_deadline:
            with self._lock:
                self.rejected["not_sent_deadline"] += 1
            return
        try:
            code, body = http("POST", f"{self.api}/mint", {"payer": payer})
        except OSError as exc:
            with self._lock:
                self.rejected[f"error:{type(exc).__name__}"] += 1
            return
        with self._lock:
            if code == 202 and body.get("queueId"):
                self.accepted[str(body["queueId"])] = payer
            else:
                self.rejected[str(code)] += 1

    def run(self, payers: list[str], concurrency: int) -> None:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            list(pool.map(self.submit, payers))


def wait_until_drained(db: psycopg.Connection[Any], ids: list[str], hard_deadline: float) -> None:
    """Until none of ``ids`` is pending or processing and no batch is in flight, or the deadline."""
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
