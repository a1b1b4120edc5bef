"""One error tree for mintq.

Every error carries a stable machine ``code``; a docstring is the default message. The
HTTP status the API answers with is ``api``'s alone (``api.HTTP_STATUS``): worker-only
errors (chain, signing, the invocation's deadline) have none.
"""

from __future__ import annotations


class MintqError(Exception):
    """Internal error."""

    code = "internal_error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self)


# --- request errors (4xx) -------------------------------------------------


class InvalidRequest(MintqError):
    """The request is invalid."""

    code = "invalid_request"


class MalformedJson(InvalidRequest):
    """The request body is not valid JSON."""

    code = "malformed_json"


class ValidationFailed(InvalidRequest):
    """The request body does not match the expected shape."""

    code = "validation_error"


class DuplicateJsonKey(MalformedJson):
    """A name appears twice in one JSON object: which one counts would depend on the parser."""

    code = "duplicate_json_key"


class UnsupportedMediaType(InvalidRequest):
    """Send the body as application/json."""

    code = "unsupported_media_type"


class InvalidAddress(InvalidRequest):
    """The address is not a valid Ethereum address."""

    code = "invalid_address"


class InvalidQueueId(InvalidRequest):
    """The queue id is not a UUID."""

    code = "invalid_queue_id"


class PayloadTooLarge(InvalidRequest):
    """The request body is too large."""

    code = "payload_too_large"


class IdempotencyConflict(MintqError):
    """This Idempotency-Key was already used with a different request."""

    code = "idempotency_key_reused"


class NotFound(MintqError):
    """Not found."""

    code = "not_found"


class InvalidSetting(InvalidRequest):
    """The setting is unknown or its value breaks the setting's rule."""

    code = "invalid_setting"


class OriginNotAllowed(MintqError):
    """A browser page on an origin not allowed to mint (``AllowedOrigins``) sent the request."""

    code = "origin_not_allowed"


class PayerLimitReached(MintqError):
    """This payer already has the maximum number of pending requests."""

    code = "payer_limit_reached"


# --- payments (x402) -------------------------------------------------------


class PaymentInvalid(MintqError):
    """The payment was refused; ``code`` is the x402 reason (e.g. invalid_exact_evm_payload_signature).

    Raised by the payment's decoding and term checks (``mintq.x402_payment``); the paid mint
    answers it as a refusal (``mint_outcomes.Refused``), so it never reaches the API as an error."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason

    @property
    def code(self) -> str:  # type: ignore[override]  # the x402 reason is the stable code
        return self.reason


class SupplyExhausted(MintqError):
    """No mints remain for new requests; nobody was charged."""

    code = "supply_exhausted"


# --- our own faults (5xx) -------------------------------------------------


class FacilitatorUnavailable(MintqError):
    """The payment facilitator is unreachable or failing; nothing was charged, retry later."""

    code = "facilitator_unavailable"


class SupplyUnknown(MintqError):
    """The remaining supply cannot be read from the chain right now; nothing was charged."""

    code = "supply_unknown"


class ApiClosed(MintqError):
    """The API is closed for maintenance; retry later."""

    code = "api_closed"


class DatabaseError(MintqError):
    """The database could not complete the operation."""

    code = "database_error"


class ConfigurationError(MintqError):
    """The service is not configured correctly."""

    code = "configuration_error"


class InvalidTransition(MintqError):
    """A state change was attempted from a state that does not allow it."""

    code = "invalid_transition"


# --- chain ----------------------------------------------------------------


class ChainError(MintqError):
    """The chain RPC failed."""

    code = "chain_error"


class ChainUnavailable(ChainError):
    """The chain RPC is unreachable, rate-limited or timing out."""

    code = "chain_unavailable"


class SignerUnderfunded(ChainError):
    """The signer's balance does not cover a batch's worst-case fee (gas limit x max fee per gas)."""

    code = "signer_underfunded"


class NonceConflict(ChainError):
    """The chain's nonce for the signer is behind what the database records as mined."""

    code = "nonce_conflict"


class FeeCeilingReached(ChainError):
    """The base fee is above the operator's ``max_fee_per_gas_gwei``: batches are held."""

    code = "fee_ceiling"


class SimulatedRevert(ChainError):
    """The transaction would revert."""

    code = "simulated_revert"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DeadlineReached(MintqError):
    """An external call was not started (or cut short) because the invocation's time is up."""

    code = "deadline_reached"


class SigningError(MintqError):
    """The transaction could not be signed."""

    code = "signing_error"


class SignerUnavailable(SigningError):
    """The remote signer (AWS KMS) is unreachable, throttling or failing; nothing was signed."""

    code = "signer_unavailable"
