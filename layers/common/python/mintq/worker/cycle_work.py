"""A cycle's work, once the probe found some: one batch at a time, or pipelined.

With ``max_inflight_batches`` 1 (``single``): settle what is in flight, each receipt awaited,
then send one batch and await its receipt.

Pipelined (``max_inflight_batches`` > 1): keep the next blocks full.

One thread, two jobs, dispatch first. The window is counted in batches not yet mined (at or
above the signer's ``latest`` nonce): a batch that is mined but not yet finalised takes no
room in a block, so it holds no dispatch back. Finalising (a receipt, then one database
transaction) runs in the gaps, while the window is full and the chain has not mined a block
since; a new block opens the window again and dispatching resumes before the rest is
finalised. Only a backlog as deep as the window is finalised first, so it stays bounded
when dispatching cannot keep up with the chain.

Every step is one the single-batch cycle takes too (``Dispatcher.dispatch``,
``Tracker.broadcast``, ``Recovery.settle``), in another order: the write-ahead record, the
crash points and the guarded moves are theirs.
"""

from __future__ import annotations

from mintq.settings import QueueSettings
from mintq.worker.batches import Batch
from mintq.worker.context import Context
from mintq.worker.dispatch import Dispatcher
from mintq.worker.recovery import Recovery

#: How long an idle pipeline (window full, nothing mined to finalise) waits for a block
#: before the cycle ends (seconds); the next cycle starts at once (``rules.pause``, drain).
IDLE_WAIT_SECONDS = 3.0
#: A busy pipeline still ends its cycle after this many ``batch_interval_seconds`` (plus one
#: idle wait), so housekeeping runs and settings are read again.
MAX_CYCLES_PER_INTERVAL = 3
#: A dispatch is started only with this much time left before the deadline (seconds).
DISPATCH_ROOM_SECONDS = 2.0


class CycleWork:
    """The work of one cycle of one signer's worker (``Context``)."""

    def __init__(self, ctx: Context, dispatcher: Dispatcher, tracker: Recovery) -> None:
        self.ctx = ctx
        self.dispatcher = dispatcher
        self.tracker = tracker

    def single(self, settings: QueueSettings, deadline: float, *, reconcile: bool, claim: bool) -> None:
        """Settle every unfinished batch (with ``reconcile``), waiting up to
        ``receipt_wait_seconds`` for each; then, with ``claim`` and nothing left in flight, record,
        send and await one batch. ``deadline`` is a ``clock()`` value. Raises what
        ``Dispatcher.dispatch`` and ``Recovery`` raise."""
        inflight = self.tracker.reconcile(settings, deadline) if reconcile else []
        if claim and not inflight and self.ctx.clock() + DISPATCH_ROOM_SECONDS < deadline:
            dispatched = self.dispatcher.dispatch(settings)
            sent = self.tracker.broadcast(dispatched) if dispatched is not None else []
            if sent:
                self.tracker.await_receipt(sent[0], settings, deadline)

    def pipelined(self, settings: QueueSettings, deadline: float, *, claim: bool) -> bool:
        """Keep this signer's unmined batches at the window, finalising mined ones in the
        gaps, for about ``batch_interval_seconds`` (ending at an idle moment), or until
        nothing is left, or until ``deadline`` (a ``clock()`` value) is near. ``claim`` False
        (paused, or nothing pending) only settles what is in flight. Returns True when
        batches are still in flight or requests may still be pending (the next cycle starts at once). Raises what
        ``Dispatcher.dispatch`` and ``Recovery`` raise."""
        ctx, tracker = self.ctx, self.tracker
        started = ctx.clock()
        latest = tracker.latest_nonce()
        inflight = self._keep_alive(settings, latest)
        window = self._window(settings) if claim else 0
        last_nonce = max((b.nonce for b in inflight), default=None)
        while ctx.clock() < deadline - 1.0:
            elapsed = ctx.clock() - started
            if elapsed >= MAX_CYCLES_PER_INTERVAL * settings.batch_interval_seconds + IDLE_WAIT_SECONDS:
                break  # housekeeping and fresh settings are due, busy or not
            mined = [b for b in inflight if b.nonce < latest]
            room = claim and len(inflight) - len(mined) < window
            if room and len(mined) < window and ctx.clock() + DISPATCH_ROOM_SECONDS < deadline:
                batch_id = self.dispatcher.dispatch(
                    settings, nonce=None if last_nonce is None else last_nonce + 1
                )
                if batch_id is None:
                    claim = False  # the line is empty (or held back): settle what is in flight
                    continue
                sent = tracker.broadcast(batch_id)
                inflight.extend(sent)
                # Without the batch (finished already?), the chain's pending count decides.
                last_nonce = max((b.nonce for b in sent), default=None)
                continue
            if mined:
                batch = mined[0]
                inflight.remove(batch)
                tracker.settle(batch, settings)  # False: the drop grace runs; the next cycle looks again
                latest = tracker.latest_nonce()  # a block may have opened the window meanwhile
                continue
            if not inflight or elapsed >= settings.batch_interval_seconds:
                break
            moved = self._await_block(latest, deadline)
            if moved == latest:
                break
            latest = moved
        return claim or bool(inflight)

    def _window(self, settings: QueueSettings) -> int:
        """Unmined batches to keep: what fills the next blocks (``Sizing.inflight_window``),
        at most ``max_inflight_batches``."""
        return min(settings.max_inflight_batches, self.dispatcher.sizing.inflight_window(settings))

    def _keep_alive(self, settings: QueueSettings, latest: int) -> list[Batch]:
        """This signer's unfinished batches; the unmined ones resent or replaced as due."""
        tracker = self.tracker
        batches = tracker.inflight()
        unmined = [b for b in batches if b.nonce >= latest]
        if not unmined:
            return batches
        base_fee = self.ctx.chain.fees().base_fee
        kept = {b.id: tracker.keep_alive(b, settings, base_fee) for b in unmined}
        return [kept.get(b.id, b) for b in batches]

    def _await_block(self, latest: int, deadline: float) -> int:
        """The signer's latest nonce once it moves past ``latest``, polled every
        ``poll_seconds`` for at most ``IDLE_WAIT_SECONDS``; ``latest`` on a timeout."""
        ctx = self.ctx
        until = min(ctx.clock() + IDLE_WAIT_SECONDS, deadline - 1.0)
        while True:
            now = self.tracker.latest_nonce()
            if now > latest or ctx.clock() >= until:
                return now
            ctx.sleep(max(0.0, min(ctx.poll_seconds, until - ctx.clock())))
