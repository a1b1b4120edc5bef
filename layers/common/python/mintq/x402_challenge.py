"""What a paid mint asks for: x402 ``PaymentRequirements``, stated in both protocol versions.

One price (``config.X402Config``) is one ``Challenge``: the v2 ``PaymentRequired`` (its one
``accepts`` entry is the v2 ``PaymentRequirements``) and, when the network has a v1 name,
the v1 ``PaymentRequirements``. Payments are checked against it (``mintq.x402_payment``), the
facilitator is asked with it (``mintq.x402_facilitator``), and a refused or missing payment is
answered with it again (``mintq.api_mint_answers`` encodes it for HTTP).

Light on purpose: the enqueue function imports this on a paid request, so no web3 and none
of x402's EVM modules (they pull web3 in).
"""

from __future__ import annotations

from dataclasses import dataclass

from x402.schemas import PaymentRequired, PaymentRequirements, ResourceInfo
from x402.schemas.v1 import PaymentRequirementsV1

from mintq import config

#: The only x402 scheme mintq accepts: ``exact`` (an EIP-3009 ``transferWithAuthorization``).
SCHEME = "exact"


@dataclass(frozen=True)
class Challenge:
    """One price, stated in both protocol versions: ``v2`` (``PaymentRequired`` with one
    ``accepts`` entry) and ``v1`` (``PaymentRequirementsV1``, None when the network has no
    v1 name: v1 payments are then refused)."""

    v2: PaymentRequired
    v1: PaymentRequirementsV1 | None

    @property
    def requirements(self) -> PaymentRequirements:
        """The v2 ``PaymentRequirements`` (scheme, network, asset, amount, payTo, ...)."""
        return self.v2.accepts[0]


def challenge(cfg: config.X402Config, resource_url: str) -> Challenge:
    """The challenge for ``resource_url`` (the absolute URL of ``POST /mint``) at ``cfg``'s
    price (``amount`` in the asset's atomic units). The v2 ``error`` is left unset: the
    answer that carries the challenge fills it in."""
    extra = {"name": cfg.asset_name, "version": cfg.asset_version}
    v2 = PaymentRequired(
        error=None,
        resource=ResourceInfo(url=resource_url, description=cfg.description, mime_type="application/json"),
        accepts=[
            PaymentRequirements(
                scheme=SCHEME,
                network=cfg.network,
                asset=cfg.asset,
                amount=str(cfg.price),
                pay_to=cfg.pay_to,
                max_timeout_seconds=cfg.max_timeout_seconds,
                extra=extra,
            )
        ],
    )
    v1 = None
    if cfg.v1_network:
        v1 = PaymentRequirementsV1(
            scheme=SCHEME,
            network=cfg.v1_network,
            max_amount_required=str(cfg.price),
            resource=resource_url,
            description=cfg.description,
            mime_type="application/json",
            pay_to=cfg.pay_to,
            max_timeout_seconds=cfg.max_timeout_seconds,
            asset=cfg.asset,
            extra=extra,
        )
    return Challenge(v2=v2, v1=v1)
