"""Credentials, read once per execution environment: the database logins (API, worker, read
replica), the signer's local keys or AWS KMS key ids, and the CDP facilitator's API keys.

Each comes from a plain variable (local runs) or from Secrets Manager through Powertools
Parameters when its ``*_SECRET_ARN`` is set (cached 5 minutes). Every failure is an
``errors.ConfigurationError`` that names the variable or the secret, never a secret's value.
"""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import quote

from mintq import errors
from mintq.config import env as _env
from mintq.config import load


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


#: The API functions' database (also the migrator's and the ``mintq`` command's): its conninfo,
#: or the ARN of an RDS-style secret holding the login.
DATABASE_URL_VARIABLE = "MINTQ_DATABASE_URL"
DATABASE_SECRET_VARIABLE = "MINTQ_DATABASE_SECRET_ARN"


def database_configured() -> bool:
    """Whether ``database_url()`` has a conninfo or a secret to go by (neither is read here)."""
    return bool(_env(DATABASE_URL_VARIABLE) or _env(DATABASE_SECRET_VARIABLE))


@functools.cache
def database_url() -> str:
    """The PostgreSQL conninfo of the API functions (and the migrator): ``MINTQ_DATABASE_URL`` or
    an RDS-style secret (``MINTQ_DATABASE_SECRET_ARN``). May go through a transaction pooler
    (RDS Proxy): nothing on this path keeps state in the session."""
    return _database_url(DATABASE_URL_VARIABLE, DATABASE_SECRET_VARIABLE)


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
        arn, host=_env("MINTQ_DATABASE_HOST") if arn_var == DATABASE_SECRET_VARIABLE else None
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
    """Forget cached credentials (``config.reset`` calls this)."""
    cdp_api_keys.cache_clear()
    database_url.cache_clear()
    database_reader_url.cache_clear()
    worker_database_url.cache_clear()
    signer_private_key.cache_clear()
