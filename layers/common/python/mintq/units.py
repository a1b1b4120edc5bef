"""Money on chain as named types: wei (integers, what transactions carry) and gwei (the
unit operators set fee ceilings in).

Every gwei setting becomes wei here, through web3's own converter (``Web3.to_wei`` is
``eth_utils.currency.to_wei``; imported from eth_utils so the enqueue and status functions
can use it without importing web3): a float such as ``0.1`` converts by its decimal text,
never by binary multiplication.
"""

from __future__ import annotations

from typing import NewType

from eth_utils.currency import to_wei

__all__ = ["Gwei", "Wei", "gwei_to_wei"]

#: An amount in wei (10**-18 ether): fees per gas, balances, costs. web3 names its own the same.
Wei = NewType("Wei", int)
#: A price in gwei (10**9 wei), as operators write it (``max_fee_per_gas_gwei``).
Gwei = NewType("Gwei", float)


def gwei_to_wei(gwei: float) -> Wei:
    """``gwei`` (an int or float, ≥ 0) in wei, rounded down to a whole wei."""
    return Wei(int(to_wei(gwei, "gwei")))
