"""The KMS signer's arithmetic against signatures made with the ``cryptography`` package itself:
DER decoding, EIP-2 low s, the recovery id, the address from a SubjectPublicKeyInfo, and a whole
EIP-1559 transaction signed through a stand-in KMS client (pure logic: no AWS here)."""

from __future__ import annotations

import os
from typing import Any

import pytest
from botocore.exceptions import ClientError, ConnectTimeoutError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)
from eth_account import Account
from eth_account.typed_transactions.typed_transaction import TypedTransaction
from eth_keys.constants import SECPK1_N
from eth_keys.datatypes import Signature
from hexbytes import HexBytes

from mintq import errors, kms_signer, signer

HALF_N = SECPK1_N // 2


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256K1())


def _spki(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> bytes:
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _eth_address(key: ec.EllipticCurvePrivateKey) -> str:
    return str(Account.from_key(key.private_numbers().private_value.to_bytes(32, "big")).address)


def _sign_digest(key: ec.EllipticCurvePrivateKey, digest: bytes) -> bytes:
    """What KMS does with MessageType=DIGEST: ECDSA over the given 32 bytes, DER encoded."""
    return key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))


def test_the_address_from_a_subject_public_key_info_is_the_keys_ethereum_address() -> None:
    for _ in range(5):
        key = _key()
        assert kms_signer.address_from_public_key(_spki(key)) == _eth_address(key)


def test_a_public_key_on_another_curve_or_not_der_is_a_configuration_error_naming_the_spec() -> None:
    p256 = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(errors.ConfigurationError, match="ECC_SECG_P256K1"):
        kms_signer.address_from_public_key(_spki(p256))
    with pytest.raises(errors.ConfigurationError, match="SubjectPublicKeyInfo"):
        kms_signer.address_from_public_key(b"\x30\x03junk")


def test_signatures_of_either_half_decode_to_low_s_with_the_parity_that_recovers_the_key() -> None:
    key = _key()
    address = _eth_address(key)
    seen_high = 0
    for _ in range(64):
        digest = os.urandom(32)
        r, s = decode_dss_signature(_sign_digest(key, digest))
        # Both (r, s) and (r, n - s) are valid ECDSA signatures; one of them is high.
        for candidate in (s, SECPK1_N - s):
            seen_high += candidate > HALF_N
            y_parity, r_out, s_out = kms_signer.recoverable_signature(
                digest, encode_dss_signature(r, candidate), address
            )
            assert r_out == r and s_out == min(s, SECPK1_N - s) <= HALF_N
            recovered = Signature(vrs=(y_parity, r_out, s_out)).recover_public_key_from_msg_hash(digest)
            assert recovered.to_checksum_address() == address
    assert seen_high == 64, "every pair holds exactly one high-s signature"


def test_a_signature_that_is_not_the_keys_or_not_der_is_a_signing_error() -> None:
    key, stranger = _key(), _key()
    digest = os.urandom(32)
    with pytest.raises(errors.SigningError, match="does not recover"):
        kms_signer.recoverable_signature(digest, _sign_digest(stranger, digest), _eth_address(key))
    with pytest.raises(errors.SigningError, match="does not recover"):
        # The digest hashed again (moto's DIGEST bug) is a valid signature of something else.
        again = key.sign(digest, ec.ECDSA(hashes.SHA256()))
        kms_signer.recoverable_signature(digest, again, _eth_address(key))
    with pytest.raises(errors.SigningError, match="not a DER"):
        kms_signer.recoverable_signature(digest, b"\x30\x02\x01\x00", _eth_address(key))


