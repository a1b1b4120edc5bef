"""What the parts of one signer's worker share: its connection, chain, signer, clock and
telemetry. Tests swap ``clock``, ``sleep``, ``fault`` and ``drop_grace_seconds`` on the
worker; every part reads them here at each use."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mintq import chain as chainlib
from mintq import db, errors, gas
from mintq.signer import SignedTx, Signer, TxParams
from mintq.units import Wei
from mintq.worker.faults import FaultHook, no_fault
from mintq.worker.telemetry import Telemetry

#: A node that accepted a transaction may still lose it; resend the same bytes this often.
REBROADCAST_SECONDS = 10.0
#: How long a batch's nonce must look used, with no receipt for any of its attempts, before the
#: batch counts as dropped. A load-balanced RPC can report the nonce from a node that is ahead
#: of the one answering for receipts; dropping at once would re-mint a batch that was mined.
DROP_GRACE_SECONDS = 30.0
#: How long a measured gas.FreshMintCost is used before it is measured again.
FRESH_COST_SECONDS = 60.0
NO_WEI = Wei(0)


@dataclass
class CycleReads:
    """What one cycle reads from the chain once and reuses: the fee quote, the block gas limit
    and the signer's balance (None until read), and the most the cycle's recorded batches may
    cost (gas limit x max fee, wei). The supply is never among them: another signer's batch
    mined since would make a cached one promise mints that are gone (``Dispatcher.dispatch``)."""

    fees: chainlib.Fees | None = None
    block_gas_limit: int | None = None
    balance: Wei | None = None
    committed: Wei = NO_WEI


@dataclass(kw_only=True, eq=False)
class Context:
    """One signer's worker: ``clock`` gives seconds (``time.monotonic`` by default)."""

    conn: db.Conn
    chain: chainlib.Chain
    signer: Signer
    chain_id: int
    gas_headroom: float = 1.1
    poll_seconds: float = 0.25
    drop_grace_seconds: float = DROP_GRACE_SECONDS
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    #: called at each name in ``faults.CRASH_POINTS``; tests raise or kill the process there
    fault: FaultHook = no_fault
    telemetry: Telemetry = field(default_factory=Telemetry)
    #: why this cycle holds work back (a fault, or a batch it cannot replace under the fee
    #: ceiling), recorded as the signer's refusal for the status endpoints; reset every cycle
    holding: errors.MintqError | None = None
    #: chain reads that cannot change within a cycle; a new one as each cycle starts
    reads: CycleReads = field(default_factory=CycleReads)
    #: when the fresh-recipient cost was measured (a ``clock()`` value) and what it was
    fresh_cost_at: tuple[float, gas.FreshMintCost | None] | None = None

    @property
    def signer_address(self) -> str:
        """The signer's EIP-55 address."""
        return self.signer.address

    def fees(self) -> chainlib.Fees:
        """The chain's EIP-1559 fee quote (wei per gas), read once per cycle: within a cycle
        (seconds) its room for the base fee to double still holds."""
        if self.reads.fees is None:
            self.reads.fees = self.chain.fees()
        return self.reads.fees

    def block_gas_limit(self) -> int:
        """The latest block's gas limit (gas units), read once per cycle."""
        if self.reads.block_gas_limit is None:
            self.reads.block_gas_limit = self.chain.block_gas_limit()
        return self.reads.block_gas_limit

    def balance(self) -> Wei:
        """The signer's balance at the pending block (wei), read once per cycle; what this
        cycle's batches may cost is counted apart, in ``reads.committed``."""
        if self.reads.balance is None:
            self.reads.balance = self.chain.balance(self.signer_address)
        return self.reads.balance

    def sign(
        self, *, nonce: int, data: bytes, gas: int, max_fee_per_gas: Wei, max_priority_fee_per_gas: Wei
    ) -> SignedTx:
        """The one shape of transaction this worker sends (``TxParams``: EIP-1559, to the
        token, no value), signed at ``nonce`` with ``gas`` (gas units) and the fees (wei per
        gas). Raises ``errors.SigningError`` (``SignerUnavailable`` for a KMS outage) or
        ``errors.DeadlineReached``."""
        return self.signer.sign(
            TxParams(
                type=2,
                chainId=self.chain_id,
                nonce=nonce,
                to=self.chain.token,
                value=Wei(0),
                data=data,
                gas=gas,
                maxFeePerGas=max_fee_per_gas,
                maxPriorityFeePerGas=max_priority_fee_per_gas,
            )
        )
