"""The Coinbase CDP facilitator: API keys from Secrets Manager (moto), a fresh JWT per call.

No request leaves the machine: httpx's MockTransport stands in for api.cdp.coinbase.com and
checks each call's bearer token the way CDP does (signature, key id, method + host + path).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from eth_account import Account
from moto import mock_aws
from x402 import x402ClientSync
from x402.http import encode_payment_signature_header
from x402.mechanisms.evm.exact import ExactEvmClientScheme
from x402.mechanisms.evm.signers import EthAccountSigner

from mintq import config, errors, x402_challenge, x402_facilitator, x402_payment
from tests.support.x402_env import NETWORK, x402_mode

REGION = "us-east-1"
KEY_ID = "organizations/0000/apiKeys/mintq-test"
TX = "0x" + "ab" * 32


@pytest.fixture
def cdp_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[ec.EllipticCurvePrivateKey]:
    from aws_lambda_powertools.utilities import parameters

    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    x402_mode(monkeypatch)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        config.reset()
        parameters.clear_caches()
        arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name="mintq/cdp", SecretString=json.dumps({"apiKeyId": KEY_ID, "apiKeySecret": pem})
        )["ARN"]
        monkeypatch.setenv("MINTQ_X402_CDP_SECRET_ARN", arn)
        config.reset()
        yield key
    config.reset()
    parameters.clear_caches()


def _payment(cfg: config.X402Config) -> tuple[x402_payment.Payment, x402_challenge.Challenge]:
    challenge = x402_challenge.challenge(cfg, "https://mint.example/mint")
    client = x402ClientSync()
    client.register(NETWORK, ExactEvmClientScheme(EthAccountSigner(Account.create())))
    payload = client.create_payment_payload(challenge.v2)
    return x402_payment.decode(encode_payment_signature_header(payload)), challenge


def test_every_cdp_call_carries_a_fresh_jwt_for_exactly_that_endpoint(
    cdp_key: ec.EllipticCurvePrivateKey,
) -> None:
    cfg = config.load().x402
    assert cfg is not None and cfg.facilitator_url == config.CDP_FACILITATOR_URL
    seen: list[dict[str, Any]] = []

    def cdp(request: httpx.Request) -> httpx.Response:
        token = request.headers["Authorization"].removeprefix("Bearer ")
        claims = jwt.decode(token, cdp_key.public_key(), algorithms=["ES256"], options={"verify_aud": False})
        seen.append({"path": request.url.path, "kid": jwt.get_unverified_header(token)["kid"], **claims})
        payer = json.loads(request.content)["paymentPayload"]["payload"]["authorization"]["from"]
        if request.url.path.endswith("/verify"):
            return httpx.Response(200, json={"isValid": True, "payer": payer})
        return httpx.Response(
            200, json={"success": True, "transaction": TX, "network": NETWORK, "payer": payer}
        )

    facilitator = x402_facilitator.Facilitator(
        cfg.facilitator_url,
        verify_timeout=2,
        settle_timeout=2,
        auth_headers=x402_facilitator.cdp_auth_headers(cfg),
        transport=httpx.MockTransport(cdp),
    )
    payment, challenge = _payment(cfg)
    assert facilitator.verify(payment, challenge.requirements).is_valid
    assert facilitator.settle(payment, challenge.requirements).transaction == TX

    route = "/platform/v2/x402"
    assert [s["path"] for s in seen] == [f"{route}/verify", f"{route}/settle"]
    assert [s["uris"] for s in seen] == [
        [f"POST api.cdp.coinbase.com{route}/verify"],
        [f"POST api.cdp.coinbase.com{route}/settle"],
    ]
    now = time.time()
    for s in seen:
        assert s["kid"] == s["sub"] == KEY_ID and s["iss"] == "cdp"
        assert s["nbf"] <= now + 1 and 0 < s["exp"] - now <= 130  # short-lived, made per call


def test_cdp_keys_are_never_sent_to_another_facilitator(
    cdp_key: ec.EllipticCurvePrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINTQ_X402_FACILITATOR_URL", "https://x402.org/facilitator")
    config.reset()
    cfg = config.load().x402
    assert cfg is not None
    with pytest.raises(errors.ConfigurationError, match="only sent to the CDP facilitator"):
        x402_facilitator.cdp_auth_headers(cfg)


def test_without_cdp_keys_no_authorization_header_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    x402_mode(monkeypatch)
    monkeypatch.delenv("MINTQ_X402_CDP_SECRET_ARN", raising=False)
    config.reset()
    cfg = config.load().x402
    assert cfg is not None and x402_facilitator.cdp_auth_headers(cfg) is None
    headers: list[httpx.Headers] = []

    def public(request: httpx.Request) -> httpx.Response:
        headers.append(request.headers)
        return httpx.Response(
            200, json={"isValid": False, "invalidReason": "invalid_exact_evm_payload_signature"}
        )

    facilitator = x402_facilitator.Facilitator(
        cfg.facilitator_url, verify_timeout=2, settle_timeout=2, transport=httpx.MockTransport(public)
    )
    payment, challenge = _payment(cfg)
    verified = facilitator.verify(payment, challenge.requirements)
    assert verified.invalid_reason == "invalid_exact_evm_payload_signature"
    assert "authorization" not in headers[0]
    config.reset()
