"""Who pays for a mint, and how: the seam between the API and a payment protocol.

A deployment runs in one payment mode. ``free`` admits the payer named in the body;
``x402`` (next) will admit only the verified payer of a settled payment, never a body field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from mintq import addresses, config, errors


@dataclass(frozen=True, kw_only=True)
class Admission:
    """A request the queue may accept: the recipient of the mint and how it was paid."""

    payer: str
    payment_type: str


class PaymentGate(Protocol):
    mode: config.PaymentMode

    def admit(self, *, body_payer: object, headers: Mapping[str, str]) -> Admission: ...


class FreeGate:
    """Faucet-style deployment: anyone may ask, the body names the recipient."""

    mode = config.PaymentMode.FREE

    def admit(self, *, body_payer: object, headers: Mapping[str, str]) -> Admission:
        return Admission(payer=addresses.parse(body_payer, field="payer"), payment_type=self.mode.value)


def gate(cfg: config.Config) -> PaymentGate:
    if cfg.payment_mode is config.PaymentMode.FREE:
        return FreeGate()
    raise errors.ConfigurationError(f"payment mode {cfg.payment_mode.value!r} is not available in this build")
