"""How big a batch is and how many are in flight, from the chain's block gas limit and what
``batchMint`` costs (``mintq.gas`` has the rules and why the gas limit is safe).

Units: gas in gas units; a batch's size in requests.
"""

from __future__ import annotations

from collections.abc import Sequence

from mintq import chain as chainlib
from mintq import errors, gas
from mintq.settings import QueueSettings
from mintq.worker import lookups, rules
from mintq.worker.context import FRESH_COST_SECONDS, Context

#: Gas per mint assumed before any batch of this token has been confirmed (a fresh-address
#: ERC-20 mint costs ~25k; erring high makes the first batch smaller, erring low only costs
#: a re-estimate, since a batch over its gas budget is shrunk before it is signed).
DEFAULT_GAS_PER_MINT = 26_000


class Sizing:
    """The gas sizing of one signer's batches (``Context``); chain reads are cached per cycle
    (block gas limit) or for ``FRESH_COST_SECONDS`` (the fresh-recipient cost)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def hard_cap(self) -> int:
        """The most gas one transaction may carry: the block limit or the 2**24 per-tx cap."""
        return min(chainlib.TX_GAS_CAP, self.ctx.block_gas_limit())

    def budget(self, settings: QueueSettings) -> int:
        """Gas per batch so that whole blocks fill (``gas.batch_gas_budget``)."""
        return gas.batch_gas_budget(
            self.ctx.block_gas_limit(), settings.batch_gas_target, chainlib.TX_GAS_CAP
        )

    def inflight_window(self, settings: QueueSettings) -> int:
        """Batches that keep the next two blocks full (≥ 1), at the gas a batch will carry:
        the budget, or ``max_batch_size`` fresh mints when that is less."""
        block_gas = self.ctx.block_gas_limit()
        batch_gas = self.budget(settings)
        cost = self.fresh_cost()
        if cost is not None:
            batch_gas = min(batch_gas, cost.worst_case_fresh(settings.max_batch_size))
        return gas.inflight_for(block_gas, batch_gas)

    def claim_limit(self, settings: QueueSettings, budget: int) -> int:
        """How many requests to claim (≥ 1): the operator's cap, or what ``budget`` gas holds
        (fresh recipients at their dearest, else the token's recent gas per mint)."""
        cost = self.fresh_cost()
        if cost is not None:
            return max(1, min(settings.max_batch_size, cost.fits(budget)))
        ctx = self.ctx
        per_mint = lookups.recent_gas_per_mint(ctx.conn, chain_id=ctx.chain_id, token=ctx.chain.token)
        return rules.batch_limit(
            max_batch_size=settings.max_batch_size,
            gas_budget=budget,
            gas_per_mint=per_mint or DEFAULT_GAS_PER_MINT,
        )

    def gas_limit(self, estimate: int, recipients: Sequence[str]) -> int:
        """The gas limit to sign a batch with (``gas.gas_limit``): its ``estimate`` raised to
        what it needs if every recipient is fresh, or times ``gas_headroom`` when the token
        refused the calibration."""
        return gas.gas_limit(estimate, recipients, self.fresh_cost(), fallback_ratio=self.ctx.gas_headroom)

    def fresh_cost(self) -> gas.FreshMintCost | None:
        """What recipients cost at their dearest (``gas.FreshMintCost``), measured by three
        estimates and kept ``FRESH_COST_SECONDS``; None when the token refuses random
        recipients. Raises ``errors.ChainError`` as an estimate does."""
        ctx = self.ctx

        def measure() -> gas.FreshMintCost | None:
            try:
                return gas.FreshMintCost.measure(
                    lambda r: ctx.chain.estimate_batch_mint(ctx.signer_address, r)
                )
            except errors.SimulatedRevert:
                return None  # the token refuses random recipients: gas_headroom it is

        # Kept across cycles: three estimates per cycle would slow a worker with one batch per
        # cycle, and the contract's costs do not move between them.
        now = ctx.clock()
        if ctx.fresh_cost_at is None or now - ctx.fresh_cost_at[0] >= FRESH_COST_SECONDS:
            ctx.fresh_cost_at = (now, measure())
        return ctx.fresh_cost_at[1]
