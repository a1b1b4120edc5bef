"""Gas for ``batchMint``: the limit a batch is signed with, and how batches share blocks.

The gas limit. ``eth_estimateGas`` finds the least gas at which the call succeeds on the
state it simulates; what matters is whether execution, a block or two later, can need more.
For ``batchMint`` it can only do so through storage values, never through access costs:

- Cold/warm (EIP-2929): every slot and account starts cold in *each* transaction, in the
  simulation as on chain; a repeat of a recipient inside one batch is warm in both.
- Balance slots (EIP-2200/3529): the first write of a slot costs 20,000 when its value at the
  start of the transaction is zero, 2,900 otherwise; a repeat write of a dirty slot costs 100
  either way. A fresh recipient (zero balance) is simulated at the dearest price; a recipient
  holding tokens is simulated 17,100 cheaper, and would cost that much more if it emptied its
  balance before the batch is mined.
- totalSupply: written once per batch; dearer only when it is zero, and it never returns to zero
  while the token has no burn (MintToken has none).
- Refunds (EIP-3529) are paid back after execution and never count towards the limit; raising a
  balance earns none. EIP-150's 63/64 rule withholds gas only from a CALL, and ``batchMint``
  makes none (the role and pause checks are storage reads), so no gas is held back.
- Calldata is priced from the signed bytes themselves, fixed since the simulation.

So ``FreshMintCost`` measures, once per cycle, what recipients cost at their dearest: fresh
(zero-balance) random addresses with no zero byte (a zero calldata byte is 12 gas cheaper),
and a repeat of one of them. ``gas_limit`` signs a batch with the larger of its own estimate
and that worst case for its shape (distinct recipients, repeats), so a batch whose recipients
all emptied their balances still fits; for fresh recipients the two agree to a few gas per
recipient, and no other margin is added.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

#: What a zero-valued slot's first write costs over a non-zero one's (20,000 - 2,900).
SSTORE_SET_OVER_RESET = 17_100
#: Fresh recipients in the calibration batch beyond the first (the per-recipient step is their mean).
CALIBRATION_SAMPLE = 32

Estimate = Callable[[Sequence[str]], int]


def _fresh_address() -> str:
    """A random address with no zero byte: its calldata word costs the most any address can."""
    raw = bytes(b or 1 for b in secrets.token_bytes(20))
    return "0x" + raw.hex()


@dataclass(frozen=True)
class FreshMintCost:
    """Gas of ``batchMint`` for recipients at their dearest, as the chain estimates it.

    ``first``: one fresh recipient (intrinsic gas, calldata, the fixed part, totalSupply);
    ``per_fresh``: each further distinct fresh recipient; ``per_repeat``: each repeat of a
    recipient already in the batch. All in gas.
    """

    first: int
    per_fresh: int
    per_repeat: int

    @classmethod
    def measure(cls, estimate: Estimate) -> FreshMintCost:
        """Three estimates of random fresh recipients. Raises ``errors.SimulatedRevert`` if the
        token refuses them (the caller then falls back to a ratio of the batch's own estimate)."""
        sample = [_fresh_address() for _ in range(CALIBRATION_SAMPLE + 1)]
        first = estimate(sample[:1])
        many = estimate(sample)
        repeat = estimate([sample[0], sample[0]])
        return cls(
            first=first,
            per_fresh=math.ceil((many - first) / CALIBRATION_SAMPLE),
            per_repeat=max(repeat - first, 0),
        )

    def fits(self, budget: int) -> int:
        """How many distinct fresh recipients a batch of ``budget`` gas holds (at least one)."""
        return max(1, 1 + (budget - self.first) // max(self.per_fresh, 1))

    def worst_case_fresh(self, distinct: int, repeats: int = 0) -> int:
        """Gas of a batch of ``distinct`` fresh recipients and ``repeats`` repeats of them."""
        if distinct <= 0:
            return 0
        return self.first + (distinct - 1) * self.per_fresh + repeats * self.per_repeat

    def worst_case(self, recipients: Sequence[str]) -> int:
        """Gas ``batchMint(recipients)`` can need if every distinct recipient is fresh."""
        distinct = len({r.lower() for r in recipients})
        return self.worst_case_fresh(distinct, len(recipients) - distinct)


def gas_limit(
    estimate: int, recipients: Sequence[str], cost: FreshMintCost | None, *, fallback_ratio: float
) -> int:
    """The gas limit to sign a batch with: its estimate, raised to the worst case for its shape.

    Without a measured ``cost`` (the token refused the calibration recipients) the estimate is
    multiplied by ``fallback_ratio`` instead.
    """
    if cost is None:
        return int(estimate * fallback_ratio)
    return max(estimate, cost.worst_case(recipients))


def batch_gas_budget(block_gas_limit: int, gas_target: int, tx_gas_cap: int) -> int:
    """Gas per batch so that whole blocks fill: the block limit split into the fewest equal
    parts each within ``gas_target`` and the per-transaction cap (e.g. 30M with a 14M target:
    three of 10M, not two of 14M that leave 2M; 150M with the 2**24 cap: nine of 16.67M)."""
    part = max(1, min(gas_target, tx_gas_cap, block_gas_limit))
    return block_gas_limit // math.ceil(block_gas_limit / part)


def inflight_for(block_gas_limit: int, batch_gas: int, *, blocks: int = 2) -> int:
    """How many batches keep the next ``blocks`` blocks full (at least one)."""
    # A budget from batch_gas_budget divides the block up to rounding: 9.00000004 parts are 9.
    return max(1, blocks * math.ceil(block_gas_limit / max(batch_gas, 1) - 0.001))
