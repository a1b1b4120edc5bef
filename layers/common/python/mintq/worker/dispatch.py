"""Building one batch: nonce, fees, gas budget, bisection, supply cap, shrink, sign, record.

Everything from the claim to the write-ahead record happens in one transaction, so a crash
before its commit leaves the claimed requests pending; after it, the batch is recorded with
its signed bytes and is the tracker's to send and settle.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

from mintq import chain as chainlib
from mintq import db, errors, gas
from mintq.settings import QueueSettings
from mintq.units import Wei, gwei_to_wei
from mintq.worker import batches, lookups, rules
from mintq.worker.batches import Claimed
from mintq.worker.context import FRESH_COST_SECONDS, Context

#: Gas per mint assumed before any batch of this token has been confirmed (a fresh-address
#: ERC-20 mint costs ~25k; erring high makes the first batch smaller, erring low only costs
#: a re-estimate, since a batch over its gas budget is shrunk before it is signed).
DEFAULT_GAS_PER_MINT = 26_000


class BatchBlocked(errors.ChainError):
    """Every batchMint reverts, whoever the recipient: the contract or the signer is at fault."""

    code = "batch_blocked"


class Dispatcher:
    """Builds and records new batches for one signer (``Context``)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

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
        # Within a cycle (seconds) the quote's room for the base fee to double still holds.
        quote: chainlib.Fees = ctx.read("fees", ctx.chain.fees)
        fees = rules.fee_quote(quote, gwei_to_wei(settings.max_fee_per_gas_gwei))
        nonce = self._next_nonce() if nonce is None else nonce
        hard_cap = min(chainlib.TX_GAS_CAP, self._block_gas_limit())
        budget = gas.batch_gas_budget(self._block_gas_limit(), settings.batch_gas_target, chainlib.TX_GAS_CAP)
        limit = self._batch_limit(settings, budget)
        batch_id = uuid.uuid4()
        with db.transaction(ctx.conn):
            items = batches.claim(ctx.conn, limit=limit, batch_id=batch_id)
            if not items:
                return None
            ctx.fault("after_claim")
            if supply.remaining_mints is not None:
                items = self._within_supply(items, supply.remaining_mints)
            if not items:
                return None
            items, estimate, rejected = self._isolate(items)
            for item, reason in rejected:
                self._fail([item], f"mint would revert: {reason}")
            cost = self._fresh_cost()
            while (needed := self._gas_limit(estimate, items, cost)) > budget and len(items) > 1:
                # Over the gas budget (target, block limit or the 2**24 per-tx cap): keep what fits.
                keep = rules.shrink(count=len(items), gas=needed, budget=budget)
                batches.release(ctx.conn, items[keep:])
                items = items[:keep]
                estimate = ctx.chain.estimate_batch_mint(ctx.signer_address, [i.payer_address for i in items])
            if not items:
                return None
            gas_limit = min(self._gas_limit(estimate, items, cost), hard_cap)
            self._check_funds(gas_limit, fees.max_fee_per_gas)
            signed = ctx.sign(
                nonce=nonce,
                data=ctx.chain.batch_mint_data([i.payer_address for i in items]),
                gas=gas_limit,
                max_fee_per_gas=fees.max_fee_per_gas,
                max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
            )
            ctx.fault("after_sign")
            batches.insert_signed(
                ctx.conn,
                batches.NewBatch(
                    id=batch_id,
                    chain_id=ctx.chain_id,
                    signer=ctx.signer_address,
                    token=ctx.chain.token,
                    nonce=nonce,
                    tx_hash=signed.tx_hash,
                    raw_tx=signed.raw,
                    mint_count=len(items),
                    gas_limit=gas_limit,
                    max_fee_per_gas=fees.max_fee_per_gas,
                    max_priority_fee_per_gas=fees.max_priority_fee_per_gas,
                    amount_per_mint=supply.amount_per_mint,
                ),
            )
        ctx.fault("after_record")
        ctx.telemetry.event(
            "batch_recorded",
            "batch recorded",
            batch_id=str(batch_id),
            nonce=nonce,
            tx_hash=signed.tx_hash,
            size=len(items),
            gas_estimate=estimate,
            gas_limit=gas_limit,
        )
        return batch_id

    def _block_gas_limit(self) -> int:
        return int(self.ctx.read("block_gas_limit", self.ctx.chain.block_gas_limit))

    def inflight_window(self, settings: QueueSettings) -> int:
        """Batches that keep the next two blocks full, at the gas a batch will carry: the
        budget, or ``max_batch_size`` fresh mints when that is less."""
        block_gas = self._block_gas_limit()
        batch_gas = gas.batch_gas_budget(block_gas, settings.batch_gas_target, chainlib.TX_GAS_CAP)
        cost = self._fresh_cost()
        if cost is not None:
            batch_gas = min(batch_gas, cost.worst_case_fresh(settings.max_batch_size))
        return gas.inflight_for(block_gas, batch_gas)

    def _fresh_cost(self) -> gas.FreshMintCost | None:
        ctx = self.ctx

        def measure() -> gas.FreshMintCost | None:
            try:
                return gas.FreshMintCost.measure(
                    lambda r: ctx.chain.estimate_batch_mint(ctx.signer_address, r)
                )
            except errors.SimulatedRevert:
                return None  # the token refuses random recipients: gas_headroom it is

        # Kept across cycles for FRESH_COST_SECONDS: three estimates per cycle would slow a
        # worker with one batch per cycle; the contract's costs do not move between them.
        now = ctx.clock()
        if ctx.fresh_cost_at is None or now - ctx.fresh_cost_at[0] >= FRESH_COST_SECONDS:
            ctx.fresh_cost_at = (now, measure())
        return ctx.fresh_cost_at[1]

    def _batch_limit(self, settings: QueueSettings, budget: int) -> int:
        """How many requests to claim: the operator's cap, or what the gas budget holds."""
        cost = self._fresh_cost()
        if cost is not None:  # fresh recipients at their dearest fill the budget, no more
            return max(1, min(settings.max_batch_size, cost.fits(budget)))
        ctx = self.ctx
        per_mint = lookups.recent_gas_per_mint(ctx.conn, chain_id=ctx.chain_id, token=ctx.chain.token)
        return rules.batch_limit(
            max_batch_size=settings.max_batch_size,
            gas_budget=budget,
            gas_per_mint=per_mint or DEFAULT_GAS_PER_MINT,
        )

    def _gas_limit(self, estimate: int, items: Sequence[Claimed], cost: gas.FreshMintCost | None) -> int:
        """See ``mintq.gas``: the estimate, raised to what the batch needs if every recipient is fresh."""
        return gas.gas_limit(
            estimate, [i.payer_address for i in items], cost, fallback_ratio=self.ctx.gas_headroom
        )

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
        batches.release(ctx.conn, items[split.fits : split.fits + split.wait])
        self._fail(
            items[split.fits + split.wait :],
            f"max supply reached: the token has {remaining_mints} mints left",
        )
        return items[: split.fits]

    def _simulate(self, group: Sequence[Claimed]) -> str | None:
        try:
            self.ctx.chain.estimate_batch_mint(self.ctx.signer_address, [i.payer_address for i in group])
        except errors.SimulatedRevert as exc:
            return exc.reason
        return None

    def _isolate(self, items: list[Claimed]) -> tuple[list[Claimed], int, list[tuple[Claimed, str]]]:
        """Simulate the batch; if it would revert, find the recipients that make it revert.
        Returns the items kept, their gas estimate (0 when none is kept) and the rejected
        items with their revert reasons."""
        ctx, sender = self.ctx, self.ctx.signer_address
        try:
            return items, ctx.chain.estimate_batch_mint(sender, [i.payer_address for i in items]), []
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
            return good, ctx.chain.estimate_batch_mint(sender, [i.payer_address for i in good]), rejected
        except errors.SimulatedRevert as exc:
            raise BatchBlocked(f"the non-reverting recipients still revert together: {exc.reason}") from exc

    def _check_funds(self, gas_limit: int, max_fee_per_gas: Wei) -> None:
        """Refuse, before anything is recorded, a batch the signer cannot pay for: its items
        roll back to pending instead of waiting in ``processing`` behind a transaction no
        node will take."""
        ctx = self.ctx
        needed = gas_limit * max_fee_per_gas
        balance = ctx.chain.balance(ctx.signer_address)
        if balance < needed:
            raise errors.SignerUnderfunded(
                f"the signer {ctx.signer_address} holds {balance} wei but a batch may cost up to"
                f" {needed} wei (gas limit {gas_limit} x max fee {max_fee_per_gas} wei/gas);"
                " requests stay pending until it is funded"
            )

    def _fail(self, items: Sequence[Claimed], reason: str) -> None:
        if not items:
            return
        batches.fail(self.ctx.conn, items, reason)
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
