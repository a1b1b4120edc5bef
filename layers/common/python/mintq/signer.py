"""Transaction signers. The worker signs locally and stores the signed bytes before
broadcasting, so a crash can always rebroadcast exactly what was signed.

``LocalSigner`` holds a private key (local stack, tests, or a key from Secrets
Manager); a KMS signer will implement the same protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from eth_account import Account

from mintq import errors


@dataclass(frozen=True)
class SignedTx:
    raw: bytes
    tx_hash: str  # 0x-prefixed, lowercase


class Signer(Protocol):
    @property
    def address(self) -> str: ...

    def sign(self, tx: dict[str, Any]) -> SignedTx: ...


class LocalSigner:
    def __init__(self, private_key: str) -> None:
        try:
            self._account = Account.from_key(private_key)
        except (ValueError, TypeError) as exc:
            raise errors.ConfigurationError("the signer private key is not a valid secp256k1 key") from exc

    @property
    def address(self) -> str:
        return str(self._account.address)

    def sign(self, tx: dict[str, Any]) -> SignedTx:
        try:
            signed = self._account.sign_transaction(tx)
        except (ValueError, TypeError) as exc:
            raise errors.SigningError(f"cannot sign transaction: {exc}") from exc
        return SignedTx(raw=bytes(signed.raw_transaction), tx_hash="0x" + bytes(signed.hash).hex())
