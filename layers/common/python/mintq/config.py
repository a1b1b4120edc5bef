"""Deployment configuration, read from the environment once per execution environment.

Secrets (database credentials, the signer key) come from Secrets Manager through
Powertools Parameters when an ``*_SECRET_ARN`` is set; plain variables are for local runs.
"""

from __future__ import annotations

import enum
import functools
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from mintq import addresses, errors, origins


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
    #: seconds of each batch invocation kept back from its chain calls, to record and unlock
    batch_safety_seconds: float = 10.0
    #: seconds one JSON-RPC request of the batch worker may take (less when its deadline is nearer)
    rpc_timeout_seconds: float = 10.0
    #: the x402 terms; set exactly when ``payment_mode`` is x402
    x402: X402Config | None = None
    #: the batch worker also runs retention daily (the local stack; AWS has its own schedule)
    retention_in_worker: bool = False
    #: the chain explorer's transaction page, ``{hash}`` standing for the transaction hash
    #: (``MINTQ_EXPLORER_TX_URL``, e.g. https://basescan.org/tx/{hash}); None on a local chain
    explorer_tx_url: str | None = None
    #: browser origins allowed by the deployment (``AllowedOrigins``); ``("*",)``: reads only
    allowed_origins: tuple[str, ...] = ("*",)


@dataclass(frozen=True, kw_only=True)
class X402Config:
    """What one mint costs and how it is paid (x402 ``exact`` scheme, EIP-3009 asset)."""

    price: int  #: in the asset's atomic units (USDC: 6 decimals, so 1000000 = 1 USDC)
    pay_to: str
    asset: str
    network: str  #: CAIP-2, e.g. eip155:8453
    #: the asset's EIP-712 domain; Base USDC is "USD Coin", Base Sepolia USDC is "USDC"
    asset_name: str
    asset_version: str
    facilitator_url: str
    #: v1 clients name networks ("base-sepolia"); derived from the chain id when known
    v1_network: str | None
    #: seconds an authorization may stay valid (the payer's signing window)
    max_timeout_seconds: int
    verify_timeout_seconds: float
    #: how long a request waits for /settle before calling the outcome pending
    settle_timeout_seconds: float
    #: after this, a payment a request was settling is the worker's to reconcile
    settle_lease_seconds: int
    #: Secrets Manager secret with CDP API keys ({"apiKeyId", "apiKeySecret"}), for the CDP facilitator
    cdp_secret_arn: str | None
    description: str


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
        batch_safety_seconds=float(_env("MINTQ_BATCH_SAFETY_SECONDS") or 10),
        rpc_timeout_seconds=float(_env("MINTQ_RPC_TIMEOUT_SECONDS") or 10),
        x402=_x402() if payment_mode is PaymentMode.X402 else None,
        retention_in_worker=(_env("MINTQ_RETENTION_IN_WORKER") or "").lower() in ("1", "true", "yes"),
        explorer_tx_url=_explorer_tx_url(),
        allowed_origins=origins.parse(_env("MINTQ_ALLOWED_ORIGINS")),
    )


def _explorer_tx_url() -> str | None:
    template = _env("MINTQ_EXPLORER_TX_URL")
    if template is None:
        return None
    if "{hash}" not in template or not template.startswith(("https://", "http://")):
        raise errors.ConfigurationError(
            f"MINTQ_EXPLORER_TX_URL must be an http(s) URL with {{hash}} in it, not {template!r}"
        )
    return template


#: x402 v1 names networks; these are the ones v1 clients know (CAIP-2 chain id -> name).
V1_NETWORK_NAMES = {8453: "base", 84532: "base-sepolia", 137: "polygon", 80002: "polygon-amoy"}
DEFAULT_FACILITATOR_URL = "https://x402.org/facilitator"
#: Coinbase's facilitator: the default when CDP API keys are configured
CDP_FACILITATOR_URL = "https://api.cdp.coinbase.com/platform/v2/x402"


