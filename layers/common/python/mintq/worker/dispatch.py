"""Building one batch: nonce, fees, gas budget, bisection, supply cap, shrink, sign, record.

Everything from the claim to the write-ahead record happens in one transaction
(``repository.claiming``), so a crash before its commit leaves the claimed requests pending;
after it, the batch is recorded with its signed bytes and is the tracker's to send and settle.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from mintq import chain as chainlib
from mintq import errors
from mintq.settings import QueueSettings
from mintq.units import Wei, gwei_to_wei
from mintq.worker import lookups, repository, rules
from mintq.worker.batches import Claimed, NewBatch
from mintq.worker.context import Context
from mintq.worker.sizing import Sizing


class BatchBlocked(errors.ChainError):
    """Every batchMint reverts, whoever the recipient: the contract or the signer is at fault."""

    code = "batch_blocked"


@dataclass(frozen=True)
class _Plan:
    """What a batch is signed with, fixed before its requests are claimed."""

    nonce: int
    fees: chainlib.Fees
    budget: int
    supply: chainlib.Supply


@dataclass(frozen=True)
class _Recorded:
    """A batch as recorded, for its log line."""

    tx_hash: str
    size: int
    gas_estimate: int
    gas_limit: int


class Dispatcher:
    """Builds and records new batches for one signer (``Context``)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.sizing = Sizing(ctx)

    def dispatch(self, settings: QueueSettings, *, nonce: int | None = None) -> uuid.UUID | None:
        """Claim, simulate, sign and record one batch in one transaction; returns its id, or
        None when nothing was left to send. Broadcast comes after (``Tracker.broadcast``).

        ``nonce`` is the next one after batches already in flight (pipelining); without it the
        chain's pending count, checked against our records, decides. Raises ``ChainError``
        (``FeeCeilingReached``, ``NonceConflict``, ``SignerUnderfunded``, ``BatchBlocked``) or
        ``SigningError`` with nothing recorded and every claimed request pending again.
        """
        ctx = self.ctx
        # Read per batch, never per cycle: another signer's batch mined since would make a cached
        # remainingMints, less the batches still in flight, promise supply that is gone.
        supply = ctx.chain.supply()
        quote = ctx.fees()
        plan = _Plan(
            nonce=self._next_nonce() if nonce is None else nonce,
            fees=rules.fee_quote(quote, gwei_to_wei(settings.max_fee_per_gas_gwei)),
            budget=self.sizing.budget(settings),
            supply=supply,
        )
        batch_id = uuid.uuid4()
        limit = self.sizing.claim_limit(settings, plan.budget)
        with repository.claiming(ctx.conn, limit=limit, batch_id=batch_id) as claimed:
            recorded = self._record(batch_id, claimed, plan) if claimed else None
        if recorded is None:
            return None
        ctx.fault("after_record")
        ctx.telemetry.event(
            "batch_recorded",
            "batch recorded",
            batch_id=str(batch_id),
            nonce=plan.nonce,
            tx_hash=recorded.tx_hash,
            size=recorded.size,
            gas_estimate=recorded.gas_estimate,
            gas_limit=recorded.gas_limit,
        )
        return batch_id

    def _record(self, batch_id: uuid.UUID, claimed: list[Claimed], plan: _Plan) -> _Recorded | None:
        """Inside the claiming transaction: keep what may be minted and fits the budget, sign,
        record. None when nothing is left to send."""
        ctx = self.ctx
        ctx.fault("after_claim")
        items = claimed
        if plan.supply.remaining_mints is not None:
            items = self._within_supply(items, plan.supply.remaining_mints)
        if not items:
            return None
        items, estimate, rejected = self._isolate(items)
        for item, reason in rejected:
            self._fail([item], f"mint would revert: {reason}")
        while (
            len(items) > 1 and (needed := self.sizing.gas_limit(estimate, _recipients(items))) > plan.budget
        ):
            # Over the gas budget (target, block limit or the 2**24 per-tx cap): keep what fits.
            keep = rules.shrink(count=len(items), gas=needed, budget=plan.budget)
            repository.release(ctx.conn, items[keep:])
            items = items[:keep]
            estimate = ctx.chain.estimate_batch_mint(ctx.signer_address, _recipients(items))
        if not items:
            return None
        gas_limit = min(self.sizing.gas_limit(estimate, _recipients(items)), self.sizing.hard_cap())
        fees = plan.fees
        self._check_funds(gas_limit, fees.max_fee_per_gas)
        signed = ctx.sign(
            nonce=plan.nonce,
            data=ctx.chain.batch_mint_data(_recipients(items)),
            gas=gas_limit,
            max_fee_per_gas=fees.max_fee_per_gas,
            max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
        )
        ctx.fault("after_sign")
        repository.insert_signed(
            ctx.conn,
            NewBatch(
                id=batch_id,
                chain_id=ctx.chain_id,
                signer=ctx.signer_address,
                token=ctx.chain.token,
                nonce=plan.nonce,
                tx_hash=signed.tx_hash,
                raw_tx=signed.raw,
                mint_count=len(items),
                gas_limit=gas_limit,
                max_fee_per_gas=fees.max_fee_per_gas,
                max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
                amount_per_mint=plan.supply.amount_per_mint,
            ),
        )
        return _Recorded(tx_hash=signed.tx_hash, size=len(items), gas_estimate=estimate, gas_limit=gas_limit)

    def _next_nonce(self) -> int:
        ctx = self.ctx
        pending = ctx.chain.nonce(ctx.signer_address, "pending")
        used = lookups.highest_used_nonce(ctx.conn, chain_id=ctx.chain_id, signer=ctx.signer_address)
        if used is not None and used >= pending:
            raise errors.NonceConflict(
                f"the chain reports nonce {pending} but this signer's nonce {used} is recorded as mined;"
                " refusing to reuse a nonce (was the chain reset?)"
            )
        return pending

    def _within_supply(self, items: list[Claimed], remaining_mints: int) -> list[Claimed]:
        """Batches still in flight, this signer's or another's, take their share first."""
        ctx = self.ctx
        inflight = lookups.inflight_mints(ctx.conn, chain_id=ctx.chain_id, token=ctx.chain.token)
        split = rules.supply_split(
            claimed=len(items), remaining_mints=remaining_mints, inflight_mints=inflight
        )
        # Some of the supply may come back if an in-flight batch fails: those wait and see.
        repository.release(ctx.conn, items[split.fits : split.fits + split.wait])
        self._fail(
            items[split.fits + split.wait :],
            f"max supply reached: the token has {remaining_mints} mints left",
        )
        return items[: split.fits]

    def _simulate(self, group: Sequence[Claimed]) -> str | None:
        try:
            self.ctx.chain.estimate_batch_mint(self.ctx.signer_address, _recipients(group))
        except errors.SimulatedRevert as exc:
            return exc.reason
        return None

    def _isolate(self, items: list[Claimed]) -> tuple[list[Claimed], int, list[tuple[Claimed, str]]]:
        """Simulate the batch; if it would revert, find the recipients that make it revert.
        Returns the items kept, their gas estimate (0 when none is kept) and the rejected
        items with their revert reasons."""
        ctx, sender = self.ctx, self.ctx.signer_address
        try:
            return items, ctx.chain.estimate_batch_mint(sender, _recipients(items)), []
        except errors.SimulatedRevert:
            pass
        try:
            ctx.chain.estimate_batch_mint(sender, [sender])
        except errors.SimulatedRevert as exc:
            raise BatchBlocked(f"batchMint reverts for any recipient: {exc.reason}") from exc
        good, rejected = rules.bisect(items, self._simulate)
        if not good:
            return [], 0, rejected
        try:
            return good, ctx.chain.estimate_batch_mint(sender, _recipients(good)), rejected
        except errors.SimulatedRevert as exc:
            raise BatchBlocked(f"the non-reverting recipients still revert together: {exc.reason}") from exc

    def _check_funds(self, gas_limit: int, max_fee_per_gas: Wei) -> None:
        """Refuse, before anything is recorded, a batch the signer cannot pay for: its items
        roll back to pending instead of waiting in ``processing`` behind a transaction no
        node will take. The balance (at the pending block: batches already sent are paid
        for there) is read once per cycle; each batch recorded since counts at its dearest,
        gas limit times max fee."""
        ctx = self.ctx
        needed = Wei(gas_limit * max_fee_per_gas)
        balance = ctx.balance()
        committed = ctx.reads.committed
        if balance - committed < needed:
            raise errors.SignerUnderfunded(
                f"the signer {ctx.signer_address} holds {balance - committed} wei for new batches but a"
                f" batch may cost up to {needed} wei (gas limit {gas_limit} x max fee {max_fee_per_gas}"
                " wei/gas); requests stay pending until it is funded"
            )
        ctx.reads.committed = Wei(committed + needed)

    def _fail(self, items: Sequence[Claimed], reason: str) -> None:
        if not items:
            return
        repository.fail(self.ctx.conn, items, reason)
        self.ctx.telemetry.event(
            "requests_failed",
            "requests failed",
            level=logging.WARNING,
            metric={"MintFailed": len(items)},
            summary={"requests_failed": len(items)},
            count=len(items),
            reason=reason,
            queue_ids=[str(i.id) for i in items],
        )


def _recipients(items: Sequence[Claimed]) -> list[str]:
    return [i.payer_address for i in items]
