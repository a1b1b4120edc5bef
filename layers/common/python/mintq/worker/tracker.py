"""Following recorded batches to their end: broadcast, receipts, finalise. Recovery
(reconcile, drop, resend or replace) is ``Recovery`` in ``mintq.worker.recovery``, a
``Tracker`` that also settles what an earlier cycle or a crashed run left in flight.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from mintq import chain as chainlib
from mintq import db
from mintq.settings import QueueSettings
from mintq.worker import lookups, repository
from mintq.worker.batches import Batch
from mintq.worker.context import Context


class Tracker:
    """Sends and settles one signer's recorded batches (``Context``)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        #: when each attempt (by hash) was last sent, a ``ctx.clock()`` value
        self._last_sent: dict[str, float] = {}
        #: when each batch's nonce was first seen used without a receipt (see ``DROP_GRACE_SECONDS``)
        self._nonce_passed: dict[uuid.UUID, float] = {}

    def inflight(self, batch_id: uuid.UUID | None = None) -> list[Batch]:
        """This signer's unfinished batches (or just ``batch_id``), lowest nonce first."""
        ctx = self.ctx
        return repository.inflight(
            ctx.conn, chain_id=ctx.chain_id, signer=ctx.signer_address, batch_id=batch_id
        )

    # --- broadcast and receipts ---------------------------------------------------------

    def broadcast(self, batch_id: uuid.UUID) -> list[Batch]:
        """Send a recorded batch; returns it (a list of zero or one: none when it is no longer
        unfinished) as it stood when sent. Raises ``errors.ChainError`` as ``send_latest``."""
        sent = self.inflight(batch_id)
        for batch in sent:
            self.send_latest(batch)
            self.ctx.telemetry.event(
                "batch_sent",
                "batch sent",
                metric={"BatchSent": 1},
                summary={"batches_sent": 1},
                batch_id=str(batch.id),
                nonce=batch.nonce,
                tx_hash=batch.tx_hash,
                size=batch.mint_count,
            )
        return sent

    def send_latest(self, batch: Batch) -> chainlib.SendOutcome:
        """Broadcast the batch's newest attempt (the same bytes every time; safe to repeat) and,
        once a node has it, mark the batch sent. Returns the node's ``SendOutcome``; raises
        ``errors.SignerUnderfunded``, ``errors.ChainUnavailable`` or ``errors.ChainError``."""
        ctx = self.ctx
        attempt = batch.latest
        outcome = ctx.chain.send_raw(attempt.raw_tx)
        self._last_sent[attempt.tx_hash] = ctx.clock()
        if outcome in (chainlib.SendOutcome.ACCEPTED, chainlib.SendOutcome.ALREADY_KNOWN):
            repository.mark_sent(ctx.conn, batch.id)
        ctx.fault("after_broadcast")
        return outcome

    def find_receipt(self, batch: Batch) -> chainlib.Receipt | None:
        """The receipt of whichever attempt was mined, newest looked up first; None while none
        is. Raises ``errors.ChainUnavailable``."""
        for attempt in reversed(batch.attempts):
            receipt = self.ctx.chain.receipt(attempt.tx_hash)
            if receipt is not None:
                return receipt
        return None

    def await_receipt(self, batch: Batch, settings: QueueSettings, deadline: float) -> bool:
        """Wait up to ``receipt_wait_seconds`` (and until 1 s before ``deadline``, a ``clock()``
        value), polling every ``poll_seconds``, for the batch's receipt and finalise it; False
        when it has not come (never a failure). Raises ``errors.ChainError``."""
        ctx = self.ctx
        until = min(ctx.clock() + settings.receipt_wait_seconds, deadline - 1.0)
        while True:
            receipt = self.find_receipt(batch)
            if receipt is not None:
                ctx.fault("after_receipt")
                self.finalize(batch, receipt, settings)
                return True
            now = ctx.clock()
            if now >= until:
                ctx.telemetry.event(
                    "receipt_pending", "receipt not yet available", batch_id=str(batch.id), nonce=batch.nonce
                )
                return False
            ctx.sleep(min(ctx.poll_seconds, until - now))

    def finalize(self, batch: Batch, receipt: chainlib.Receipt, settings: QueueSettings) -> None:
        """Record a mined batch in one transaction (idempotent: a second call changes nothing):
        status 1 completes its requests; status 0 charges each an attempt (back in line, or
        failed at ``retry_max_attempts``), with the revert reason replayed from the chain.
        Raises ``errors.ChainUnavailable`` (the replay) or ``errors.DatabaseError``."""
        ctx = self.ctx
        log: dict[str, Any] = {
            "batch_id": str(batch.id),
            "nonce": batch.nonce,
            "tx_hash": receipt.tx_hash,
            "block_number": receipt.block_number,
            "gas_used": receipt.gas_used,
        }
        # Each outcome is finalised in one transaction: a crash before it commits (crash point
        # ``mid_record``) leaves the batch unfinished, to be finalised again from its receipt.
        if receipt.status == 1:
            with db.transaction(ctx.conn):
                done = repository.complete(ctx.conn, batch.id, receipt)
                ctx.fault("mid_record")
            ctx.telemetry.event(
                "batch_confirmed",
                "batch confirmed",
                metric={"BatchConfirmed": 1, "MintCompleted": done.completed},
                summary={"batches_confirmed": done.batches, "mints_completed": done.completed},
                completed=done.completed,
                gas_per_mint=receipt.gas_used // max(done.completed, 1),
                **log,
            )
            return
        recipients = lookups.recipients(ctx.conn, batch.id)
        reason = ctx.chain.revert_reason(ctx.signer_address, recipients, receipt.block_number)
        with db.transaction(ctx.conn):
            done = repository.revert(
                ctx.conn,
                batch.id,
                receipt,
                reason=f"batch reverted: {reason}",
                max_attempts=settings.retry_max_attempts,
            )
            ctx.fault("mid_record")
        ctx.telemetry.event(
            "batch_failed",
            "batch failed",
            # A person is needed only for requests that failed for good; requeued ones retry.
            level=logging.ERROR if done.failed else logging.WARNING,
            metric={"BatchReverted": 1},
            summary={"batches_reverted": done.batches, "requests_failed": done.failed},
            reason=reason,
            requeued=done.requeued,
            failed=done.failed,
            **log,
        )