def _x402() -> X402Config:
    missing = [
        name
        for name in ("MINTQ_X402_PRICE", "MINTQ_X402_PAY_TO", "MINTQ_X402_ASSET", "MINTQ_X402_NETWORK")
        if not _env(name)
    ]
    if missing:
        raise errors.ConfigurationError(f"x402 mode needs {', '.join(missing)}")
    network = str(_env("MINTQ_X402_NETWORK"))
    if not network.startswith("eip155:") or not network[7:].isdigit():
        raise errors.ConfigurationError(
            f"MINTQ_X402_NETWORK must be CAIP-2 eip155:<chain id>, not {network!r}"
        )
    price = int(str(_env("MINTQ_X402_PRICE")))
    if price <= 0:
        raise errors.ConfigurationError("MINTQ_X402_PRICE must be a positive number of atomic units")
    return X402Config(
        price=price,
        pay_to=addresses.parse(_env("MINTQ_X402_PAY_TO"), field="MINTQ_X402_PAY_TO"),
        asset=addresses.parse(_env("MINTQ_X402_ASSET"), field="MINTQ_X402_ASSET"),
        network=network,
        asset_name=_env("MINTQ_X402_ASSET_NAME") or "USDC",
        asset_version=_env("MINTQ_X402_ASSET_VERSION") or "2",
        facilitator_url=(
            _env("MINTQ_X402_FACILITATOR_URL")
            or (CDP_FACILITATOR_URL if _env("MINTQ_X402_CDP_SECRET_ARN") else DEFAULT_FACILITATOR_URL)
        ).rstrip("/"),
        v1_network=_env("MINTQ_X402_V1_NETWORK") or V1_NETWORK_NAMES.get(int(network[7:])),
        max_timeout_seconds=int(_env("MINTQ_X402_MAX_TIMEOUT_SECONDS") or 300),
        verify_timeout_seconds=float(_env("MINTQ_X402_VERIFY_TIMEOUT_SECONDS") or 5),
        settle_timeout_seconds=float(_env("MINTQ_X402_SETTLE_TIMEOUT_SECONDS") or 7),
        settle_lease_seconds=int(_env("MINTQ_X402_SETTLE_LEASE_SECONDS") or 120),
        cdp_secret_arn=_env("MINTQ_X402_CDP_SECRET_ARN"),
        description=_env("MINTQ_X402_DESCRIPTION") or "One token mint",
    )


@functools.cache
def cdp_api_keys() -> tuple[str, str] | None:
    """The CDP facilitator's API key id and secret, from Secrets Manager, if configured."""
    cfg = load().x402
    if cfg is None or cfg.cdp_secret_arn is None:
        return None
    secret = _secret(cfg.cdp_secret_arn, json_object=True)
    if not secret.get("apiKeyId") or not secret.get("apiKeySecret"):
        raise errors.ConfigurationError("the CDP secret must be a JSON object with apiKeyId and apiKeySecret")
    return str(secret["apiKeyId"]), str(secret["apiKeySecret"])


@functools.cache
def database_url() -> str:
    """The PostgreSQL conninfo of the API functions (and the migrator): ``MINTQ_DATABASE_URL`` or
    an RDS-style secret (``MINTQ_DATABASE_SECRET_ARN``). May go through a transaction pooler
    (RDS Proxy): nothing on this path keeps state in the session."""
    return _database_url("MINTQ_DATABASE_URL", "MINTQ_DATABASE_SECRET_ARN")


@functools.cache
def worker_database_url() -> str:
    """The batch worker's conninfo: ``MINTQ_WORKER_DATABASE_URL`` or ``MINTQ_WORKER_DATABASE_SECRET_ARN``,
    else the same as ``database_url()``. It must reach PostgreSQL directly, never through a
    transaction pooler: the worker holds its signer's session advisory lock (it refuses a
    pooled session, see ``db.connect``)."""
    if _env("MINTQ_WORKER_DATABASE_URL") or _env("MINTQ_WORKER_DATABASE_SECRET_ARN"):
        return _database_url("MINTQ_WORKER_DATABASE_URL", "MINTQ_WORKER_DATABASE_SECRET_ARN")
    return database_url()


def _database_url(url_var: str, arn_var: str) -> str:
    """The conninfo set directly, or built from the secret: JSON {username, password, host,
    port, dbname}. ``MINTQ_DATABASE_HOST`` replaces the secret's host (an RDS Proxy endpoint)
    for ``MINTQ_DATABASE_SECRET_ARN`` only."""
    url, arn = _value_or_secret_arn(url_var, arn_var)
    if url:
        return url
    return _url_from_secret(
        arn, host=_env("MINTQ_DATABASE_HOST") if arn_var == "MINTQ_DATABASE_SECRET_ARN" else None
    )


