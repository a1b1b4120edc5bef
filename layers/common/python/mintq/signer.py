"""Transaction signers. The worker signs locally and stores the signed bytes before
broadcasting, so a crash can always rebroadcast exactly what was signed.

``LocalSigner`` holds a private key (local stack, tests, or a key from Secrets
Manager); ``mintq.kms_signer.KmsSigner`` signs with an AWS KMS key that never leaves KMS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, TypedDict

from eth_account import Account
from eth_account.types import TransactionDictType
from eth_typing import HexStr

from mintq import credentials, errors
from mintq.deadlines import Deadline
from mintq.units import Wei


class TxParams(TypedDict):
    """What a signer signs: the one shape of transaction the worker sends, an EIP-1559 (type 2)
    call of the token with no value. Fees per gas and ``value`` in wei, ``gas`` in gas units,
    ``to`` an EIP-55 address, ``data`` the calldata. (web3's ``TxParams`` has every field
    optional; here every field is required.)"""

    type: Literal[2]
    chainId: int
    nonce: int
    to: str
    value: Wei
    data: bytes
    gas: int
    maxFeePerGas: Wei
    maxPriorityFeePerGas: Wei


def eip1559_fields(tx: TxParams) -> TransactionDictType:
    """``tx`` as the plain dict eth-account's signing and typed-transaction encoding take."""
    return {
        "type": tx["type"],
        "chainId": tx["chainId"],
        "nonce": tx["nonce"],
        "to": HexStr(tx["to"]),
        "value": tx["value"],
        "data": tx["data"],
        "gas": tx["gas"],
        "maxFeePerGas": tx["maxFeePerGas"],
        "maxPriorityFeePerGas": tx["maxPriorityFeePerGas"],
    }


@dataclass(frozen=True)
class SignedTx:
    """A signed transaction: its bytes as broadcast, and its hash (0x-prefixed, lowercase)."""

    raw: bytes
    tx_hash: str


class Signer(Protocol):
    """Signs the worker's transactions. One that calls out (KMS) must end each call by the
    worker's deadline: it carries a ``deadline`` attribute (a ``deadlines.Deadline``), which
    its worker's chain client shares (``worker.invocation`` wires them; the worker moves it
    every cycle), and takes each call's timeout from ``deadline.timeout(configured, what)``,
    which raises ``errors.DeadlineReached`` once the time is up; that, like
    ``errors.SigningError``, leaves the batch's items pending."""

    @property
    def address(self) -> str:
        """The signer's EIP-55 address."""
        ...

    def sign(self, tx: TxParams) -> SignedTx:
        """``tx`` signed. Raises ``errors.SigningError`` (``SignerUnavailable`` when the
        signing service cannot be reached) or ``errors.DeadlineReached``."""
        ...


class LocalSigner:
    """Signs with a private key held in memory (the local stack, tests, or a key from Secrets
    Manager). Raises ``errors.ConfigurationError`` for a key that is not a secp256k1 key."""

    def __init__(self, private_key: str) -> None:
        try:
            self._account = Account.from_key(private_key)
        except (ValueError, TypeError) as exc:
            raise errors.ConfigurationError("the signer private key is not a valid secp256k1 key") from exc

    @property
    def address(self) -> str:
        """The key's EIP-55 address."""
        return str(self._account.address)

    def sign(self, tx: TxParams) -> SignedTx:
        """``tx`` signed with the key; ``errors.SigningError`` when eth-account refuses it."""
        try:
            signed = self._account.sign_transaction(eip1559_fields(tx))
        except (ValueError, TypeError, KeyError) as exc:
            raise errors.SigningError(f"cannot sign transaction: {exc}") from exc
        return SignedTx(raw=bytes(signed.raw_transaction), tx_hash="0x" + bytes(signed.hash).hex())


def from_config(deadline: float | None = None) -> list[Signer]:
    """Every signer of the configured pool: AWS KMS keys (``MINTQ_SIGNER_KMS_KEY_IDS``) or
    local keys (``credentials.signer_private_keys``). A KMS key's address is fetched, and its spec
    checked, here; each KMS signer gets a ``Deadline`` of its own at ``deadline`` (its
    ``deadline`` attribute: the one its worker's chain client must share, see ``Signer``).
    Raises ``ConfigurationError`` (see ``credentials.signer_kms_key_ids``, or a key given twice)
    and, for KMS, ``SignerUnavailable``."""
    kms_key_ids = credentials.signer_kms_key_ids()
    signers: list[Signer]
    if kms_key_ids:
        from mintq import kms_signer  # boto3 and cryptography only where KMS signs

        client = kms_signer.kms_client()
        signers = [
            kms_signer.KmsSigner(key_id, client=client, deadline=Deadline(deadline)) for key_id in kms_key_ids
        ]
    else:
        signers = [LocalSigner(key) for key in credentials.signer_private_keys()]
    addresses = [s.address.lower() for s in signers]
    if len(set(addresses)) != len(addresses):
        # Two workers for one address would only contend for its lock and nonces.
        raise errors.ConfigurationError("the signer pool names the same key twice")
    return signers
