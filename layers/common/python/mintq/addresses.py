"""Ethereum address parsing (EIP-55) without importing web3.

The enqueue and status functions must stay light, so this uses eth-hash's keccak
directly instead of eth-utils/web3.
"""

from __future__ import annotations

import re

from eth_hash.auto import keccak

from mintq import errors

_HEX40 = re.compile(r"^0x[0-9a-fA-F]{40}$")
ZERO_ADDRESS = "0x" + "0" * 40


def to_checksum(address: str) -> str:
    """EIP-55 form of a 0x-prefixed, 40-hex-digit address (any case)."""
    lower = address[2:].lower()
    digest = keccak(lower.encode("ascii")).hex()
    # A letter is upper-case where its nibble of the digest is 8 or more: hex digits "8".."f"
    # sort after "7". The digest has 64 nibbles; the first 40 apply (strict=False).
    upper = lower.upper()
    return "0x" + "".join(u if d > "7" else c for c, u, d in zip(lower, upper, digest, strict=False))


def parse(value: object, *, field: str = "address") -> str:
    """Validate an address and return its checksummed form.

    All-lowercase and all-uppercase addresses carry no checksum and are accepted;
    a mixed-case address must match its EIP-55 checksum, since a mismatch usually
    means a typo that would mint to the wrong account.
    """
    if not isinstance(value, str) or not _HEX40.fullmatch(value):  # fullmatch: `$` allows a final "\n"
        raise errors.InvalidAddress(f"{field} must be 0x followed by 40 hexadecimal digits")
    body = value[2:]
    checksummed = to_checksum(value)
    if body != body.lower() and body != body.upper() and value != checksummed:
        raise errors.InvalidAddress(f"{field} fails its EIP-55 checksum (expected {checksummed})")
    if checksummed == ZERO_ADDRESS:
        raise errors.InvalidAddress(f"{field} must not be the zero address")
    return checksummed