def _url_from_secret(arn: str, *, host: str | None = None) -> str:
    """The conninfo in an RDS-style secret; ``host`` (a proxy's endpoint) replaces the secret's."""
    secret = _secret(arn, json_object=True)
    missing = [k for k in ("username", "password", "host") if not secret.get(k)]
    if missing:
        raise errors.ConfigurationError(f"the database secret {arn} lacks {', '.join(missing)}")
    user = quote(str(secret["username"]), safe="")
    password = quote(str(secret["password"]), safe="")
    host = host or secret["host"]
    port = secret.get("port", 5432)
    dbname = secret.get("dbname", "postgres")
    return f"postgresql://{user}:{password}@{host}:{port}/{dbname}?sslmode=require"


@functools.cache
def database_reader_url() -> str | None:
    """A read replica for the status endpoints: ``MINTQ_DATABASE_READER_URL`` or an RDS-style
    secret in ``MINTQ_DATABASE_READER_SECRET_ARN``; None when there is none (status reads
    go to the primary)."""
    url = _env("MINTQ_DATABASE_READER_URL")
    if url:
        return url
    arn = _env("MINTQ_DATABASE_READER_SECRET_ARN")
    return _url_from_secret(arn) if arn else None


@functools.cache
def signer_private_key() -> str:
    """The minter's private key: ``MINTQ_SIGNER_PRIVATE_KEY`` or a Secrets Manager secret."""
    key, arn = _value_or_secret_arn("MINTQ_SIGNER_PRIVATE_KEY", "MINTQ_SIGNER_SECRET_ARN")
    if key:
        return key
    value = _secret(arn)
    if isinstance(value, bytes):
        value = value.decode()
    return str(value).strip()


def _value_or_secret_arn(value_var: str, arn_var: str) -> tuple[str | None, str]:
    """The value set directly, or else the ARN of the secret that holds it (one is required)."""
    value = _env(value_var)
    if value:
        return value, ""
    arn = _env(arn_var)
    if not arn:
        raise errors.ConfigurationError(f"set {value_var} or {arn_var}")
    return None, arn


def _secret(arn: str, *, json_object: bool = False) -> Any:
    """A Secrets Manager value (cached 5 minutes); any failure is a configuration error that
    names the secret, never its value."""
    from aws_lambda_powertools.utilities import parameters

    try:
        value = parameters.get_secret(arn, transform="json" if json_object else None, max_age=300)
    except parameters.exceptions.TransformParameterError as exc:
        raise errors.ConfigurationError(f"the secret {arn} must be a JSON object") from exc
    except parameters.exceptions.GetParameterError as exc:
        raise errors.ConfigurationError(f"cannot read the secret {arn}: {exc}") from exc
    if json_object and not isinstance(value, dict):
        raise errors.ConfigurationError(f"the secret {arn} must be a JSON object")
    return value


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


#: Variables that give the worker local signer keys (the keys, or a secret holding them).
LOCAL_SIGNER_VARIABLES = ("MINTQ_SIGNER_PRIVATE_KEY", "MINTQ_SIGNER_PRIVATE_KEYS", "MINTQ_SIGNER_SECRET_ARN")


def signer_kms_key_ids() -> list[str]:
    """The AWS KMS keys of the signer pool: ``MINTQ_SIGNER_KMS_KEY_IDS``, comma-separated key
    ids, key ARNs or aliases (one makes a single signer, several a pool). Empty when the pool
    signs with local keys.

    Raises ``ConfigurationError`` unless exactly one of KMS keys and local keys is configured
    (a pool is all KMS or all local).
    """
    raw = _env("MINTQ_SIGNER_KMS_KEY_IDS")
    ids = [k.strip() for k in raw.split(",") if k.strip()] if raw else []
    local = [name for name in LOCAL_SIGNER_VARIABLES if _env(name)]
    if ids and local:
        raise errors.ConfigurationError(
            f"set MINTQ_SIGNER_KMS_KEY_IDS or {' / '.join(local)}, not both: the signer pool is"
            " either AWS KMS keys or local keys"
        )
    if not ids and not local:
        raise errors.ConfigurationError(
            "no signer: set MINTQ_SIGNER_KMS_KEY_IDS (AWS KMS keys) or MINTQ_SIGNER_PRIVATE_KEY,"
            " MINTQ_SIGNER_PRIVATE_KEYS or MINTQ_SIGNER_SECRET_ARN (local keys)"
        )
    return ids


def reset() -> None:
    """Forget cached configuration (tests change the environment between cases)."""
    load.cache_clear()
    cdp_api_keys.cache_clear()
    database_url.cache_clear()
    database_reader_url.cache_clear()
    worker_database_url.cache_clear()
    signer_private_key.cache_clear()
