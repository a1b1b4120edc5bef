"""Recovery: settle every unfinished batch of a signer, whatever left it unfinished (an
earlier cycle, a crashed run, a node that lost the transaction, a rising base fee).

A batch ends one of three ways: a receipt for one of its attempts (finalised), its nonce
provably used by another transaction (dropped after ``drop_grace_seconds``, its items back
in line uncharged), or, while pending, resent and replaced at higher fees when stuck.
"""

from __future__ import annotations

import logging

from eth_account.typed_transactions.typed_transaction import TypedTransaction
from hexbytes import HexBytes

from mintq import errors
from mintq.settings import QueueSettings
from mintq.units import Wei, gwei_to_wei
from mintq.worker import repository, rules
from mintq.worker.batches import Attempt, Batch, BatchStatus
from mintq.worker.context import REBROADCAST_SECONDS
from mintq.worker.tracker import Tracker


class Recovery(Tracker):
    """A ``Tracker`` that also reconciles, drops, resends and replaces."""

    # --- recovery and replacement -------------------------------------------------------

    def reconcile(self, settings: QueueSettings, deadline: float, *, wait: bool = True) -> list[Batch]:
        """Settle every unfinished batch of this signer; returns the ones still in flight.

        Each batch ends one of three ways: a receipt for one of its attempts (finalised),
        its nonce provably used by a transaction that is not one of its attempts (dropped,
        items back in line uncharged), or still pending (resent, replaced if stuck). With
        ``wait``, each pending one is awaited (``await_receipt``) before the next; ``deadline``
        is a ``clock()`` value. Raises ``errors.ChainError`` / ``errors.SigningError`` (a
        replacement) / ``errors.DeadlineReached`` as a cycle does.
        """
        still: list[Batch] = []
        latest = self.latest_nonce()
        base_fee: Wei | None = None
        for batch in self.inflight():
            if batch.nonce < latest:
                if not self.settle(batch, settings):
                    still.append(batch)  # its receipt may still be on its way: look again later
                continue
            if base_fee is None:
                base_fee = self.ctx.chain.fees().base_fee
            current = self.keep_alive(batch, settings, base_fee)
            if wait and self.await_receipt(current, settings, deadline):
                continue
            still.append(current)
        return still

    def latest_nonce(self) -> int:
        """The signer's transaction count at the latest block: every batch below it is mined
        (one of its attempts, or another transaction at its nonce); none at or above it is.
        Raises ``errors.ChainUnavailable``."""
        ctx = self.ctx
        return ctx.chain.nonce(ctx.signer_address, "latest")

    def settle(self, batch: Batch, settings: QueueSettings) -> bool:
        """End a batch whose nonce is used (below ``latest_nonce``): finalise it from its
        receipt, or drop it once the nonce has looked used without a receipt for
        ``drop_grace_seconds``. False while it waits out that grace. Raises
        ``errors.ChainUnavailable`` (receipts) or ``errors.DatabaseError``."""
        ctx = self.ctx
        receipt = self.find_receipt(batch)
        if receipt is not None:
            ctx.fault("after_receipt")
            self.finalize(batch, receipt, settings)
            return True
        first_seen = self._nonce_passed.setdefault(batch.id, ctx.clock())
        if not rules.drop_due(first_seen=first_seen, now=ctx.clock(), grace=ctx.drop_grace_seconds):
            return False
        self.drop(batch)
        return True

    def drop(self, batch: Batch) -> None:
        """The batch's nonce was used by another transaction: dropped, its requests back in line
        uncharged (a batch finished meanwhile is left as it is)."""
        reason = f"nonce {batch.nonce} was consumed by a transaction that is not this batch's"
        repository.drop(self.ctx.conn, batch.id, reason)
        self.ctx.telemetry.event(
            "batch_dropped",
            "batch dropped",
            level=logging.WARNING,
            summary={"batches_dropped": 1},
            batch_id=str(batch.id),
            nonce=batch.nonce,
            reason=reason,
        )

    def keep_alive(self, batch: Batch, settings: QueueSettings, base_fee: Wei) -> Batch:
        """A batch not yet mined: replaced at raised fees when stuck (see ``rules.is_stuck``),
        else its latest attempt resent when never sent by this run, still ``signed``, or last
        sent ``REBROADCAST_SECONDS`` ago. ``base_fee`` is the latest block's, in wei per gas.
        Returns the batch with any new attempt; raises as ``replace`` and ``send_latest``."""
        ctx = self.ctx
        latest = batch.latest
        if rules.is_stuck(
            age_seconds=latest.age_seconds,
            stuck_after=settings.stuck_after_seconds,
            max_fee_per_gas=latest.max_fee_per_gas,
            base_fee=base_fee,
        ):
            # Not mined in time, never accepted, or priced out by a rising base fee (it would
            # wait for the base fee to fall): the same batch, nonce and calldata, higher fees.
            replaced = self.replace(batch, settings)
            if replaced is not None:
                return replaced
            # At the fee ceiling: no replacement, but keep the latest attempt in the node's pool.
        last_sent = self._last_sent.get(latest.tx_hash)
        if (
            batch.status == BatchStatus.SIGNED
            or last_sent is None
            or ctx.clock() - last_sent >= REBROADCAST_SECONDS
        ):
            outcome = self.send_latest(batch)
            ctx.telemetry.event(
                "batch_rebroadcast",
                "batch rebroadcast",
                batch_id=str(batch.id),
                nonce=batch.nonce,
                outcome=outcome.value,
            )
        return batch

    def replace(self, batch: Batch, settings: QueueSettings) -> Batch | None:
        """Re-sign the batch at its nonce with the same calldata and both fees raised, record
        the new attempt, then broadcast it; returns the batch with it, or None when the fees
        needed are above the ceiling (``max_fee_per_gas_gwei``; the cycle then reports
        ``FeeCeilingReached`` as its refusal). Whichever attempt is mined wins. Raises
        ``errors.SigningError``, ``errors.ChainError``."""
        ctx = self.ctx
        latest = batch.latest
        ceiling = gwei_to_wei(settings.max_fee_per_gas_gwei)
        fees = rules.replacement_fees(
            max_fee_per_gas=latest.max_fee_per_gas,
            max_priority_fee_per_gas=latest.max_priority_fee_per_gas,
            quote=ctx.chain.fees(),
            bump_factor=settings.bump_factor,
            ceiling=ceiling,
        )
        if not fees.allowed:
            ctx.holding = errors.FeeCeilingReached(
                f"batch nonce {batch.nonce} is not mined and replacing it needs a max fee of"
                f" {fees.max_fee_per_gas} wei/gas, above the ceiling of {ceiling} wei/gas (max_fee_per_gas_gwei);"
                " its latest attempt keeps being resent"
            )
            ctx.telemetry.event(
                "fee_ceiling",
                "stuck batch not replaced: the fee ceiling is reached",
                level=logging.ERROR,
                metric={"FeeCeilingReached": 1},
                batch_id=str(batch.id),
                nonce=batch.nonce,
                wanted_max_fee_per_gas=fees.max_fee_per_gas,
                ceiling=ceiling,
            )
            return None
        # The same call at the same nonce and gas: the calldata is read back from the signed
        # bytes themselves; max_fee >= 2 * base_fee + tip, so the tip always fits under it.
        calldata = TypedTransaction.from_bytes(HexBytes(latest.raw_tx)).as_dict()["data"]
        signed = ctx.sign(
            nonce=batch.nonce,
            data=bytes(calldata),
            gas=batch.gas_limit,
            max_fee_per_gas=fees.max_fee_per_gas,
            max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
        )
        attempt = Attempt(
            tx_hash=signed.tx_hash,
            raw_tx=signed.raw,
            number=latest.number + 1,
            max_fee_per_gas=fees.max_fee_per_gas,
            max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
            age_seconds=0.0,
        )
        repository.record_replacement(ctx.conn, batch, attempt)
        ctx.telemetry.event(
            "batch_replaced",
            "stuck batch replaced",
            level=logging.WARNING,
            metric={"BatchReplaced": 1},
            summary={"batches_replaced": 1},
            batch_id=str(batch.id),
            nonce=batch.nonce,
            tx_hash=attempt.tx_hash,
            attempt=attempt.number,
            max_fee_per_gas=attempt.max_fee_per_gas,
            max_priority_fee_per_gas=attempt.max_priority_fee_per_gas,
        )
        replaced = batch.with_attempt(attempt)
        self.send_latest(replaced)
        return replaced
