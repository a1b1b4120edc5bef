"""AWS KMS for tests: moto's server on a free port, with DIGEST signing made real."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from mintq import config
from tests.support.ports import free_port

REGION = "us-east-1"

#: Set while moto handles a Sign request whose MessageType is DIGEST (see ``honour_digest``).
_digest_request: contextvars.ContextVar[bool] = contextvars.ContextVar("digest_request", default=False)


def honour_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make moto's KMS sign a ``MessageType=DIGEST`` message as the digest it is.

    Why: moto 5.2.5 does not implement DIGEST (getmoto/moto#10202, open). ``KmsResponse.sign``
    (moto/kms/responses.py) reads ``MessageType`` and never passes it on, and
    ``ECDSAPrivateKey.sign`` (moto/kms/utils.py) always signs with ``ec.ECDSA(SHA256())``, i.e.
    over sha256(message). An Ethereum signer sends the keccak signing hash as a DIGEST, so moto's
    signature is over the wrong value and recovers no known address. Real KMS skips the
    hashing (https://docs.aws.amazon.com/kms/latest/APIReference/API_Sign.html).

    Narrowly: only a DIGEST Sign request's ECDSA key signs its message prehashed (with the
    algorithm's hash, as KMS does); RAW requests, Verify and other key types are moto's own.
    ``test_moto_still_hashes_a_digest_again`` fails once moto does this itself.
    """
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
    from moto.kms import responses
    from moto.kms import utils as kms_utils

    response_sign = responses.KmsResponse.sign
    key_sign = kms_utils.ECDSAPrivateKey.sign

    def sign_response(self: Any) -> str:
        token = _digest_request.set(self._get_param("MessageType") == "DIGEST")
        try:
            return response_sign(self)
        finally:
            _digest_request.reset(token)

    def sign_with_key(self: Any, message: bytes, signing_algorithm: str) -> bytes:
        if not _digest_request.get():
            return key_sign(self, message, signing_algorithm)
        kms_utils.validate_signing_algorithm(signing_algorithm, self.valid_signing_algorithms)
        algorithm = self._ECDSAPrivateKey__hash_algorithm(signing_algorithm)
        return bytes(self.private_key.sign(message, ec.ECDSA(Prehashed(algorithm))))

    monkeypatch.setattr(responses.KmsResponse, "sign", sign_response)
    monkeypatch.setattr(kms_utils.ECDSAPrivateKey, "sign", sign_with_key)


def sample_tx(nonce: int = 0) -> dict[str, Any]:
    """An EIP-1559 transaction for the KMS signer tests (type 2, chain 31337, 100k gas, 2 / 1 gwei)."""
    return {
        "type": 2,
        "chainId": 31337,
        "nonce": nonce,
        "to": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        "value": 0,
        "data": b"\x01" * 36,
        "gas": 100_000,
        "maxFeePerGas": 2 * 10**9,
        "maxPriorityFeePerGas": 10**9,
    }


class KmsServer:
    """moto's KMS as a real HTTP endpoint; ``stop`` is a KMS outage, ``start`` its end (moto's
    keys live in this process, so they survive a restart on the same port)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: ThreadedMotoServer | None = None

    def start(self) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            # stop() only shuts the loop down; close the socket too, so that clients are refused
            # (not left waiting in the listen backlog) and the port can be bound again.
            if self._server._server is not None:
                self._server._server.server_close()
            self._server = None

    def client(self) -> Any:
        return boto3.client("kms", region_name=REGION, endpoint_url=self.url)

    def create_key(self, spec: str = "ECC_SECG_P256K1", usage: str = "SIGN_VERIFY") -> str:
        """A new key's ARN."""
        return str(self.client().create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]["Arn"])


def aws_environment(monkeypatch: pytest.MonkeyPatch, server: KmsServer) -> None:
    """Fake credentials, and every KMS client of this process (and its children) at ``server``."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", server.url)


@pytest.fixture
def kms_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[KmsServer]:
    """moto's KMS on a free port, unpatched; every KMS client in the test points at it.
    (A fixture: import it by name into the test module that uses it.)"""
    server = KmsServer()
    server.start()
    aws_environment(monkeypatch, server)
    config.reset()
    yield server
    server.stop()
    config.reset()


@pytest.fixture
def kms(kms_server: KmsServer, monkeypatch: pytest.MonkeyPatch) -> KmsServer:
    """The same, signing DIGEST messages as real KMS does."""
    honour_digest(monkeypatch)
    return kms_server
