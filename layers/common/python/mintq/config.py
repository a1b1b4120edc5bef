"""Deployment configuration, read from the environment once per execution environment.

Secrets (database credentials, the signer key) come from Secrets Manager through
Powertools Parameters when an ``*_SECRET_ARN`` is set; plain variables are for local runs.
"""

from __future__ import annotations

import enum
import functools
import os
from dataclasses import dataclass
from urllib.parse import quote

from mintq import errors


class PaymentMode(enum.StrEnum):
    FREE = "free"  #: anyone may enqueue (faucet-style deployment)
    X402 = "x402"  #: each request is paid with the x402 protocol


@dataclass(frozen=True, kw_only=True)
class Config:
    payment_mode: PaymentMode
    rpc_url: str | None
    token_address: str | None
    chain_id: int | None
    #: bytes a request body may have before it is refused with 413
    max_body_bytes: int


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


@functools.cache
def load() -> Config:
    mode = _env("MINTQ_PAYMENT_MODE") or PaymentMode.FREE.value
    try:
        payment_mode = PaymentMode(mode)
    except ValueError as exc:
        raise errors.ConfigurationError(f"MINTQ_PAYMENT_MODE must be free or x402, not {mode!r}") from exc
    chain_id = _env("MINTQ_CHAIN_ID")
    return Config(
        payment_mode=payment_mode,
        rpc_url=_env("MINTQ_RPC_URL"),
        token_address=_env("MINTQ_TOKEN_ADDRESS"),
        chain_id=int(chain_id) if chain_id else None,
        max_body_bytes=int(_env("MINTQ_MAX_BODY_BYTES") or 4096),
    )


@functools.cache
def database_url() -> str:
    """The PostgreSQL conninfo: ``MINTQ_DATABASE_URL`` or an RDS-style secret."""
    url = _env("MINTQ_DATABASE_URL")
    if url:
        return url
    arn = _env("MINTQ_DATABASE_SECRET_ARN")
    if not arn:
        raise errors.ConfigurationError("set MINTQ_DATABASE_URL or MINTQ_DATABASE_SECRET_ARN")
    from aws_lambda_powertools.utilities import parameters

    secret = parameters.get_secret(arn, transform="json", max_age=300)
    if not isinstance(secret, dict):
        raise errors.ConfigurationError("the database secret must be a JSON object")
    user = quote(str(secret["username"]), safe="")
    password = quote(str(secret["password"]), safe="")
    host = secret["host"]
    port = secret.get("port", 5432)
    dbname = secret.get("dbname", "postgres")
    return f"postgresql://{user}:{password}@{host}:{port}/{dbname}?sslmode=require"


@functools.cache
def signer_private_key() -> str:
    """The minter's private key: ``MINTQ_SIGNER_PRIVATE_KEY`` or a Secrets Manager secret."""
    key = _env("MINTQ_SIGNER_PRIVATE_KEY")
    if key:
        return key
    arn = _env("MINTQ_SIGNER_SECRET_ARN")
    if not arn:
        raise errors.ConfigurationError("set MINTQ_SIGNER_PRIVATE_KEY or MINTQ_SIGNER_SECRET_ARN")
    from aws_lambda_powertools.utilities import parameters

    value = parameters.get_secret(arn, max_age=300)
    if isinstance(value, bytes):
        value = value.decode()
    return str(value).strip()


def signer_private_keys() -> list[str]:
    """Every minter key of the signer pool: ``MINTQ_SIGNER_PRIVATE_KEYS`` (comma-separated,
    or a JSON list in the ``MINTQ_SIGNER_SECRET_ARN`` secret), else the single signer key."""
    keys = _env("MINTQ_SIGNER_PRIVATE_KEYS")
    if keys:
        return [k.strip() for k in keys.split(",") if k.strip()]
    single = signer_private_key()
    if single.startswith("["):
        import json

        parsed = json.loads(single)
        if isinstance(parsed, list) and parsed:
            return [str(k) for k in parsed]
    return [single]


def reset() -> None:
    """Forget cached configuration (tests change the environment between cases)."""
    load.cache_clear()
    database_url.cache_clear()
    signer_private_key.cache_clear()
