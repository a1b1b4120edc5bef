"""Secrets from AWS Secrets Manager (moto): the database, the minter keys and CDP's API keys."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from mintq import config, credentials, errors
from tests.support.x402_env import x402_mode

REGION = "us-east-1"
KEY_A = "0x" + "11" * 32
KEY_B = "0x" + "22" * 32


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("MINTQ_DATABASE_URL", "MINTQ_SIGNER_PRIVATE_KEY", "MINTQ_SIGNER_PRIVATE_KEYS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        _reset_caches()
        yield boto3.client("secretsmanager", region_name=REGION)
    _reset_caches()


def _reset_caches() -> None:
    from aws_lambda_powertools.utilities import parameters

    config.reset()
    # Also drops Powertools' per-process providers, so the next boto3 client is made inside moto.
    parameters.clear_caches()


def _secret(client: Any, name: str, value: object) -> str:
    body = value if isinstance(value, str) else json.dumps(value)
    return str(client.create_secret(Name=name, SecretString=body)["ARN"])


def test_the_database_url_is_built_from_an_rds_style_secret_with_its_password_escaped(
    secrets: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    arn = _secret(
        secrets,
        "mintq/db",
        {"username": "mintq", "password": "p@ss/w:rd", "host": "db.example", "port": 6432, "dbname": "q"},
    )
    monkeypatch.setenv("MINTQ_DATABASE_SECRET_ARN", arn)
    assert (
        credentials.database_url() == "postgresql://mintq:p%40ss%2Fw%3Ard@db.example:6432/q?sslmode=require"
    )


def test_the_api_may_go_through_a_proxy_host_while_the_worker_keeps_its_own_direct_login(
    secrets: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = _secret(secrets, "mintq/db-api", {"username": "api", "password": "a", "host": "db.internal"})
    worker = _secret(
        secrets, "mintq/db-worker", {"username": "worker", "password": "w", "host": "db.internal"}
    )
    monkeypatch.setenv("MINTQ_DATABASE_SECRET_ARN", api)
    monkeypatch.setenv("MINTQ_DATABASE_HOST", "proxy.example")
    # Without a worker login of its own the worker would share the API's (local use only).
    assert credentials.worker_database_url() == credentials.database_url()
    assert credentials.database_url() == "postgresql://api:a@proxy.example:5432/postgres?sslmode=require"
    monkeypatch.setenv("MINTQ_WORKER_DATABASE_SECRET_ARN", worker)
    config.reset()
    # The proxy host is for the API's secret only: the worker goes to the database itself.
    assert (
        credentials.worker_database_url() == "postgresql://worker:w@db.internal:5432/postgres?sslmode=require"
    )
    monkeypatch.setenv("MINTQ_WORKER_DATABASE_URL", "postgresql://direct@db.internal/mintq")
    config.reset()
    assert credentials.worker_database_url() == "postgresql://direct@db.internal/mintq"


def test_the_mintq_command_finds_its_database_as_the_api_does(
    secrets: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import typer

    from mintq.cli.app import Target

    monkeypatch.setenv(
        "MINTQ_DATABASE_SECRET_ARN",
        _secret(secrets, "mintq/db-cli", {"username": "cli", "password": "c", "host": "db.example"}),
    )
    assert Target().url() == "postgresql://cli:c@db.example:5432/postgres?sslmode=require"
    assert Target("postgresql://given@h/db").url() == "postgresql://given@h/db"
    # A blank variable is an unset one, here as everywhere: no database given is wrong usage.
    monkeypatch.setenv("MINTQ_DATABASE_SECRET_ARN", "  ")
    _reset_caches()
    with pytest.raises(typer.BadParameter, match="no database given"):
        Target().url()


def test_a_database_secret_that_is_not_a_json_object_is_a_configuration_error(
    secrets: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINTQ_DATABASE_SECRET_ARN", _secret(secrets, "mintq/db", "not json"))
    with pytest.raises(errors.ConfigurationError, match="must be a JSON object"):
        credentials.database_url()
    monkeypatch.setenv("MINTQ_DATABASE_SECRET_ARN", _secret(secrets, "mintq/db-list", ["a", "b"]))
    _reset_caches()
    with pytest.raises(errors.ConfigurationError, match="must be a JSON object"):
        credentials.database_url()
    monkeypatch.setenv("MINTQ_DATABASE_SECRET_ARN", _secret(secrets, "mintq/db-partial", {"username": "u"}))
    _reset_caches()
    with pytest.raises(errors.ConfigurationError, match="lacks password, host"):
        credentials.database_url()


def test_a_secret_that_cannot_be_read_is_a_configuration_error_naming_it(
    secrets: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:mintq/absent-AbCdEf"
    monkeypatch.setenv("MINTQ_SIGNER_SECRET_ARN", missing)
    with pytest.raises(errors.ConfigurationError, match=r"cannot read the secret .*absent"):
        credentials.signer_private_key()


def test_the_minter_key_and_a_signer_pool_come_from_the_signer_secret(
    secrets: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINTQ_SIGNER_SECRET_ARN", _secret(secrets, "mintq/signer", f" {KEY_A}\n"))
    assert credentials.signer_private_keys() == [KEY_A]

    monkeypatch.setenv("MINTQ_SIGNER_SECRET_ARN", _secret(secrets, "mintq/pool", [KEY_A, KEY_B]))
    _reset_caches()
    assert credentials.signer_private_keys() == [KEY_A, KEY_B]


def test_without_a_key_or_a_secret_the_worker_refuses_to_start(
    secrets: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MINTQ_SIGNER_SECRET_ARN", raising=False)
    with pytest.raises(errors.ConfigurationError):
        credentials.signer_private_keys()


def test_cdp_api_keys_come_from_their_secret_and_must_be_complete(
    secrets: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    x402_mode(monkeypatch)
    monkeypatch.setenv(
        "MINTQ_X402_CDP_SECRET_ARN", _secret(secrets, "mintq/cdp", {"apiKeyId": "id-1", "apiKeySecret": "s"})
    )
    assert credentials.cdp_api_keys() == ("id-1", "s")
    assert config.load().x402 is not None
    assert config.load().x402.facilitator_url == config.CDP_FACILITATOR_URL  # type: ignore[union-attr]

    monkeypatch.setenv("MINTQ_X402_CDP_SECRET_ARN", _secret(secrets, "mintq/cdp-bad", {"apiKeyId": "id-1"}))
    _reset_caches()
    with pytest.raises(errors.ConfigurationError, match="apiKeySecret"):
        credentials.cdp_api_keys()
