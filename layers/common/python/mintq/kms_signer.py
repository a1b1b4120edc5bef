"""An AWS KMS signer: the minter's key never leaves KMS.

The key is an asymmetric KMS key of spec ``ECC_SECG_P256K1`` (secp256k1), usage ``SIGN_VERIFY``.
KMS signs the EIP-1559 signing hash (keccak-256 of the typed transaction's payload) sent as
``MessageType=DIGEST`` with ``ECDSA_SHA_256``: with DIGEST, KMS skips its own hashing, so SHA-256
is only the algorithm's name. It answers with a DER ``Ecdsa-Sig-Value`` (r, s). Ethereum needs
more: s in the low half of the curve order (EIP-2; KMS does not normalise it) and the recovery
id (y parity), which KMS does not give; of the two candidates we keep the one that recovers
the key's own address.

Sources: https://docs.aws.amazon.com/kms/latest/APIReference/API_Sign.html (DIGEST),
https://eips.ethereum.org/EIPS/eip-2 (low s), and AWS's sample
aws-samples/aws-kms-ethereum-accounts (eth_client_eip1559/lambda_helper.py), the same recipe.
"""

from __future__ import annotations

from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from eth_account.typed_transactions.typed_transaction import TypedTransaction
from eth_hash.auto import keccak
from eth_keys.constants import SECPK1_N
from eth_keys.datatypes import PublicKey, Signature
from eth_keys.exceptions import BadSignature
from eth_utils.exceptions import ValidationError

from mintq import errors
from mintq.deadlines import MIN_CALL_SECONDS, Deadline
from mintq.signer import SignedTx, TxParams, eip1559_fields

KEY_SPEC = "ECC_SECG_P256K1"
KEY_USAGE = "SIGN_VERIFY"
SIGNING_ALGORITHM = "ECDSA_SHA_256"

#: The batch worker runs against a deadline, so KMS calls are bounded: seconds to connect and
#: to read, and at most this many attempts in all ("standard" mode retries throttling and
#: transient errors once, after a jittered pause of at most 2 s): 2 x (2 + 5) + 2 = 16 s at
#: worst per call, against the tens of milliseconds a Sign usually takes.
CONNECT_TIMEOUT_SECONDS = 2.0
READ_TIMEOUT_SECONDS = 5.0
MAX_ATTEMPTS = 2
WORST_CASE_SECONDS = MAX_ATTEMPTS * (CONNECT_TIMEOUT_SECONDS + READ_TIMEOUT_SECONDS) + 2.0

#: What a Sign may take in all when the worst case above does not fit before the deadline:
#: the largest of these that fits. botocore's timeouts are per client, so each budget has its
#: own client, built once; budgets fall by a fifth each (a Sign gets at least 80 % of the time
#: left) down to ``MIN_CALL_SECONDS``, the least a call is started with: 26 clients at most.
SHORT_BUDGETS = (
    *(WORST_CASE_SECONDS * 0.8**k for k in range(1, 64) if WORST_CASE_SECONDS * 0.8**k > MIN_CALL_SECONDS),
    MIN_CALL_SECONDS,
)

#: KMS error codes that mean "not now" rather than "not set up right".
TRANSIENT_ERROR_CODES = frozenset(
    {
        "ThrottlingException",
        "KMSInternalException",
        "DependencyTimeoutException",
        "KeyUnavailableException",
        "LimitExceededException",
    }
)

#: key id -> address: ``GetPublicKey`` runs once per key and execution environment.
_addresses: dict[str, str] = {}


