"""The chain as the batch worker needs it: nonces, fees, simulation, broadcast, receipts.

Works with any token exposing ``batchMint(address[])``; supply views are optional.
web3 and transport exceptions never leave this module: an unreachable, slow or
rate-limiting node is ``errors.ChainUnavailable`` (an operational fault, never the
items' fault); a revert found by simulation is ``errors.SimulatedRevert``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import httpx
from eth_abi.abi import encode as abi_encode
from eth_utils.address import to_checksum_address
from web3.exceptions import ContractLogicError, TimeExhausted, Web3Exception, Web3RPCError
from web3.types import RPCEndpoint
from web3.types import TxParams as CallParams

from mintq import errors, rpc
from mintq.deadlines import Deadline
from mintq.node_replies import SendOutcome, classify_send_error, decode_revert, selector
from mintq.units import Wei

__all__ = ["BATCH_MINT", "TX_GAS_CAP", "Chain", "Fees", "Receipt", "SendOutcome", "Supply"]

BATCH_MINT = selector("batchMint(address[])")
_VIEWS = {
    name: selector(f"{name}()") for name in ("remainingMints", "amountPerMint", "maxSupply", "totalSupply")
}

# Per-transaction gas cap enforced since the Fusaka upgrade (EIP-7825).
TX_GAS_CAP = 2**24


@dataclass(frozen=True, kw_only=True)
class Fees:
    """EIP-1559 fees per gas, in wei."""

    base_fee: Wei
    max_fee_per_gas: Wei
    max_priority_fee_per_gas: Wei


@dataclass(frozen=True, kw_only=True)
class Receipt:
    """A mined transaction: ``status`` 1 (success) or 0 (reverted); ``gas_used`` in gas,
    ``effective_gas_price`` in wei per gas (None from a node that does not report it)."""

    tx_hash: str
    status: int
    block_number: int
    gas_used: int
    effective_gas_price: Wei | None


@dataclass(frozen=True, kw_only=True)
class Supply:
    """What the token's views tell: mints left (None: the token does not tell) and tokens per
    mint in the token's smallest unit (None: not told)."""

    remaining_mints: int | None
    amount_per_mint: int | None


def _revert_text(exc: ContractLogicError) -> str:
    return decode_revert(exc.data) if exc.data else str(exc)


@contextlib.contextmanager
def _rpc(action: str) -> Iterator[None]:
    try:
        yield
    except (httpx.HTTPError, TimeExhausted, OSError) as exc:
        raise errors.ChainUnavailable(f"{action}: {type(exc).__name__}: {exc}") from exc
    except Web3RPCError as exc:
        raise errors.ChainUnavailable(f"{action}: {exc}") from exc
    except Web3Exception as exc:
        raise errors.ChainError(f"{action}: {exc}") from exc


def _address_bytes(address: str) -> bytes:
    raw = bytes.fromhex(address.removeprefix("0x").removeprefix("0X"))
    if len(raw) != 20:
        raise ValueError(f"not a 20-byte address: {address!r}")
    return raw


