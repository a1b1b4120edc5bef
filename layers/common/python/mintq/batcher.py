"""The batch worker: one signer, one advisory lock, one nonce sequence.

A run holds a PostgreSQL session advisory lock keyed by the signer, so a second run for
the same wallet exits at once. Each cycle (every ``batch_interval_seconds``, settings
re-read every time) first reconciles this signer's unfinished batches, then, with none
in flight, claims the head of the line and sends one ``batchMint`` transaction.

Ordering is the whole point: the signed transaction, its nonce and its items are
committed *before* the broadcast, so after a crash at any instant the next run finds the
batch and either sees its receipt, rebroadcasts the very same bytes, or proves its nonce
was consumed by something else. A batch's nonce is unique in the database, which fences
off a worker that lost its lock: it can never record a second transaction for that nonce.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any

import psycopg
from aws_lambda_powertools import Logger
from eth_account.typed_transactions.typed_transaction import TypedTransaction
from hexbytes import HexBytes

from mintq import chain as chainlib
from mintq import config, db, errors, gas, metrics, queue, retention, settlement
from mintq import signer as signerlib
from mintq.deadlines import Deadline
from mintq.settings import QueueSettings
from mintq.signer import SignedTx, Signer

logger = Logger(child=True)

Conn = psycopg.Connection[db.Row]
FaultHook = Callable[[str], None]
#: Extra per-cycle work sharing the worker's connection (e.g. reconciling payments).
Housekeeping = Callable[[Conn, QueueSettings], object]

#: Named points where tests inject crashes; see ``Batcher.fault``.
CRASH_POINTS = ("after_claim", "after_sign", "after_record", "after_broadcast", "after_receipt", "mid_record")


class BatchBlocked(errors.ChainError):
    """Every batchMint reverts, whoever the recipient: the contract or the signer is at fault."""

    code = "batch_blocked"


#: Gas per mint assumed before any batch of this token has been confirmed (a fresh-address
#: ERC-20 mint costs ~25k; erring high makes the first batch smaller, erring low only costs
#: a re-estimate, since a batch over its gas budget is shrunk before it is signed).
DEFAULT_GAS_PER_MINT = 26_000
#: A node that accepted a transaction may still lose it; resend the same bytes this often.
REBROADCAST_SECONDS = 10.0
#: How long a batch's nonce must look used, with no receipt for any of its attempts, before the
#: batch counts as dropped. A load-balanced RPC can report the nonce from a node that is ahead
#: of the one answering for receipts; dropping at once would re-mint a batch that was mined.
DROP_GRACE_SECONDS = 30.0
#: How long a measured gas.FreshMintCost is used before it is measured again.
FRESH_COST_SECONDS = 60.0


@dataclass
class RunSummary:
    locked: bool = False
    cycles: int = 0
    batches_sent: int = 0
    batches_confirmed: int = 0
    batches_reverted: int = 0
    batches_dropped: int = 0
    batches_replaced: int = 0
    mints_completed: int = 0
    requests_failed: int = 0
    faults: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def add(self, other: RunSummary) -> None:
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            setattr(self, f.name, (mine or theirs) if isinstance(mine, bool) else mine + theirs)


@dataclass(frozen=True)
class Claimed:
    id: uuid.UUID
    payer_address: str


def _no_fault(point: str) -> None:
    return None


class Batcher:
    def __init__(
        self,
        conn: Conn,
        chain: chainlib.Chain,
        signer: Signer,
        *,
        chain_id: int | None = None,
        gas_headroom: float = 1.1,  # only for a token that refuses gas.FreshMintCost's recipients
        poll_seconds: float = 0.25,
        min_cycle_seconds: float = 5.0,
        max_backoff_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        fault: FaultHook = _no_fault,
        housekeeping: Sequence[Housekeeping] = (),
        drop_grace_seconds: float = DROP_GRACE_SECONDS,
    ) -> None:
        self.conn = conn
        self.chain = chain
        self.signer = signer
        self.chain_id = chain_id if chain_id is not None else chain.chain_id
        self.gas_headroom = gas_headroom
        self.poll_seconds = poll_seconds
        self.min_cycle_seconds = min_cycle_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.clock = clock
        self.sleep = sleep
        #: Called at each name in CRASH_POINTS; tests raise or kill the process there.
        self.fault = fault
        self.housekeeping = tuple(housekeeping)
        self.summary = RunSummary()
        self._last_sent: dict[str, float] = {}
        self.drop_grace_seconds = drop_grace_seconds
        #: when each batch's nonce was first seen used without a receipt (see DROP_GRACE_SECONDS)
        self._nonce_passed: dict[uuid.UUID, float] = {}
        self._faulted = False
        self._drain = False
        #: set when a cycle goes on but holds a batch back (a replacement over the fee ceiling)
        self._holding: errors.MintqError | None = None
        #: chain reads that cannot change within a cycle (fees, block gas limit), cleared as each cycle starts; the supply is not among them (see dispatch)
        self._reads: dict[str, Any] = {}
        self._fresh_cost_at: tuple[float, gas.FreshMintCost | None] | None = None

    @property
    def signer_address(self) -> str:
        return self.signer.address

    @property
    def lock_name(self) -> str:
        return f"mintq:batch:{self.chain_id}:{self.signer_address.lower()}"

    def _keys(self) -> dict[str, Any]:
        return {"chain_id": self.chain_id, "signer": self.signer_address}

    def try_lock(self) -> bool:
        """Take this signer's session advisory lock if it is free; False if another worker holds it.

        Raises ``errors.ConfigurationError`` (and takes nothing) when the connection goes through a
        transaction pooler, where the lock would land on a backend other clients share: two workers
        could both "hold" it, and it would outlive this run.
        """
        row = db.one(
            self.conn,
            "try_signer_lock",
            {"lock_name": self.lock_name, "backend_pid": self.conn.info.backend_pid},
        )
        if row is not None and not row["own_session"]:
            logger.error(
                "the worker's connection is pooled; refusing to take the signer lock",
                extra={"action": "pooled_session", "signer": self.signer_address},
            )
            raise errors.ConfigurationError(
                "the batch worker must connect to PostgreSQL directly, not through a transaction pooler"
                " (set MINTQ_WORKER_DATABASE_URL / MINTQ_WORKER_DATABASE_SECRET_ARN to the database itself)"
            )
        return bool(row and row["locked"])

    # --- the run loop -------------------------------------------------------

    def run(self, deadline: float) -> RunSummary:
        """Cycle until ``deadline`` (a ``clock()`` value) is too close for another cycle."""
        self.summary = RunSummary()
        if not self.try_lock():
            logger.info(
                "another worker holds this signer; exiting",
                extra={"action": "lock_busy", "signer": self.signer_address},
            )
            return self.summary
        self.summary.locked = True
        logger.info(
            "processor start",
            extra={
                "action": "processor_start",
                "signer": self.signer_address,
                "chain_id": self.chain_id,
                "token": self.chain.token,
            },
        )
        consecutive_faults = 0
        try:
            # No cycle starts without min_cycle_seconds of room before the deadline, and the
            # next start is reckoned from now as well as from the last start: a cycle that ran
            # long (a slow node) is never followed by one that would end past the deadline.
            while self.clock() + self.min_cycle_seconds <= deadline:
                started = self.clock()
                settings = self.cycle(deadline)
                consecutive_faults = consecutive_faults + 1 if self._faulted else 0
                if consecutive_faults:
                    pause = min(
                        settings.batch_interval_seconds * 2 ** (consecutive_faults - 1),
                        self.max_backoff_seconds,
                    )
                elif self._drain:
                    pause = 0.0  # pipelining through a deep queue: the chain, not a timer, sets the pace
                else:
                    pause = settings.batch_interval_seconds
                next_start = max(started + pause, self.clock())
                if next_start + self.min_cycle_seconds > deadline:
                    break
                self.sleep(max(0.0, next_start - self.clock()))
        finally:
            if not self.conn.broken and not self.conn.closed:
                db.one(self.conn, "release_signer_lock", {"lock_name": self.lock_name})
        logger.info("processor stop", extra={"action": "processor_stop", **self.summary.as_dict()})
        return self.summary

    def cycle(self, deadline: float) -> QueueSettings:
        """One cycle: an idle one costs a single query. Its metrics are published as it ends.

        Every chain call of the cycle (and of housekeeping sharing the chain's ``Deadline``)
        ends by ``deadline``, a ``clock()`` value; past it calls raise ``DeadlineReached``.
        """
        # ``deadline`` is a value of this worker's clock: the chain's calls must read the same one.
        self.chain.deadline.clock = self.clock
        self.chain.deadline.set(deadline)
        try:
            return self._cycle(deadline)
        finally:
            metrics.flush()

    def _cycle(self, deadline: float) -> QueueSettings:
        self.summary.cycles += 1
        self._faulted = False
        self._drain = False
        self._holding = None
        self._reads = {}
        probe = db.one(self.conn, "cycle_probe", self._keys()) or {}
        settings = QueueSettings.from_mapping(probe.get("settings") or {})
        # Sampled every cycle, so a missing datapoint means the worker is not running.
        metrics.gauge("QueuePending", probe.get("pending_count") or 0)
        metrics.gauge("OldestPendingSeconds", _age_seconds(probe.get("oldest_pending")), seconds=True)
        logger.info(
            "queue stats",
            extra={
                "action": "queue_stats",
                **{
                    k: probe.get(k)
                    for k in (
                        "pending_count",
                        "processing_count",
                        "completed_count",
                        "failed_count",
                        "unique_payers_pending",
                    )
                },
                "oldest_pending": str(probe.get("oldest_pending")) if probe.get("oldest_pending") else None,
            },
        )
        for task in self.housekeeping:
            try:
                task(self.conn, settings)
            except errors.MintqError as exc:
                self._fault("housekeeping failed", exc)
        if probe.get("has_inflight") or probe.get("has_pending"):
            try:
                self._work(
                    settings,
                    deadline,
                    has_inflight=bool(probe.get("has_inflight")),
                    has_pending=bool(probe.get("has_pending")),
                )
            except (errors.ChainError, errors.SigningError, errors.DeadlineReached) as exc:
                # Operational (an RPC or KMS fault, errors.SignerUnavailable among them, or the
                # invocation's deadline): items stay pending and are charged nothing; back off,
                # and say why where the status endpoints can read it.
                self._fault("cycle skipped: chain fault", exc)
                if isinstance(exc, errors.DeadlineReached):
                    return settings  # the invocation's end: no refusal, and no proof of health
                self._holding = exc
        if self._holding is not None:
            db.execute(
                self.conn,
                "record_worker_refusal",
                {**self._keys(), "code": self._holding.code, "reason": str(self._holding)},
            )
        elif probe.get("refusing"):  # only then: an idle cycle stays one query
            db.execute(self.conn, "clear_worker_refusal", self._keys())
        return settings

    def _fault(self, message: str, exc: errors.MintqError) -> None:
        self._faulted = True
        self.summary.faults += 1
        metrics.count("WorkerFault", 1)
        logger.error(message, extra={"action": "cycle_fault", "error": str(exc), "code": exc.code})

    def _work(
        self, settings: QueueSettings, deadline: float, *, has_inflight: bool, has_pending: bool
    ) -> None:
        inflight = self.reconcile(settings, deadline, wait=not settings.pipelined) if has_inflight else []
        if has_pending and settings.worker_paused:
            # An operator paused the worker (mintq pause): finish what is in flight, claim nothing.
            logger.info("paused: claiming nothing new", extra={"action": "worker_paused"})
        elif has_pending:
            window = settings.max_inflight_batches
            if settings.pipelined:  # the setting is the upper bound; the block gas limit decides
                window = min(window, self._inflight_window(settings))
            while len(inflight) < window and self.clock() + 2 < deadline:
                dispatched = self.dispatch(
                    settings,
                    nonce=max(b["nonce"] for b in inflight) + 1 if inflight else None,
                )
                if dispatched is None:
                    break
                batches = self.broadcast(dispatched)
                if not settings.pipelined:
                    if batches and not self._await(batches[0], settings, deadline):
                        inflight.extend(batches)
                    break
                inflight.extend(batches)
        if settings.pipelined and inflight:
            self._await_progress(inflight[0], settings, deadline)
            self._drain = True

    # --- new batches --------------------------------------------------------

    def _next_nonce(self) -> int:
        pending = self.chain.nonce(self.signer_address, "pending")
        row = db.one(self.conn, "highest_used_nonce", self._keys())
        used = row["nonce"] if row else None
        if used is not None and used >= pending:
            raise errors.NonceConflict(
                f"the chain reports nonce {pending} but this signer's nonce {used} is recorded as mined;"
                " refusing to reuse a nonce (was the chain reset?)"
            )
        return pending

    def _read(self, name: str, read: Callable[[], Any]) -> Any:
        """``read()`` once per cycle."""
        if name not in self._reads:
            self._reads[name] = read()
        return self._reads[name]

    def _block_gas_limit(self) -> int:
        return int(self._read("block_gas_limit", self.chain.block_gas_limit))

    def _gas_budget(self, settings: QueueSettings, block_gas: int) -> int:
        """Gas per batch: whole blocks split evenly within the target and the per-tx cap."""
        return gas.batch_gas_budget(block_gas, settings.batch_gas_target, chainlib.TX_GAS_CAP)

    def _inflight_window(self, settings: QueueSettings) -> int:
        """Batches that keep the next two blocks full, at the gas a batch will carry: the
        budget, or ``max_batch_size`` fresh mints when that is less."""
        block_gas = self._block_gas_limit()
        batch_gas = self._gas_budget(settings, block_gas)
        cost = self._fresh_cost()
        if cost is not None:
            batch_gas = min(batch_gas, cost.worst_case_fresh(settings.max_batch_size))
        return gas.inflight_for(block_gas, batch_gas)

    def _fresh_cost(self) -> gas.FreshMintCost | None:
        def measure() -> gas.FreshMintCost | None:
            try:
                return gas.FreshMintCost.measure(
                    lambda r: self.chain.estimate_batch_mint(self.signer_address, r)
                )
            except errors.SimulatedRevert:
                return None  # the token refuses random recipients: gas_headroom it is

        # Kept across cycles for FRESH_COST_SECONDS: three estimates per cycle would slow a
        # worker with one batch per cycle; the contract's costs do not move between them.
        now = self.clock()
        if self._fresh_cost_at is None or now - self._fresh_cost_at[0] >= FRESH_COST_SECONDS:
            self._fresh_cost_at = (now, measure())
        return self._fresh_cost_at[1]

    def _fee_quote(self, settings: QueueSettings) -> chainlib.Fees:
        # Within a cycle (seconds) the quote's room for the base fee to double still holds.
        fees: chainlib.Fees = self._read("fees", self.chain.fees)
        ceiling = int(settings.max_fee_per_gas_gwei * 10**9)
        if fees.base_fee + fees.max_priority_fee_per_gas > ceiling:
            raise errors.FeeCeilingReached(
                f"the base fee ({fees.base_fee} wei) is above the fee ceiling ({ceiling} wei); holding batches"
            )
        max_fee = min(fees.max_fee_per_gas, ceiling)
        return chainlib.Fees(
            base_fee=fees.base_fee,
            max_fee_per_gas=max_fee,
            max_priority_fee_per_gas=min(fees.max_priority_fee_per_gas, max_fee),
        )

    def _batch_limit(self, settings: QueueSettings, gas_budget: int) -> int:
        """How many requests to claim: the operator's cap, or what the gas budget holds."""
        cost = self._fresh_cost()
        if cost is not None:  # fresh recipients at their dearest fill the budget, no more
            return max(1, min(settings.max_batch_size, cost.fits(gas_budget)))
        row = db.one(self.conn, "recent_gas_per_mint", {"chain_id": self.chain_id, "token": self.chain.token})
        per_mint = float(row["per_mint"]) if row and row["per_mint"] else DEFAULT_GAS_PER_MINT
        return max(1, min(settings.max_batch_size, int(gas_budget / per_mint)))

    def _isolate(self, items: list[Claimed]) -> tuple[list[Claimed], int, list[tuple[Claimed, str]]]:
        """Simulate the batch; if it would revert, find the recipients that make it revert."""
        sender = self.signer_address
        try:
            return items, self.chain.estimate_batch_mint(sender, [i.payer_address for i in items]), []
        except errors.SimulatedRevert:
            pass
        try:
            self.chain.estimate_batch_mint(sender, [sender])
        except errors.SimulatedRevert as exc:
            raise BatchBlocked(f"batchMint reverts for any recipient: {exc.reason}") from exc
        good: list[Claimed] = []
        rejected: list[tuple[Claimed, str]] = []

        def split(group: Sequence[Claimed]) -> None:
            try:
                self.chain.estimate_batch_mint(sender, [i.payer_address for i in group])
                good.extend(group)
                return
            except errors.SimulatedRevert as exc:
                if len(group) == 1:
                    rejected.append((group[0], exc.reason))
                    return
            mid = len(group) // 2
            split(group[:mid])
            split(group[mid:])

        split(items)
        if not good:
            return [], 0, rejected
        try:
            gas = self.chain.estimate_batch_mint(sender, [i.payer_address for i in good])
        except errors.SimulatedRevert as exc:
            raise BatchBlocked(f"the non-reverting recipients still revert together: {exc.reason}") from exc
        return good, gas, rejected

    def dispatch(self, settings: QueueSettings, *, nonce: int | None = None) -> uuid.UUID | None:
        """Claim, simulate, sign and record one batch in one transaction; broadcast comes after.

        ``nonce`` is the next one after batches already in flight (pipelining); without it the
        chain's pending count, checked against our records, decides.
        """
        # Read per batch, never per cycle: another signer's batch mined since would make a cached
        # remainingMints, less the batches still in flight, promise supply that is gone.
        supply = self.chain.supply()
        fees = self._fee_quote(settings)
        nonce = self._next_nonce() if nonce is None else nonce
        hard_cap = min(chainlib.TX_GAS_CAP, self._block_gas_limit())
        budget = self._gas_budget(settings, self._block_gas_limit())
        limit = self._batch_limit(settings, budget)
        batch_id = uuid.uuid4()
        with db.transaction(self.conn):
            rows = db.all(self.conn, "claim_requests", {"limit": limit, "batch_id": batch_id})
            if not rows:
                return None
            self.fault("after_claim")
            items = [Claimed(r["id"], r["payer_address"]) for r in rows]
            if supply.remaining_mints is not None:
                # Batches still in flight, this signer's or another's, take their share first.
                row = db.one(
                    self.conn, "inflight_mints", {"chain_id": self.chain_id, "token": self.chain.token}
                )
                inflight_mints = int(row["n"]) if row else 0
                remaining = max(supply.remaining_mints - inflight_mints, 0)
                if len(items) > remaining:
                    overflow, items = items[remaining:], items[:remaining]
                    if inflight_mints and remaining < supply.remaining_mints:
                        # Some of that supply may come back if an in-flight batch fails: wait and see.
                        db.execute(self.conn, "release_requests", {"ids": [i.id for i in overflow]})
                    else:
                        self._fail(
                            overflow, f"max supply reached: the token has {supply.remaining_mints} mints left"
                        )
            if not items:
                return None
            items, estimate, rejected = self._isolate(items)
            for item, reason in rejected:
                self._fail([item], f"mint would revert: {reason}")
            cost = self._fresh_cost()
            while self._gas_limit(estimate, items, cost) > budget and len(items) > 1:
                # Over the gas budget (target, block limit or the 2**24 per-tx cap): keep what fits.
                keep = max(
                    1, min(len(items) - 1, int(len(items) * budget / self._gas_limit(estimate, items, cost)))
                )
                db.execute(self.conn, "release_requests", {"ids": [i.id for i in items[keep:]]})
                items = items[:keep]
                estimate = self.chain.estimate_batch_mint(
                    self.signer_address, [i.payer_address for i in items]
                )
            if not items:
                return None
            gas_limit = min(self._gas_limit(estimate, items, cost), hard_cap)
            self._check_funds(gas_limit, fees.max_fee_per_gas)
            data = self.chain.batch_mint_data([i.payer_address for i in items])
            signed = self._sign(nonce, data, gas_limit, fees.max_fee_per_gas, fees.max_priority_fee_per_gas)
            self.fault("after_sign")
            db.execute(
                self.conn,
                "insert_batch",
                {
                    "id": batch_id,
                    "tx_hash": signed.tx_hash,
                    "mint_count": len(items),
                    **self._keys(),
                    "token": self.chain.token,
                    "nonce": nonce,
                    "gas_limit": gas_limit,
                    "max_fee_per_gas": fees.max_fee_per_gas,
                    "max_priority_fee_per_gas": fees.max_priority_fee_per_gas,
                    "amount_per_mint": supply.amount_per_mint,
                },
            )
            db.execute(
                self.conn,
                "insert_attempt",
                {
                    "tx_hash": signed.tx_hash,
                    "batch_id": batch_id,
                    "attempt": 1,
                    "raw_tx": signed.raw.hex(),
                    "max_fee_per_gas": fees.max_fee_per_gas,
                    "max_priority_fee_per_gas": fees.max_priority_fee_per_gas,
                },
            )
        self.fault("after_record")
        logger.info(
            "batch recorded",
            extra={
                "action": "batch_recorded",
                "batch_id": str(batch_id),
                "nonce": nonce,
                "tx_hash": signed.tx_hash,
                "size": len(items),
                "gas_estimate": estimate,
                "gas_limit": gas_limit,
            },
        )
        return batch_id

    def _gas_limit(self, estimate: int, items: Sequence[Claimed], cost: gas.FreshMintCost | None) -> int:
        """See ``mintq.gas``: the estimate, raised to what the batch needs if every recipient is fresh."""
        return gas.gas_limit(
            estimate, [i.payer_address for i in items], cost, fallback_ratio=self.gas_headroom
        )

    def _check_funds(self, gas_limit: int, max_fee_per_gas: int) -> None:
        """Refuse, before anything is recorded, a batch the signer cannot pay for: its items
        roll back to pending instead of waiting in ``processing`` behind a transaction no
        node will take."""
        needed = gas_limit * max_fee_per_gas
        balance = self.chain.balance(self.signer_address)
        if balance < needed:
            raise errors.SignerUnderfunded(
                f"the signer {self.signer_address} holds {balance} wei but a batch may cost up to"
                f" {needed} wei (gas limit {gas_limit} x max fee {max_fee_per_gas} wei/gas);"
                " requests stay pending until it is funded"
            )

    def _sign(self, nonce: int, data: bytes, gas: int, max_fee: int, tip: int) -> SignedTx:
        """The one shape of transaction this worker sends: EIP-1559, to the token, no value."""
        return self.signer.sign(
            {
                "type": 2,
                "chainId": self.chain_id,
                "nonce": nonce,
                "to": self.chain.token,
                "value": 0,
                "data": data,
                "gas": gas,
                "maxFeePerGas": max_fee,
                "maxPriorityFeePerGas": tip,
            }
        )

    def _fail(self, items: Sequence[Claimed], reason: str) -> None:
        if not items:
            return
        db.execute(self.conn, "fail_requests", {"ids": [i.id for i in items], "reason": reason})
        self.summary.requests_failed += len(items)
        metrics.count("MintFailed", len(items))
        logger.warning(
            "requests failed",
            extra={
                "action": "requests_failed",
                "count": len(items),
                "reason": reason,
                "queue_ids": [str(i.id) for i in items],
            },
        )

    # --- broadcast and receipts ---------------------------------------------

    def _inflight(self, batch_id: uuid.UUID | None = None) -> list[db.Row]:
        return db.all(self.conn, "inflight_batches", {**self._keys(), "batch_id": batch_id})

    def broadcast(self, batch_id: uuid.UUID) -> list[db.Row]:
        """Send a recorded batch; returns its row(s) as they stood when sent."""
        batches = self._inflight(batch_id)
        for batch in batches:
            self._send_latest(batch)
            self.summary.batches_sent += 1
            metrics.count("BatchSent", 1)
            logger.info(
                "batch sent",
                extra={
                    "action": "batch_sent",
                    "batch_id": str(batch["id"]),
                    "nonce": batch["nonce"],
                    "tx_hash": batch["batch_tx_hash"],
                    "size": batch["mint_count"],
                },
            )
        return batches

    def _send_latest(self, batch: db.Row) -> chainlib.SendOutcome:
        attempt = batch["attempts"][-1]
        outcome = self.chain.send_raw(bytes.fromhex(attempt["raw_tx"]))
        self._last_sent[attempt["tx_hash"]] = self.clock()
        if outcome in (chainlib.SendOutcome.ACCEPTED, chainlib.SendOutcome.ALREADY_KNOWN):
            db.execute(self.conn, "mark_batch_sent", {"id": batch["id"]})
        self.fault("after_broadcast")
        return outcome

    def _find_receipt(self, batch: db.Row) -> chainlib.Receipt | None:
        for attempt in reversed(batch["attempts"]):
            receipt = self.chain.receipt(attempt["tx_hash"])
            if receipt is not None:
                return receipt
        return None

    def await_receipt(self, batch_id: uuid.UUID, settings: QueueSettings, deadline: float) -> bool:
        """Wait for the batch's receipt; running out of time is never a failure."""
        batches = self._inflight(batch_id)
        if not batches:
            return True
        return self._await(batches[0], settings, deadline)

    def _await(self, batch: db.Row, settings: QueueSettings, deadline: float) -> bool:
        until = min(self.clock() + settings.receipt_wait_seconds, deadline - 1.0)
        while True:
            receipt = self._find_receipt(batch)
            if receipt is not None:
                self.fault("after_receipt")
                self.finalize(batch, receipt, settings)
                return True
            now = self.clock()
            if now >= until:
                logger.info(
                    "receipt not yet available",
                    extra={
                        "action": "receipt_pending",
                        "batch_id": str(batch["id"]),
                        "nonce": batch["nonce"],
                    },
                )
                return False
            self.sleep(min(self.poll_seconds, until - now))

    def _await_progress(self, batch: db.Row, settings: QueueSettings, deadline: float) -> None:
        """Pipelining: wait (briefly) until the oldest batch in flight is mined."""
        until = min(self.clock() + min(settings.receipt_wait_seconds, 3.0), deadline - 1.0)
        while self.clock() < until:
            if self._find_receipt(batch) is not None:
                return
            self.sleep(max(0.0, min(self.poll_seconds, until - self.clock())))

    def finalize(self, batch: db.Row, receipt: chainlib.Receipt, settings: QueueSettings) -> None:
        """Record a mined batch in one transaction (idempotent: a second call changes nothing)."""
        params = {
            "batch_id": batch["id"],
            "tx_hash": receipt.tx_hash,
            "block_number": receipt.block_number,
            "gas_used": receipt.gas_used,
            "effective_gas_price": receipt.effective_gas_price,
        }
        log = {
            "batch_id": str(batch["id"]),
            "nonce": batch["nonce"],
            "tx_hash": receipt.tx_hash,
            "block_number": receipt.block_number,
            "gas_used": receipt.gas_used,
        }
        if receipt.status == 1:
            with db.transaction(self.conn):
                row = db.one(self.conn, "complete_batch", params) or {}
                self.fault("mid_record")
            completed = int(row.get("completed") or 0)
            self.summary.batches_confirmed += int(row.get("batches") or 0)
            self.summary.mints_completed += completed
            metrics.count("BatchConfirmed", 1)
            metrics.count("MintCompleted", completed)
            logger.info(
                "batch confirmed",
                extra={
                    "action": "batch_confirmed",
                    "completed": completed,
                    "gas_per_mint": receipt.gas_used // max(completed, 1),
                    **log,
                },
            )
            return
        recipients = [
            r["payer_address"] for r in db.all(self.conn, "batch_recipients", {"batch_id": batch["id"]})
        ]
        reason = self.chain.revert_reason(self.signer_address, recipients, receipt.block_number)
        with db.transaction(self.conn):
            row = (
                db.one(
                    self.conn,
                    "revert_batch",
                    {
                        **params,
                        "reason": f"batch reverted: {reason}",
                        "max_attempts": settings.retry_max_attempts,
                    },
                )
                or {}
            )
            self.fault("mid_record")
        self.summary.batches_reverted += int(row.get("batches") or 0)
        self.summary.requests_failed += int(row.get("failed") or 0)
        metrics.count("BatchReverted", 1)
        logger.error(
            "batch failed",
            extra={
                "action": "batch_failed",
                "reason": reason,
                "requeued": row.get("requeued"),
                "failed": row.get("failed"),
                **log,
            },
        )

    # --- recovery and replacement -------------------------------------------

    def reconcile(self, settings: QueueSettings, deadline: float, *, wait: bool = True) -> list[db.Row]:
        """Settle every unfinished batch of this signer; returns the ones still in flight.

        Each batch ends one of three ways: a receipt for one of its attempts (finalised),
        its nonce provably used by a transaction that is not one of its attempts (dropped,
        items back in line uncharged), or still pending (resent, replaced if stuck).
        """
        still: list[db.Row] = []
        latest: int | None = None
        base_fee: int | None = None
        for batch in self._inflight():
            receipt = self._find_receipt(batch)
            if receipt is not None:
                self.finalize(batch, receipt, settings)
                continue
            if latest is None:
                latest = self.chain.nonce(self.signer_address, "latest")
            if latest > batch["nonce"]:
                receipt = self._find_receipt(batch)  # it may have been mined just now
                if receipt is not None:
                    self.finalize(batch, receipt, settings)
                    continue
                first_seen = self._nonce_passed.setdefault(batch["id"], self.clock())
                if self.clock() - first_seen < self.drop_grace_seconds:
                    still.append(batch)  # its receipt may still be on its way: look again later
                    continue
                self._drop(batch)
                continue
            if base_fee is None:
                base_fee = self.chain.fees().base_fee
            current = self._resend_or_replace(batch, settings, base_fee)
            if wait and self._await(current, settings, deadline):
                continue
            still.append(current)
        return still

    def _drop(self, batch: db.Row) -> None:
        reason = f"nonce {batch['nonce']} was consumed by a transaction that is not this batch's"
        db.execute(self.conn, "drop_batch", {"batch_id": batch["id"], "reason": reason})
        self.summary.batches_dropped += 1
        logger.warning(
            "batch dropped",
            extra={
                "action": "batch_dropped",
                "batch_id": str(batch["id"]),
                "nonce": batch["nonce"],
                "reason": reason,
            },
        )

    def _resend_or_replace(self, batch: db.Row, settings: QueueSettings, base_fee: int) -> db.Row:
        latest = batch["attempts"][-1]
        if (
            float(latest["age_seconds"]) >= settings.stuck_after_seconds
            or int(latest["max_fee_per_gas"]) < base_fee
        ):
            # Not mined in time, never accepted, or priced out by a rising base fee (it would
            # wait for the base fee to fall): the same batch, nonce and calldata, higher fees.
            replaced = self.replace(batch, settings)
            if replaced is not batch:
                return replaced
            # At the fee ceiling: no replacement, but keep the latest attempt in the node's pool.
        last_sent = self._last_sent.get(latest["tx_hash"])
        if (
            batch["status"] == "signed"
            or last_sent is None
            or self.clock() - last_sent >= REBROADCAST_SECONDS
        ):
            outcome = self._send_latest(batch)
            logger.info(
                "batch rebroadcast",
                extra={
                    "action": "batch_rebroadcast",
                    "batch_id": str(batch["id"]),
                    "nonce": batch["nonce"],
                    "outcome": outcome.value,
                },
            )
        return batch

    def replace(self, batch: db.Row, settings: QueueSettings) -> db.Row:
        """Re-sign the batch at its nonce with the same calldata and both fees raised.

        The new attempt is recorded before it is broadcast; whichever attempt is mined wins.
        """
        latest = batch["attempts"][-1]
        quote = self.chain.fees()
        factor = settings.bump_factor
        tip = max(math.ceil(int(latest["max_priority_fee_per_gas"]) * factor), quote.max_priority_fee_per_gas)
        max_fee = max(math.ceil(int(latest["max_fee_per_gas"]) * factor), 2 * quote.base_fee + tip)
        ceiling = int(settings.max_fee_per_gas_gwei * 10**9)
        if max_fee > ceiling:
            self._holding = errors.FeeCeilingReached(
                f"batch nonce {batch['nonce']} is not mined and replacing it needs a max fee of"
                f" {max_fee} wei/gas, above the ceiling of {ceiling} wei/gas (max_fee_per_gas_gwei);"
                " its latest attempt keeps being resent"
            )
            metrics.count("FeeCeilingReached", 1)
            logger.error(
                "stuck batch not replaced: the fee ceiling is reached",
                extra={
                    "action": "fee_ceiling",
                    "batch_id": str(batch["id"]),
                    "nonce": batch["nonce"],
                    "wanted_max_fee_per_gas": max_fee,
                    "ceiling": ceiling,
                },
            )
            return batch
        original = TypedTransaction.from_bytes(HexBytes(bytes.fromhex(latest["raw_tx"]))).as_dict()
        # max_fee >= 2 * base_fee + tip, so the tip always fits under it.
        signed = self._sign(
            int(original["nonce"]), bytes(original["data"]), int(original["gas"]), max_fee, tip
        )
        attempt = {
            "tx_hash": signed.tx_hash,
            "attempt": int(latest["attempt"]) + 1,
            "max_fee_per_gas": max_fee,
            "max_priority_fee_per_gas": tip,
        }
        with db.transaction(self.conn):
            db.execute(
                self.conn,
                "record_replacement",
                {**attempt, "batch_id": batch["id"], "raw_tx": signed.raw.hex()},
            )
        self.summary.batches_replaced += 1
        metrics.count("BatchReplaced", 1)
        logger.warning(
            "stuck batch replaced",
            extra={
                "action": "batch_replaced",
                "batch_id": str(batch["id"]),
                "nonce": batch["nonce"],
                **attempt,
            },
        )
        replaced = dict(batch)
        # The shape inflight_batches gives an attempt (fees as text), so the next look treats it alike.
        replaced["attempts"] = [
            *batch["attempts"],
            {
                **attempt,
                "raw_tx": signed.raw.hex(),
                "max_fee_per_gas": str(max_fee),
                "max_priority_fee_per_gas": str(tip),
                "age_seconds": 0.0,
            },
        ]
        replaced["batch_tx_hash"] = signed.tx_hash
        self._send_latest(replaced)
        return replaced


def _age_seconds(since: datetime | None) -> float:
    return 0.0 if since is None else max(0.0, (datetime.now(UTC) - since).total_seconds())


# --- the Lambda entry point's domain half ---------------------------------------

_workers: list[Batcher] = []


def _build_workers(deadline: float) -> list[Batcher]:
    """One worker per signer key. Each has its own ``Deadline``, shared by its chain client
    and its housekeeping's, and set before any call is made (building may ask the chain id)."""
    cfg = config.load()
    if not cfg.rpc_url or not cfg.token_address:
        raise errors.ConfigurationError("the batch worker needs MINTQ_RPC_URL and MINTQ_TOKEN_ADDRESS")
    signers = signerlib.from_config()
    chain_id = cfg.chain_id
    if chain_id is None:  # asked once, before any connection is opened that a fault would leak
        chain_id = chainlib.Chain(
            cfg.rpc_url, cfg.token_address, timeout=cfg.rpc_timeout_seconds, deadline=Deadline(deadline)
        ).chain_id
    workers: list[Batcher] = []
    for signer in signers:
        bound = Deadline(deadline)
        workers.append(
            Batcher(
                db.connect(config.worker_database_url(), application_name="mintq-batch", lock_holder=True),
                chainlib.Chain(
                    cfg.rpc_url, cfg.token_address, timeout=cfg.rpc_timeout_seconds, deadline=bound
                ),
                signer,
                chain_id=chain_id,
                housekeeping=_housekeeping(cfg, bound) if not workers else (),
            )
        )
    return workers


def _housekeeping(cfg: config.Config, deadline: Deadline) -> list[Housekeeping]:
    """The first signer's worker also prunes idempotency keys and, with x402, reconciles
    payments whose settlement outcome is still open."""
    tasks: list[Housekeeping] = [queue.IdempotencyKeyPruner()]
    if cfg.retention_in_worker:
        tasks.append(retention.RetentionJob())
    if cfg.x402 is not None:
        tasks.append(settlement.reconciler(cfg, deadline=deadline))
    return tasks


def run_invocation(remaining_ms: int, *, safety_seconds: float | None = None) -> RunSummary:
    """Run every signer's worker until shortly before the invocation's own timeout.

    ``safety_seconds`` (default ``MINTQ_BATCH_SAFETY_SECONDS``, 10) of the ``remaining_ms``
    are kept back: every chain call ends before the rest, so the run can record what it did
    and release its advisory locks in time. One worker per signer key, each on its own
    connection, advisory lock and nonce sequence; SKIP LOCKED hands each request to exactly
    one of them. An exception in any signer's thread is raised once all have stopped.
    """
    global _workers  # noqa: PLW0603 - reused across warm invocations like any client
    reserve = config.load().batch_safety_seconds if safety_seconds is None else safety_seconds
    deadline = time.monotonic() + remaining_ms / 1000 - reserve
    if not _workers or any(w.conn.closed or w.conn.broken for w in _workers):
        for worker in _workers:
            worker.conn.close()
        _workers = []
        try:
            _workers = _build_workers(deadline)
        except (errors.ChainError, errors.DeadlineReached) as exc:
            # The chain id could not be read in time: nothing was locked or claimed; next time.
            summary = RunSummary(faults=1)
            metrics.count("WorkerFault", 1)
            metrics.flush()
            logger.error(
                "workers not started: chain fault",
                extra={"action": "cycle_fault", "error": str(exc), "code": exc.code},
            )
            return summary
    if len(_workers) == 1:
        return _workers[0].run(deadline)
    summaries: list[RunSummary] = [RunSummary() for _ in _workers]
    failures: list[BaseException] = []

    def run_one(i: int) -> None:
        try:
            summaries[i] = _workers[i].run(deadline)
        except BaseException as exc:  # re-raised below: a thread's exception would vanish
            failures.append(exc)

    threads = [threading.Thread(target=run_one, args=(i,), name=f"signer-{i}") for i in range(len(_workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    total = RunSummary()
    for summary in summaries:
        total.add(summary)
    return total
