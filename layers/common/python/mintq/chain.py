"""The chain as the batch worker needs it: nonces, fees, simulation, broadcast, receipts.

Works with any token exposing ``batchMint(address[])``; supply views are optional.
web3 and transport exceptions never leave this module: an unreachable, slow or
rate-limiting node is ``errors.ChainUnavailable`` (an operational fault, never the
items' fault); a revert found by simulation is ``errors.SimulatedRevert``.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import requests
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3.exceptions import (
    ContractLogicError,
    TimeExhausted,
    Web3Exception,
    Web3RPCError,
)
from web3.types import RPCEndpoint

from mintq import errors, rpc
from mintq.deadlines import Deadline
from mintq.units import Wei


def _selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


BATCH_MINT = _selector("batchMint(address[])")
_VIEWS = {
    name: _selector(f"{name}()") for name in ("remainingMints", "amountPerMint", "maxSupply", "totalSupply")
}

# Custom errors worth a readable reason: the reference token's and OpenZeppelin's.
_KNOWN_ERRORS: dict[bytes, tuple[str, list[str]]] = {
    _selector(f"{name}({','.join(types)})"): (name, types)
    for name, types in [
        ("MaxSupplyExceeded", ["uint256", "uint256"]),
        ("PoisonedRecipient", ["address"]),
        ("EnforcedPause", []),
        ("AccessControlUnauthorizedAccount", ["address", "bytes32"]),
        ("ERC20InvalidReceiver", ["address"]),
        ("Error", ["string"]),
    ]
}

# Per-transaction gas cap enforced since the Fusaka upgrade (EIP-7825).
TX_GAS_CAP = 2**24


class SendOutcome(enum.StrEnum):
    ACCEPTED = "accepted"  #: the node took the transaction
    ALREADY_KNOWN = "already_known"  #: the node already has these exact bytes
    NONCE_USED = "nonce_used"  #: "nonce too low": something with this nonce was mined
    UNDERPRICED = "underpriced"  #: a same-nonce transaction with higher fees is pending


@dataclass(frozen=True, kw_only=True)
class Fees:
    """EIP-1559 fees per gas, in wei."""

    base_fee: Wei
    max_fee_per_gas: Wei
    max_priority_fee_per_gas: Wei


@dataclass(frozen=True, kw_only=True)
class Receipt:
    tx_hash: str
    status: int
    block_number: int
    gas_used: int
    effective_gas_price: int | None


@dataclass(frozen=True, kw_only=True)
class Supply:
    remaining_mints: int | None  # None: the token does not tell
    amount_per_mint: int | None


def decode_revert(data: object) -> str:
    """A readable reason from revert data (hex string or bytes)."""
    if isinstance(data, str):
        try:
            raw = bytes.fromhex(data.removeprefix("0x"))
        except ValueError:
            return data
    elif isinstance(data, bytes | bytearray):
        raw = bytes(data)
    else:
        return "reverted"
    known = _KNOWN_ERRORS.get(raw[:4])
    if known is None:
        return f"reverted (data 0x{raw.hex()})" if raw else "reverted"
    name, types = known
    try:
        values = abi_decode(types, raw[4:]) if types else ()
    except Exception:
        return name
    if name == "Error":
        return str(values[0])
    return f"{name}({', '.join(str(v) for v in values)})"


def _classify_send_error(message: str) -> SendOutcome | None:
    text = message.lower()
    if "already known" in text or "already imported" in text or "known transaction" in text:
        return SendOutcome.ALREADY_KNOWN
    if "nonce too low" in text or "nonce is too low" in text or "nonce has already been used" in text:
        return SendOutcome.NONCE_USED
    if "replacement transaction underpriced" in text or "replacement fee too low" in text:
        return SendOutcome.UNDERPRICED
    return None


def _revert_text(exc: ContractLogicError) -> str:
    return decode_revert(exc.data) if exc.data else str(exc)


@contextlib.contextmanager
def _rpc(action: str) -> Iterator[None]:
    try:
        yield
    except (requests.RequestException, TimeExhausted, OSError) as exc:
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
        with _rpc("eth_chainId"):
            return int(self.w3.eth.chain_id)

    def nonce(self, address: str, block: str = "pending") -> int:
        with _rpc("eth_getTransactionCount"):
            return int(self.w3.eth.get_transaction_count(to_checksum_address(address), block))  # type: ignore[arg-type]

    def balance(self, address: str) -> Wei:
        """The address's balance in wei at the pending block."""
        with _rpc("eth_getBalance"):
            return Wei(int(self.w3.eth.get_balance(to_checksum_address(address), "pending")))

    def fees(self) -> Fees:
        """EIP-1559 fees with room for the base fee to double before inclusion."""
        with _rpc("fee quote"):
            block = self.w3.eth.get_block("latest")
            base_fee = int(block.get("baseFeePerGas", 0) or 0)
            tip = int(self.w3.eth.max_priority_fee)
        return Fees(
            base_fee=Wei(base_fee), max_fee_per_gas=Wei(2 * base_fee + tip), max_priority_fee_per_gas=Wei(tip)
        )

    def block_gas_limit(self) -> int:
        with _rpc("eth_getBlockByNumber"):
            return int(self.w3.eth.get_block("latest")["gasLimit"])

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

    def _batch_mint_call(self, sender: str, recipients: Sequence[str]) -> dict[str, Any]:
        return {
            "from": to_checksum_address(sender),
            "to": self.token,
            "data": self.batch_mint_data(recipients),
        }

    def estimate_batch_mint(self, sender: str, recipients: Sequence[str]) -> int:
        """Gas for ``batchMint(recipients)``; raises ``SimulatedRevert`` if it would revert."""
        tx = self._batch_mint_call(sender, recipients)
        try:
            with _rpc("eth_estimateGas"):
                return int(self.w3.eth.estimate_gas(tx))  # type: ignore[arg-type]
        except errors.ChainError as exc:  # _rpc wraps every web3 error, reverts included
            cause = exc.__cause__
            if isinstance(cause, ContractLogicError):
                raise errors.SimulatedRevert(_revert_text(cause)) from cause
            if isinstance(cause, Web3RPCError) and "revert" in str(cause).lower():
                raise errors.SimulatedRevert(str(cause)) from cause
            raise

    def send_raw(self, raw: bytes) -> SendOutcome:
        """Broadcast signed bytes. Resending the same bytes is always safe."""
        try:
            with _rpc("eth_sendRawTransaction"):
                self.w3.eth.send_raw_transaction(raw)
        except errors.ChainError as exc:
            if "insufficient funds" in str(exc).lower():
                raise errors.SignerUnderfunded(
                    f"the signer cannot pay for this transaction; the node refused it: {exc}"
                ) from exc
            outcome = _classify_send_error(str(exc))
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
            effective_gas_price=int(price, 16) if price is not None else None,
        )

    def revert_reason(self, sender: str, recipients: Sequence[str], block_number: int) -> str:
        """Replay a reverted batch on the state its block left behind to learn why (best effort)."""
        tx = self._batch_mint_call(sender, recipients)
        try:
            with _rpc("eth_call"):
                self.w3.eth.call(tx, block_identifier=block_number)  # type: ignore[arg-type]
        except errors.ChainError as exc:
            cause = exc.__cause__
            if isinstance(cause, ContractLogicError):
                return _revert_text(cause)
        return "reverted on chain"
