"""Deployment configuration, read from the environment once per execution environment:
the payment mode and its x402 terms, the chain, limits and timeouts, origins.

Credentials (database logins, signer keys, CDP keys) are in ``mintq.credentials``.
"""

from __future__ import annotations

import enum
import functools
import os
from dataclasses import dataclass

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


def env(name: str) -> str | None:
    """The variable's value stripped, or None when it is unset or blank."""
    value = os.environ.get(name, "").strip()
    return value or None


@functools.cache
def load() -> Config:
    mode = env("MINTQ_PAYMENT_MODE") or PaymentMode.FREE.value
    try:
        payment_mode = PaymentMode(mode)
    except ValueError as exc:
        raise errors.ConfigurationError(f"MINTQ_PAYMENT_MODE must be free or x402, not {mode!r}") from exc
    chain_id = env("MINTQ_CHAIN_ID")
    return Config(
        payment_mode=payment_mode,
        rpc_url=env("MINTQ_RPC_URL"),
        token_address=env("MINTQ_TOKEN_ADDRESS"),
        chain_id=int(chain_id) if chain_id else None,
        max_body_bytes=int(env("MINTQ_MAX_BODY_BYTES") or 4096),
        batch_safety_seconds=float(env("MINTQ_BATCH_SAFETY_SECONDS") or 10),
        rpc_timeout_seconds=float(env("MINTQ_RPC_TIMEOUT_SECONDS") or 10),
        x402=_x402() if payment_mode is PaymentMode.X402 else None,
        retention_in_worker=(env("MINTQ_RETENTION_IN_WORKER") or "").lower() in ("1", "true", "yes"),
        explorer_tx_url=_explorer_tx_url(),
        allowed_origins=origins.parse(env("MINTQ_ALLOWED_ORIGINS")),
    )


def _explorer_tx_url() -> str | None:
    template = env("MINTQ_EXPLORER_TX_URL")
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
        if not env(name)
    ]
    if missing:
        raise errors.ConfigurationError(f"x402 mode needs {', '.join(missing)}")
    network = str(env("MINTQ_X402_NETWORK"))
    if not network.startswith("eip155:") or not network[7:].isdigit():
        raise errors.ConfigurationError(
            f"MINTQ_X402_NETWORK must be CAIP-2 eip155:<chain id>, not {network!r}"
        )
    price = int(str(env("MINTQ_X402_PRICE")))
    if price <= 0:
        raise errors.ConfigurationError("MINTQ_X402_PRICE must be a positive number of atomic units")
    return X402Config(
        price=price,
        pay_to=addresses.parse(env("MINTQ_X402_PAY_TO"), field="MINTQ_X402_PAY_TO"),
        asset=addresses.parse(env("MINTQ_X402_ASSET"), field="MINTQ_X402_ASSET"),
        network=network,
        asset_name=env("MINTQ_X402_ASSET_NAME") or "USDC",
        asset_version=env("MINTQ_X402_ASSET_VERSION") or "2",
        facilitator_url=(
            env("MINTQ_X402_FACILITATOR_URL")
            or (CDP_FACILITATOR_URL if env("MINTQ_X402_CDP_SECRET_ARN") else DEFAULT_FACILITATOR_URL)
        ).rstrip("/"),
        v1_network=env("MINTQ_X402_V1_NETWORK") or V1_NETWORK_NAMES.get(int(network[7:])),
        max_timeout_seconds=int(env("MINTQ_X402_MAX_TIMEOUT_SECONDS") or 300),
        verify_timeout_seconds=float(env("MINTQ_X402_VERIFY_TIMEOUT_SECONDS") or 5),
        settle_timeout_seconds=float(env("MINTQ_X402_SETTLE_TIMEOUT_SECONDS") or 7),
        settle_lease_seconds=int(env("MINTQ_X402_SETTLE_LEASE_SECONDS") or 120),
        cdp_secret_arn=env("MINTQ_X402_CDP_SECRET_ARN"),
        description=env("MINTQ_X402_DESCRIPTION") or "One token mint",
    )


def reset() -> None:
    """Forget cached configuration and credentials (tests change the environment between cases)."""
    load.cache_clear()
    from mintq import credentials  # credentials reads this module: not at import time

    credentials.reset()
