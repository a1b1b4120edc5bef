"""x402 reason codes, and the name each protocol version knows a reason by.

mintq decides with one vocabulary (v2's names, as the ``x402`` package's EVM mechanism and
the facilitators use them, plus the reasons its worker records on chain evidence). What a
client reads must be in its version's list: v1 clients (npm ``x402`` 1.x and those built on
it, such as ``x402-fetch``) validate a 402's ``error`` and ``X-PAYMENT-RESPONSE``'s
``errorReason`` against v1's fixed ``ErrorReasons``; v2 clients read ``PAYMENT-RESPONSE``'s
``errorReason`` and ``PAYMENT-REQUIRED``'s ``error`` against the v2 names.
``tests/functional/test_x402_402.py`` checks both against the installed packages' own lists.
"""

from __future__ import annotations

# v2 names (x402.mechanisms.evm.constants, which imports web3, and the spec's generic ones).
INVALID_PAYLOAD = "invalid_payload"
INVALID_VERSION = "invalid_x402_version"
UNSUPPORTED_SCHEME = "unsupported_scheme"
INVALID_NETWORK = "invalid_network"
INVALID_REQUIREMENTS = "invalid_payment_requirements"
RECIPIENT_MISMATCH = "invalid_exact_evm_payload_recipient_mismatch"
VALUE_MISMATCH = "invalid_exact_evm_payload_authorization_value_mismatch"
VALID_BEFORE = "invalid_exact_evm_payload_authorization_valid_before"
VALID_AFTER = "invalid_exact_evm_payload_authorization_valid_after"
INVALID_SIGNATURE = "invalid_exact_evm_payload_signature"
INSUFFICIENT_BALANCE = "invalid_exact_evm_insufficient_balance"
NONCE_USED = "invalid_exact_evm_nonce_already_used"
SETTLEMENT_PENDING = "settlement_pending"
UNEXPECTED_VERIFY = "unexpected_verify_error"
UNEXPECTED_SETTLE = "unexpected_settle_error"

# What the worker records when the chain decides a pending payment (payment_reconciler.Reconciler).
EXPIRED_UNSETTLED = "authorization_expired_unsettled"
CANCELED = "authorization_canceled"
USED_ELSEWHERE = "authorization_used_for_another_transfer"

#: ``PAYMENT-REQUIRED``'s ``error`` on a first challenge: the reference server's text.
PAYMENT_REQUIRED_TEXT = "Payment required"

#: The worker's reasons under the v2 names a client knows.
_V2_NAMES = {EXPIRED_UNSETTLED: VALID_BEFORE, CANCELED: NONCE_USED, USED_ELSEWHERE: NONCE_USED}

#: v1 names for reasons v1 calls otherwise (v1 has no name for a pending settlement: omitted).
_V1_NAMES: dict[str, str | None] = {
    VALUE_MISMATCH: "invalid_exact_evm_payload_authorization_value",
    INSUFFICIENT_BALANCE: "insufficient_funds",
    NONCE_USED: "invalid_transaction_state",
    EXPIRED_UNSETTLED: "payment_expired",
    CANCELED: "invalid_payment",
    USED_ELSEWHERE: "invalid_transaction_state",
    SETTLEMENT_PENDING: None,
}
#: Reasons v1 knows by the same name (a subset of v1's ``ErrorReasons``; the test checks it).
_V1_SAME = frozenset(
    {
        INVALID_PAYLOAD,
        INVALID_VERSION,
        UNSUPPORTED_SCHEME,
        INVALID_NETWORK,
        INVALID_REQUIREMENTS,
        RECIPIENT_MISMATCH,
        VALID_BEFORE,
        VALID_AFTER,
        INVALID_SIGNATURE,
        UNEXPECTED_VERIFY,
        UNEXPECTED_SETTLE,
        "invalid_exact_evm_payload_undeployed_smart_wallet",
        "insufficient_funds",
        "invalid_scheme",
        "invalid_payment",
        "payment_expired",
        "invalid_transaction_state",
    }
)
#: What a v1 client is told for a reason v1 has no name for (a v2 facilitator's own, say).
V1_FALLBACK = "invalid_payment"


def v2_name(reason: str) -> str:
    """The reason as v2 clients read it (``PAYMENT-RESPONSE``, ``PAYMENT-REQUIRED.error``)."""
    return _V2_NAMES.get(reason, reason)


def v1_name(reason: str) -> str | None:
    """The reason as v1 clients read it (the 402 body's ``error``, ``X-PAYMENT-RESPONSE``);
    None when v1 has no reason for it and the field is left out."""
    if reason in _V1_NAMES:
        return _V1_NAMES[reason]
    return reason if reason in _V1_SAME else V1_FALLBACK