class FakeKms:
    """A stand-in for boto3's KMS client over a ``cryptography`` key (GetPublicKey and Sign)."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, *, spec: str = "ECC_SECG_P256K1") -> None:
        self.key = key
        self.spec = spec
        self.fail_with: Exception | None = None
        self.calls: list[str] = []

    def get_public_key(self, *, KeyId: str) -> dict[str, Any]:
        self.calls.append("GetPublicKey")
        if self.fail_with is not None:
            raise self.fail_with
        return {"KeyId": KeyId, "PublicKey": _spki(self.key), "KeySpec": self.spec, "KeyUsage": "SIGN_VERIFY"}

    def sign(self, *, KeyId: str, Message: bytes, MessageType: str, SigningAlgorithm: str) -> dict[str, Any]:
        self.calls.append("Sign")
        assert (MessageType, SigningAlgorithm, len(Message)) == ("DIGEST", "ECDSA_SHA_256", 32)
        if self.fail_with is not None:
            raise self.fail_with
        return {"KeyId": KeyId, "Signature": _sign_digest(self.key, Message)}


TX = {
    "type": 2,
    "chainId": 84532,
    "nonce": 7,
    "to": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
    "value": 0,
    "data": bytes.fromhex("a9059cbb") + b"\x00" * 64,
    "gas": 210_000,
    "maxFeePerGas": 3 * 10**9,
    "maxPriorityFeePerGas": 10**9,
}


def _key_id() -> str:
    # The signer caches addresses per key id for the process: a fresh id per test.
    return "arn:aws:kms:us-east-1:111122223333:key/" + os.urandom(8).hex()


def test_a_transaction_signed_through_kms_is_the_local_signers_transaction_from_the_same_address() -> None:
    key = _key()
    fake = FakeKms(key)
    kms = kms_signer.KmsSigner(_key_id(), client=fake)
    local = signer.LocalSigner("0x" + key.private_numbers().private_value.to_bytes(32, "big").hex())
    assert kms.address == local.address
    signed = kms.sign(TX)
    assert Account.recover_transaction(signed.raw) == local.address
    ours = TypedTransaction.from_bytes(HexBytes(signed.raw)).as_dict()
    theirs = TypedTransaction.from_bytes(HexBytes(local.sign(TX).raw)).as_dict()
    # ECDSA's nonce is random, so only the signature differs; every other field is the same.
    for fields in (ours, theirs):
        for name in ("v", "r", "s"):
            fields.pop(name)
    assert ours == theirs
    assert fake.calls == ["GetPublicKey", "Sign"]


def test_the_address_is_fetched_once_per_key_for_the_process() -> None:
    fake = FakeKms(_key())
    key_id = _key_id()
    first = kms_signer.KmsSigner(key_id, client=fake)
    second = kms_signer.KmsSigner(key_id, client=fake)
    assert first.address == second.address
    assert fake.calls == ["GetPublicKey"]


def _client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Sign"
    )


def test_kms_throttling_or_an_outage_is_signer_unavailable_and_a_refused_key_a_configuration_error() -> None:
    fake = FakeKms(_key())
    for failure in (_client_error("ThrottlingException", 400), ConnectTimeoutError(endpoint_url="x")):
        fake.fail_with = failure
        with pytest.raises(errors.SignerUnavailable):
            kms_signer.key_address(_key_id(), client=fake)
    fake.fail_with = _client_error("AccessDeniedException", 400)
    with pytest.raises(errors.ConfigurationError, match="AccessDenied"):
        kms_signer.key_address(_key_id(), client=fake)
    fake.fail_with = None
    kms = kms_signer.KmsSigner(_key_id(), client=fake)
    # While signing, any KMS failure only means "not now": nothing is signed, nothing fails.
    for failure in (
        _client_error("ThrottlingException", 400),
        _client_error("DisabledException", 400),
        ConnectTimeoutError(endpoint_url="x"),
    ):
        fake.fail_with = failure
        with pytest.raises(errors.SignerUnavailable):
            kms.sign(TX)


def test_a_key_of_another_spec_is_a_configuration_error_naming_the_spec_it_needs() -> None:
    with pytest.raises(
        errors.ConfigurationError, match="needs KeySpec ECC_SECG_P256K1 with KeyUsage SIGN_VERIFY"
    ):
        kms_signer.KmsSigner(_key_id(), client=FakeKms(_key(), spec="ECC_NIST_P256"))


def test_a_legacy_transaction_is_refused_before_kms_is_asked() -> None:
    fake = FakeKms(_key())
    kms = kms_signer.KmsSigner(_key_id(), client=fake)
    legacy = {k: v for k, v in TX.items() if k not in ("type", "maxFeePerGas", "maxPriorityFeePerGas")}
    with pytest.raises(errors.SigningError):
        kms.sign({**legacy, "gasPrice": 10**9})
    assert fake.calls == ["GetPublicKey"]