def kms_client(
    *,
    region_name: str | None = None,
    endpoint_url: str | None = None,
    connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
    read_timeout: float = READ_TIMEOUT_SECONDS,
    max_attempts: int = MAX_ATTEMPTS,
) -> Any:
    """A boto3 KMS client with bounded timeouts and retries (region and endpoint from the usual
    AWS settings unless given; ``AWS_ENDPOINT_URL_KMS`` points it elsewhere)."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    config = Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"mode": "standard", "total_max_attempts": max_attempts},
    )
    try:
        return boto3.client("kms", region_name=region_name, endpoint_url=endpoint_url, config=config)
    except BotoCoreError as exc:  # e.g. no region configured
        raise errors.ConfigurationError(f"cannot create a KMS client: {exc}") from exc


def address_from_public_key(spki_der: bytes) -> str:
    """The EIP-55 address of a secp256k1 public key given as DER SubjectPublicKeyInfo (what
    ``GetPublicKey`` returns): the last 20 bytes of keccak-256 over the uncompressed point
    without its 0x04 prefix. Raises ``ConfigurationError`` for anything but secp256k1."""
    try:
        public_key = serialization.load_der_public_key(spki_der)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise errors.ConfigurationError("the signer's public key is not DER SubjectPublicKeyInfo") from exc
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
        public_key.curve, ec.SECP256K1
    ):
        raise errors.ConfigurationError(f"the signer's public key is not secp256k1 (KMS key spec {KEY_SPEC})")
    point = public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return str(PublicKey(point[1:]).to_checksum_address())


def recoverable_signature(digest: bytes, der_signature: bytes, address: str) -> tuple[int, int, int]:
    """``(y_parity, r, s)`` of a DER ECDSA signature of the 32-byte ``digest`` by ``address``'s
    key, s normalised to the low half of the curve order (EIP-2: (r, n - s) is the same
    signature with the other parity). Raises ``SigningError`` when neither parity recovers
    ``address`` (not this key's signature of this digest)."""
    try:
        r, s = decode_dss_signature(der_signature)
    except ValueError as exc:
        raise errors.SigningError("the signature is not a DER ECDSA signature") from exc
    if s > SECPK1_N // 2:
        s = SECPK1_N - s
    for y_parity in (0, 1):
        try:
            recovered = Signature(vrs=(y_parity, r, s)).recover_public_key_from_msg_hash(digest)
        except (BadSignature, ValidationError):
            continue
        if recovered.to_checksum_address() == address:
            return y_parity, r, s
    raise errors.SigningError(f"the signature does not recover to the signer's address {address}")


def key_address(key_id: str, *, client: Any = None) -> str:
    """The Ethereum address of the KMS key ``key_id`` (key id, ARN or alias), from its public
    key; cached for the life of the process.

    Raises ``ConfigurationError`` for a key that is missing, not ours to use, or not
    ``ECC_SECG_P256K1`` / ``SIGN_VERIFY``; ``SignerUnavailable`` when KMS is unreachable or
    throttling.
    """
    cached = _addresses.get(key_id)
    if cached is not None:
        return cached
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        response = (client or kms_client()).get_public_key(KeyId=key_id)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        if code in TRANSIENT_ERROR_CODES or status >= 500:
            raise errors.SignerUnavailable(f"KMS GetPublicKey for {key_id} failed: {exc}") from exc
        raise errors.ConfigurationError(f"KMS GetPublicKey for {key_id} was refused: {exc}") from exc
    except NoCredentialsError as exc:
        raise errors.ConfigurationError(f"no AWS credentials for KMS: {exc}") from exc
    except BotoCoreError as exc:
        raise errors.SignerUnavailable(f"KMS GetPublicKey for {key_id} failed: {exc}") from exc
    spec = response.get("KeySpec") or response.get("CustomerMasterKeySpec")
    usage = response.get("KeyUsage")
    if spec != KEY_SPEC or usage != KEY_USAGE:
        raise errors.ConfigurationError(
            f"the KMS key {key_id} is {spec} for {usage}; a signer needs KeySpec {KEY_SPEC}"
            f" with KeyUsage {KEY_USAGE}"
        )
    address = address_from_public_key(bytes(response["PublicKey"]))
    _addresses[key_id] = address
    return address


class KmsSigner:
    """Signs EIP-1559 (typed) transactions with an AWS KMS key; see the module docstring.

    The constructor fetches the key's address (``key_address``: its errors). ``sign`` raises
    ``SignerUnavailable`` for any KMS failure: whether KMS throttles, is down, or the key was
    disabled meanwhile, nothing was signed and the worker backs off and tries again; a mint
    never fails for it. Each Sign ends by ``deadline`` (the one its worker's chain client
    shares, which the worker moves every cycle; unbounded by default), and none starts past it
    (``errors.DeadlineReached``).
    """

    def __init__(self, key_id: str, *, client: Any = None, deadline: Deadline | None = None) -> None:
        self.key_id = key_id
        self.deadline = deadline if deadline is not None else Deadline()
        self._client = client or kms_client()
        self._address = key_address(key_id, client=self._client)
        # budget -> a one-attempt client of that budget, made like ``_short_for`` (see SHORT_BUDGETS)
        self._short: dict[float, Any] = {}
        self._short_for: Any = self._client

    @property
    def address(self) -> str:
        """The key's EIP-55 address (from its public key)."""
        return self._address

    def sign(self, tx: TxParams) -> SignedTx:
        """``tx`` signed by the KMS key (see the class). Raises ``SigningError`` for anything
        but a typed transaction or a signature that does not recover the key's address,
        ``SignerUnavailable`` for any KMS failure."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            unsigned = TypedTransaction.from_dict(eip1559_fields(tx))
        except (ValueError, TypeError, KeyError) as exc:
            raise errors.SigningError(f"cannot sign transaction (typed transactions only): {exc}") from exc
        digest = unsigned.hash()  # the signing hash, not the transaction hash
        client = self._client_until_deadline()
        try:
            response = client.sign(
                KeyId=self.key_id,
                Message=digest,
                MessageType="DIGEST",
                SigningAlgorithm=SIGNING_ALGORITHM,
            )
        except (BotoCoreError, ClientError) as exc:
            raise errors.SignerUnavailable(f"KMS Sign with {self.key_id} failed: {exc}") from exc
        y_parity, r, s = recoverable_signature(digest, bytes(response["Signature"]), self._address)
        # eth-account's own typed-transaction encoding, with the signature fields filled in.
        raw = TypedTransaction.from_dict({**unsigned.as_dict(), "v": y_parity, "r": r, "s": s}).encode()
        return SignedTx(raw=bytes(raw), tx_hash="0x" + keccak(raw).hex())

    def _client_until_deadline(self) -> Any:
        """The client for one Sign: the usual one while its worst case (``WORST_CASE_SECONDS``)
        fits before the deadline; else a client of one attempt whose timeouts add up to the
        largest of ``SHORT_BUDGETS`` that fits, built the first time that budget is needed.
        Raises ``errors.DeadlineReached`` when no time is left."""
        left = self.deadline.remaining()
        if left is None or left >= WORST_CASE_SECONDS:
            return self._client
        left = self.deadline.timeout(left, "KMS Sign")
        budget = next(b for b in SHORT_BUDGETS if b <= left)  # the last is MIN_CALL_SECONDS
        if self._short_for is not self._client:  # the usual client was replaced: follow it
            self._short, self._short_for = {}, self._client
        client = self._short.get(budget)
        if client is None:
            connect = min(CONNECT_TIMEOUT_SECONDS, budget / 4)  # connecting takes milliseconds; Sign reads
            client = self._short[budget] = kms_client(
                region_name=self._client.meta.region_name,
                endpoint_url=self._client.meta.endpoint_url,
                connect_timeout=connect,
                read_timeout=budget - connect,
                max_attempts=1,
            )
        return client
