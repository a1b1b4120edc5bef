"""Transaction signers. The worker signs locally and stores the signed bytes before
broadcasting, so a crash can always rebroadcast exactly what was signed.

``LocalSigner`` holds a private key (local stack, tests, or a key from Secrets
Manager); ``mintq.kms_signer.KmsSigner`` signs with an AWS KMS key that never leaves KMS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from eth_account import Account

from mintq import config, errors


@dataclass(frozen=True)
class SignedTx:
    raw: bytes
    tx_hash: str  # 0x-prefixed, lowercase


class Signer(Protocol):
    """Signs the worker's transactions. One that calls out (KMS) must end each call by the
    worker's deadline: build it with the ``deadlines.Deadline`` its worker's chain client
    shares (the worker moves it every cycle) and take each call's timeout from
    ``deadline.timeout(configured, what)``, which raises ``errors.DeadlineReached`` once the
    time is up; that, like ``errors.SigningError``, leaves the batch's items pending."""

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


def from_config() -> list[Signer]:
    """Every signer of the configured pool: AWS KMS keys (``MINTQ_SIGNER_KMS_KEY_IDS``) or
    local keys (``config.signer_private_keys``). A KMS key's address is fetched, and its spec
    checked, here. Raises ``ConfigurationError`` (see ``config.signer_kms_key_ids``, or a key
    given twice) and, for KMS, ``SignerUnavailable``."""
    kms_key_ids = config.signer_kms_key_ids()
    signers: list[Signer]
    if kms_key_ids:
        from mintq import kms_signer  # boto3 and cryptography only where KMS signs

        client = kms_signer.kms_client()
        signers = [kms_signer.KmsSigner(key_id, client=client) for key_id in kms_key_ids]
    else:
        signers = [LocalSigner(key) for key in config.signer_private_keys()]
    addresses = [s.address.lower() for s in signers]
    if len(set(addresses)) != len(addresses):
        # Two workers for one address would only contend for its lock and nonces.
        raise errors.ConfigurationError("the signer pool names the same key twice")
    return signers
