"""An x402 deployment's environment (Base Sepolia USDC terms) for tests without a chain."""

from __future__ import annotations

import pytest

NETWORK = "eip155:84532"
USDC = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"  # Base Sepolia USDC
PAY_TO = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
PRICE = 10_000


def x402_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """Payment mode x402 with complete terms and the default facilitator."""
    for name, value in {
        "MINTQ_PAYMENT_MODE": "x402",
        "MINTQ_X402_PRICE": str(PRICE),
        "MINTQ_X402_PAY_TO": PAY_TO,
        "MINTQ_X402_ASSET": USDC,
        "MINTQ_X402_NETWORK": NETWORK,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MINTQ_X402_FACILITATOR_URL", raising=False)
