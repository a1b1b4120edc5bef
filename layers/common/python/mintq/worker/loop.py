"""One signer's worker: the run under the signer's lock, the cycles, their pacing and
backoff, and the run summary.

A run holds the signer's advisory lock (``signer_state``), so a second run for the same
wallet exits at once. Each cycle (every ``batch_interval_seconds``, settings re-read every
time) first reconciles this signer's unfinished batches (``Recovery``), then claims the head
of the line, records one batch (``Dispatcher``) and sends it; with ``max_inflight_batches``
above 1 it keeps the next blocks full instead (``CycleWork.pipelined``).

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
from mintq.worker import rules, signer_state
from mintq.worker.batches import Batch
from mintq.worker.context import DROP_GRACE_SECONDS, Context, CycleReads
from mintq.worker.cycle_work import CycleWork
from mintq.worker.dispatch import Dispatcher
from mintq.worker.faults import FaultHook, no_fault
from mintq.worker.recovery import Recovery
from mintq.worker.telemetry import RunSummary

#: Extra per-cycle work sharing the worker's connection (e.g. reconciling payments).
Housekeeping = Callable[[db.Conn, QueueSettings], object]


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
        self.cycles = CycleWork(self, self.dispatcher, self.tracker)
        self._faulted = False
        self._drain = False

    @property
    def summary(self) -> RunSummary:
        """The current (or last) run's summary."""
        return self.telemetry.summary

    @property
    def lock_name(self) -> str:
        """This signer's advisory lock (``signer_state.lock_name``)."""
        return signer_state.lock_name(self.chain_id, self.signer_address)

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
        """Take this signer's lock (``signer_state.try_lock``): False if another worker holds it;
        ``signer_state.PooledSession`` (a ``ConfigurationError``) through a transaction pooler."""
        try:
            return signer_state.try_lock(self.conn, self.lock_name)
        except signer_state.PooledSession:
            self.telemetry.event(
                "pooled_session",
                "the worker's connection is pooled; refusing to take the signer lock",
                level=logging.ERROR,
                signer=self.signer_address,
            )
            raise

    # --- the run loop ---------------------------------------------------------------------

    def run(self, deadline: float) -> RunSummary:
        """Cycle until ``deadline`` (a ``clock()`` value) is too close for another cycle.
        Returns the run's summary (``locked`` False when another run holds the signer). Chain
        and signing faults are the cycle's (logged, backed off, reported as a refusal); raises
        ``signer_state.PooledSession`` (through a transaction pooler), ``errors.DatabaseError``."""
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
            signer_state.release(self.conn, self.lock_name)
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
        self.reads = CycleReads()
        probe = signer_state.probe(self.conn, chain_id=self.chain_id, signer=self.signer_address)
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
        chain_id, signer = self.chain_id, self.signer_address
        if self.holding is not None:
            reason = str(self.holding)
            signer_state.record_refusal(
                self.conn, chain_id=chain_id, signer=signer, code=self.holding.code, reason=reason
            )
        elif probe.get("refusing"):  # only then: an idle cycle stays one query
            signer_state.clear_refusal(self.conn, chain_id=chain_id, signer=signer)
        return settings

    def _fault(self, message: str, exc: errors.MintqError) -> None:
        self._faulted = True
        self.telemetry.event(
            "cycle_fault",
            message,
            # Retried with backoff; one that persists is the signer's refusal (worker_refusals,
            # /queue/status "refusing"), which is what calls a person.
            level=logging.WARNING,
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
            self._drain = self.cycles.pipelined(settings, deadline, claim=claim)
        else:
            self.cycles.single(settings, deadline, reconcile=has_inflight, claim=claim)
