"""One signer's worker: the advisory lock, the cycles, their pacing and backoff, and the
run summary.

A run holds a PostgreSQL session advisory lock keyed by the signer, so a second run for
the same wallet exits at once. Each cycle (every ``batch_interval_seconds``, settings
re-read every time) first reconciles this signer's unfinished batches (``Tracker``), then
claims the head of the line and records one batch (``Dispatcher``) and sends it.

Ordering is the whole point: the signed transaction, its nonce and its items are
committed *before* the broadcast, so after a crash at any instant the next run finds the
batch and either sees its receipt, rebroadcasts the very same bytes, or proves its nonce
was consumed by something else. A batch's nonce is unique in the database, which fences
off a worker that lost its lock: it can never record a second transaction for that nonce.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence

from mintq import chain as chainlib
from mintq import db, errors, metrics
from mintq.settings import QueueSettings
from mintq.signer import Signer
from mintq.worker import rules
from mintq.worker.batches import Batch
from mintq.worker.context import DROP_GRACE_SECONDS, Context
from mintq.worker.dispatch import Dispatcher
from mintq.worker.faults import FaultHook, no_fault
from mintq.worker.pipeline import Pipeline
from mintq.worker.recovery import Recovery
from mintq.worker.telemetry import RunSummary

#: Extra per-cycle work sharing the worker's connection (e.g. reconciling payments).
Housekeeping = Callable[[db.Conn, QueueSettings], object]

_QUEUE_STATS = (
    "pending_count",
    "processing_count",
    "completed_count",
    "failed_count",
    "unique_payers_pending",
)


class Worker(Context):
    """The batch worker of one signer: one advisory lock, one nonce sequence. It is the
    ``Context`` its dispatcher and tracker share, so a test that swaps ``clock``, ``sleep``,
    ``fault`` or ``drop_grace_seconds`` on it swaps them for every part.

    ``clock`` and ``sleep`` are in seconds (``time.monotonic``/``time.sleep`` by default);
    deadlines are ``clock()`` values. ``gas_headroom`` multiplies the gas estimate into the
    gas limit. ``fault`` is called at each of ``faults.CRASH_POINTS``.
    """

    def __init__(
        self,
        conn: db.Conn,
        chain: chainlib.Chain,
        signer: Signer,
        *,
        chain_id: int | None = None,
        gas_headroom: float = 1.1,
        poll_seconds: float = 0.25,
        min_cycle_seconds: float = 5.0,
        max_backoff_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        fault: FaultHook = no_fault,
        housekeeping: Sequence[Housekeeping] = (),
        drop_grace_seconds: float = DROP_GRACE_SECONDS,
    ) -> None:
        super().__init__(
            conn=conn,
            chain=chain,
            signer=signer,
            chain_id=chain_id if chain_id is not None else chain.chain_id,
            gas_headroom=gas_headroom,
            poll_seconds=poll_seconds,
            drop_grace_seconds=drop_grace_seconds,
            clock=clock,
            sleep=sleep,
            fault=fault,
        )
        self.min_cycle_seconds = min_cycle_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.housekeeping = tuple(housekeeping)
        self.dispatcher = Dispatcher(self)
        self.tracker = Recovery(self)
        self.pipeline = Pipeline(self, self.dispatcher, self.tracker)
        self._faulted = False
        self._drain = False

    @property
    def summary(self) -> RunSummary:
        """The current (or last) run's summary."""
        return self.telemetry.summary

    @property
    def lock_name(self) -> str:
        return f"mintq:batch:{self.chain_id}:{self.signer_address.lower()}"

    def _keys(self) -> dict[str, object]:
        return {"chain_id": self.chain_id, "signer": self.signer_address}

    # --- the parts, as tests drive them one step at a time --------------------------------

    def dispatch(self, settings: QueueSettings, *, nonce: int | None = None) -> uuid.UUID | None:
        """``Dispatcher.dispatch``: record one new batch; its id, or None."""
        return self.dispatcher.dispatch(settings, nonce=nonce)

    def broadcast(self, batch_id: uuid.UUID) -> list[Batch]:
        """``Tracker.broadcast``: send a recorded batch."""
        return self.tracker.broadcast(batch_id)

    def await_receipt(self, batch: Batch, settings: QueueSettings, deadline: float) -> bool:
        """``Tracker.await_receipt``: wait for one batch's receipt and finalise it."""
        return self.tracker.await_receipt(batch, settings, deadline)

    def reconcile(self, settings: QueueSettings, deadline: float, *, wait: bool = True) -> list[Batch]:
        """``Tracker.reconcile``: settle every unfinished batch; those still in flight."""
        return self.tracker.reconcile(settings, deadline, wait=wait)

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
            self.telemetry.event(
                "pooled_session",
                "the worker's connection is pooled; refusing to take the signer lock",
                level=logging.ERROR,
                signer=self.signer_address,
            )
            raise errors.ConfigurationError(
                "the batch worker must connect to PostgreSQL directly, not through a transaction pooler"
                " (set MINTQ_WORKER_DATABASE_URL / MINTQ_WORKER_DATABASE_SECRET_ARN to the database itself)"
            )
        return bool(row and row["locked"])

    # --- the run loop ---------------------------------------------------------------------

    def run(self, deadline: float) -> RunSummary:
        """Cycle until ``deadline`` (a ``clock()`` value) is too close for another cycle.
        Returns the run's summary (``locked`` False when another run holds the signer)."""
        summary = self.telemetry.reset()
        if not self.try_lock():
            self.telemetry.event(
                "lock_busy", "another worker holds this signer; exiting", signer=self.signer_address
            )
            return summary
        summary.locked = True
        self.telemetry.event(
            "processor_start",
            "processor start",
            signer=self.signer_address,
            chain_id=self.chain_id,
            token=self.chain.token,
        )
        consecutive_faults = 0
        try:
            # No cycle starts without min_cycle_seconds of room before the deadline, and the
            # next start is reckoned from now as well as from the last start.
            while self.clock() + self.min_cycle_seconds <= deadline:
                started = self.clock()
                settings = self.cycle(deadline)
                consecutive_faults = consecutive_faults + 1 if self._faulted else 0
                pause = rules.pause(
                    interval=settings.batch_interval_seconds,
                    consecutive_faults=consecutive_faults,
                    drain=self._drain,
                    max_backoff=self.max_backoff_seconds,
                )
                at = rules.next_start(
                    started=started,
                    now=self.clock(),
                    pause=pause,
                    min_cycle=self.min_cycle_seconds,
                    deadline=deadline,
                )
                if at is None:
                    break
                self.sleep(max(0.0, at - self.clock()))
        finally:
            if not self.conn.broken and not self.conn.closed:
                db.one(self.conn, "release_signer_lock", {"lock_name": self.lock_name})
        self.telemetry.event("processor_stop", "processor stop", **summary.as_dict())
        return summary

    def cycle(self, deadline: float) -> QueueSettings:
        """One cycle: an idle one costs a single query. Its metrics are published as it ends.
        Returns the settings it read. Every chain call of the cycle (and of housekeeping sharing
        the chain's ``Deadline``) ends by ``deadline``, a ``clock()`` value; past it calls raise
        ``errors.DeadlineReached``."""
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
        self.holding = None
        self.reads = {}
        probe = db.one(self.conn, "cycle_probe", self._keys()) or {}
        settings = QueueSettings.from_mapping(probe.get("settings") or {})
        self.telemetry.queue_stats(probe)
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
                self.holding = exc
        if self.holding is not None:
            refusal = {**self._keys(), "code": self.holding.code, "reason": str(self.holding)}
            db.execute(self.conn, "record_worker_refusal", refusal)
        elif probe.get("refusing"):  # only then: an idle cycle stays one query
            db.execute(self.conn, "clear_worker_refusal", self._keys())
        return settings

    def _fault(self, message: str, exc: errors.MintqError) -> None:
        self._faulted = True
        self.telemetry.event(
            "cycle_fault",
            message,
            level=logging.ERROR,
            metric={"WorkerFault": 1},
            summary={"faults": 1},
            error=str(exc),
            code=exc.code,
        )

    def _work(
        self, settings: QueueSettings, deadline: float, *, has_inflight: bool, has_pending: bool
    ) -> None:
        claim = has_pending and not settings.worker_paused
        if has_pending and settings.worker_paused:
            # An operator paused the worker (mintq pause): finish what is in flight, claim nothing.
            self.telemetry.event("worker_paused", "paused: claiming nothing new")
        if settings.pipelined:
            self._drain = self.pipeline.run(settings, deadline, claim=claim)
            return
        inflight = self.reconcile(settings, deadline) if has_inflight else []
        if claim and not inflight and self.clock() + 2 < deadline:
            dispatched = self.dispatch(settings)
            sent = self.broadcast(dispatched) if dispatched is not None else []
            if sent:
                self.await_receipt(sent[0], settings, deadline)
