"""What a node's replies mean to the batch worker: revert data as a readable reason, a
refused broadcast as a ``SendOutcome`` (a reconciliation signal, not a failure).

Pure functions of the reply's bytes or text: no web3, no network.
"""

from __future__ import annotations

import enum

from eth_abi.abi import decode as abi_decode
from eth_utils.crypto import keccak


def selector(signature: str) -> bytes:
    """The 4-byte selector of a function or error ``signature`` such as ``"batchMint(address[])"``."""
    return keccak(text=signature)[:4]


# Custom errors worth a readable reason: the reference token's and OpenZeppelin's.
_KNOWN_ERRORS: dict[bytes, tuple[str, list[str]]] = {
    selector(f"{name}({','.join(types)})"): (name, types)
    for name, types in [
        ("MaxSupplyExceeded", ["uint256", "uint256"]),
        ("PoisonedRecipient", ["address"]),
        ("EnforcedPause", []),
        ("AccessControlUnauthorizedAccount", ["address", "bytes32"]),
        ("ERC20InvalidReceiver", ["address"]),
        ("Error", ["string"]),
    ]
}


class SendOutcome(enum.StrEnum):
    """What a node's answer to ``eth_sendRawTransaction`` means for the batch."""

    ACCEPTED = "accepted"  #: the node took the transaction
    ALREADY_KNOWN = "already_known"  #: the node already has these exact bytes
    NONCE_USED = "nonce_used"  #: "nonce too low": something with this nonce was mined
    UNDERPRICED = "underpriced"  #: a same-nonce transaction with higher fees is pending


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


def classify_send_error(message: str) -> SendOutcome | None:
    """The ``SendOutcome`` a refused send's error ``message`` stands for; None for any other
    error (the caller raises it)."""
    text = message.lower()
    if "already known" in text or "already imported" in text or "known transaction" in text:
        return SendOutcome.ALREADY_KNOWN
    if "nonce too low" in text or "nonce is too low" in text or "nonce has already been used" in text:
        return SendOutcome.NONCE_USED
    if "replacement transaction underpriced" in text or "replacement fee too low" in text:
        return SendOutcome.UNDERPRICED
    return None