class Chain:
    """``timeout``: seconds per JSON-RPC request, cut to what ``deadline`` leaves (the worker
    moves it every cycle); past the deadline a call raises ``errors.DeadlineReached`` unsent.
    web3's own retries are off: one call is one request (see ``mintq.rpc``)."""

    def __init__(
        self,
        rpc_url: str,
        token_address: str,
        *,
        timeout: float = rpc.DEFAULT_TIMEOUT,
        deadline: Deadline | None = None,
    ) -> None:
        self.deadline = deadline if deadline is not None else Deadline()
        self.w3 = rpc.web3(rpc_url, deadline=self.deadline, timeout=timeout)
        self.token = to_checksum_address(token_address)
        self._last_data: tuple[tuple[str, ...], bytes] | None = None

    @cached_property
    def chain_id(self) -> int:
        """The node's chain id (asked once). Raises ``ChainUnavailable``."""
        with _rpc("eth_chainId"):
            return int(self.w3.eth.chain_id)

    def nonce(self, address: str, block: Literal["latest", "pending"] = "pending") -> int:
        """``address``'s transaction count at ``block``: at ``latest``, every nonce below it is
        used on chain; at ``pending``, the node's pool counts too. Raises ``ChainUnavailable``."""
        with _rpc("eth_getTransactionCount"):
            return self.w3.eth.get_transaction_count(to_checksum_address(address), block)

    def balance(self, address: str) -> Wei:
        """The address's balance in wei at the pending block. Raises ``ChainUnavailable``."""
        with _rpc("eth_getBalance"):
            return Wei(self.w3.eth.get_balance(to_checksum_address(address), "pending"))

    def fees(self) -> Fees:
        """EIP-1559 fees (wei per gas): the latest base fee, the node's suggested tip, and a
        max fee with room for the base fee to double before inclusion. Raises
        ``ChainUnavailable``."""
        with _rpc("fee quote"):
            # web3's own Wei (a NewType of its own) becomes ours here, at the boundary.
            base_fee = Wei(self.w3.eth.get_block("latest").get("baseFeePerGas") or 0)
            tip = Wei(self.w3.eth.max_priority_fee)
        return Fees(base_fee=base_fee, max_fee_per_gas=Wei(2 * base_fee + tip), max_priority_fee_per_gas=tip)

    def block_gas_limit(self) -> int:
        """The latest block's gas limit, in gas. Raises ``ChainUnavailable``."""
        with _rpc("eth_getBlockByNumber"):
            return self.w3.eth.get_block("latest")["gasLimit"]

    def _view(self, name: str) -> int | None:
        try:
            with _rpc(name):
                raw = self.w3.eth.call({"to": self.token, "data": _VIEWS[name]})
        except errors.ChainUnavailable:
            raise
        except errors.ChainError:
            return None
        if len(raw) != 32:
            return None
        return int.from_bytes(raw, "big")

    def supply(self) -> Supply:
        """The token's supply views (``remainingMints``, ``amountPerMint``, else ``maxSupply``
        less ``totalSupply``); a view the token lacks is None. Raises ``ChainUnavailable``."""
        amount = self._view("amountPerMint")
        remaining = self._view("remainingMints")
        if remaining is None and amount:
            max_supply, total = self._view("maxSupply"), self._view("totalSupply")
            if max_supply is not None and total is not None:
                remaining = max(max_supply - total, 0) // amount
        return Supply(remaining_mints=remaining, amount_per_mint=amount)

    def batch_mint_data(self, recipients: Sequence[str]) -> bytes:
        """Calldata of ``batchMint(recipients)``; the last batch's is kept, since a dispatch
        simulates and then signs the same recipients (ABI-encoding 600 costs ~50 ms)."""
        key = tuple(recipients)
        if self._last_data is None or self._last_data[0] != key:
            # As 20-byte values: EIP-55 checksumming a thousand addresses (a keccak each) cost
            # more than the rest of a dispatch; a malformed address still fails (ValueError).
            data = BATCH_MINT + abi_encode(["address[]"], [[_address_bytes(r) for r in recipients]])
            self._last_data = (key, data)
        return self._last_data[1]

    def _batch_mint_call(self, sender: str, recipients: Sequence[str]) -> CallParams:
        return {
            "from": to_checksum_address(sender),
            "to": self.token,
            "data": self.batch_mint_data(recipients),
        }

    def estimate_batch_mint(self, sender: str, recipients: Sequence[str]) -> int:
        """Gas for ``sender`` to call ``batchMint(recipients)`` now (``eth_estimateGas``).
        Raises ``SimulatedRevert`` (with a readable reason) if it would revert,
        ``ChainUnavailable`` if the node does not answer."""
        tx = self._batch_mint_call(sender, recipients)
        try:
            with _rpc("eth_estimateGas"):
                return self.w3.eth.estimate_gas(tx)
        except errors.ChainError as exc:  # _rpc wraps every web3 error, reverts included
            cause = exc.__cause__
            if isinstance(cause, ContractLogicError):
                raise errors.SimulatedRevert(_revert_text(cause)) from cause
            if isinstance(cause, Web3RPCError) and "revert" in str(cause).lower():
                raise errors.SimulatedRevert(str(cause)) from cause
            raise

    def send_raw(self, raw: bytes) -> SendOutcome:
        """Broadcast signed bytes (resending the same bytes is always safe); a refusal that is a
        reconciliation signal comes back as its ``SendOutcome``. Raises ``SignerUnderfunded``
        (insufficient funds), ``ChainUnavailable``, or ``ChainError`` for any other refusal."""
        try:
            with _rpc("eth_sendRawTransaction"):
                self.w3.eth.send_raw_transaction(raw)
        except errors.ChainError as exc:
            if "insufficient funds" in str(exc).lower():
                raise errors.SignerUnderfunded(
                    f"the signer cannot pay for this transaction; the node refused it: {exc}"
                ) from exc
            outcome = classify_send_error(str(exc))
            if outcome is None:
                raise
            return outcome
        return SendOutcome.ACCEPTED

    def receipt(self, tx_hash: str) -> Receipt | None:
        """The receipt of ``tx_hash`` (0x-hex), or None while it is not in a block.

        Read as plain JSON-RPC, past web3's result formatters: a batch's receipt carries one
        ``Transfer`` log per recipient, and formatting 600 logs (checksummed addresses,
        ``HexBytes``, attribute dicts) cost ~100 ms of CPU, two thirds of a saturated worker's
        time, for four fields. Raises ``ChainUnavailable`` as every read does.
        """
        with _rpc("eth_getTransactionReceipt"):
            response = self.w3.provider.make_request(RPCEndpoint("eth_getTransactionReceipt"), [tx_hash])
        if "error" in response:
            raise errors.ChainUnavailable(f"eth_getTransactionReceipt: {response['error']}")
        r = response.get("result")
        if not r or r.get("blockNumber") is None:
            return None
        price = r.get("effectiveGasPrice")
        return Receipt(
            tx_hash=tx_hash,
            status=int(r["status"], 16),
            block_number=int(r["blockNumber"], 16),
            gas_used=int(r["gasUsed"], 16),
            effective_gas_price=Wei(int(price, 16)) if price is not None else None,
        )

    def revert_reason(self, sender: str, recipients: Sequence[str], block_number: int) -> str:
        """Why a batch of ``recipients`` reverted: replayed on the state ``block_number`` left
        behind (best effort: "reverted on chain" when the replay tells nothing). Raises
        ``ChainUnavailable``."""
        tx = self._batch_mint_call(sender, recipients)
        try:
            with _rpc("eth_call"):
                self.w3.eth.call(tx, block_identifier=block_number)
        except errors.ChainError as exc:
            cause = exc.__cause__
            if isinstance(cause, ContractLogicError):
                return _revert_text(cause)
        return "reverted on chain"
