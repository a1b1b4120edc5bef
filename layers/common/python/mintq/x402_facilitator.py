"""The x402 facilitator client: ``POST /verify`` and ``POST /settle`` over HTTP.

One ``Facilitator`` (and connection pool) per execution environment and facilitator URL
(``facilitator``); with CDP API keys configured every call carries fresh CDP JWT headers
(``cdp_auth_headers``). httpx is imported on first use: free mode never pays for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError
from x402.schemas import PaymentRequirements, SettleResponse, VerifyResponse
from x402.schemas.v1 import PaymentRequirementsV1

from mintq import bounded_http, config, credentials, errors

if TYPE_CHECKING:
    import httpx

    from mintq.x402_payment import Payment

#: Per-endpoint headers (``{"verify": {...}, "settle": {...}}``), made afresh for every call.
AuthHeaders = Callable[[], dict[str, dict[str, str]]]
#: Seconds a connection to the facilitator may take at most, whatever the call's timeout.
CONNECT_TIMEOUT_SECONDS = 3.0


class FacilitatorUnreachable(Exception):
    """The request never reached the facilitator (nothing can have been broadcast)."""


class FacilitatorAmbiguous(Exception):
    """The settle request may have reached the facilitator, but no answer came back."""


class Facilitator:
    """``POST /verify`` and ``POST /settle`` over HTTP, parsed into the x402 package's types.

    Written here rather than using ``x402.http.HTTPFacilitatorClientSync`` because that
    client turns every non-200 into a bare ``ValueError``: mintq must tell a refused
    payment (402) from an unreachable facilitator (503) from a settle whose outcome is
    unknown (pending), and those differ by where the failure happened.
    """

    def __init__(
        self,
        url: str,
        *,
        verify_timeout: float,
        settle_timeout: float,
        auth_headers: AuthHeaders | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """``url`` is the facilitator's base URL; timeouts are seconds per call."""
        self.url = url.rstrip("/")
        self.verify_timeout = verify_timeout
        self.settle_timeout = settle_timeout
        #: per-endpoint headers, made afresh for every call (CDP's are short-lived JWTs)
        self.auth_headers = auth_headers
        import httpx

        self._client = httpx.Client(follow_redirects=False, transport=transport)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def _body(
        self, payment: Payment, requirements: PaymentRequirements | PaymentRequirementsV1
    ) -> dict[str, Any]:
        return {
            "x402Version": payment.version,
            "paymentPayload": payment.envelope.model_dump(by_alias=True, exclude_none=True),
            "paymentRequirements": requirements.model_dump(by_alias=True, exclude_none=True),
        }

    def _post(self, path: str, body: dict[str, Any], timeout: float) -> httpx.Response:
        auth = self.auth_headers() if self.auth_headers else {}
        headers = {"Content-Type": "application/json", **auth.get(path, {})}
        return bounded_http.post(
            self._client,
            f"{self.url}/{path}",
            json=body,
            headers=headers,
            timeout=timeout,
            connect=min(timeout, CONNECT_TIMEOUT_SECONDS),
        )

    def verify(
        self,
        payment: Payment,
        requirements: PaymentRequirements | PaymentRequirementsV1,
        *,
        timeout: float | None = None,
    ) -> VerifyResponse:
        """The facilitator's verdict on ``payment`` (``is_valid``, ``invalid_reason``, ``payer``),
        within ``timeout`` seconds (default the configured verify timeout). Raises
        ``FacilitatorUnreachable`` on any transport failure or answer it cannot parse: verify
        has no side effects, so none of those can have charged anyone."""
        import httpx

        try:
            response = self._post(
                "verify", self._body(payment, requirements), _within(self.verify_timeout, timeout)
            )
        except httpx.HTTPError as exc:  # verify has no side effects: any failure is "unavailable"
            raise FacilitatorUnreachable(f"verify: {type(exc).__name__}: {exc}") from exc
        parsed = _parse(response, VerifyResponse)
        if parsed is None:
            raise FacilitatorUnreachable(f"verify answered HTTP {response.status_code}")
        return parsed

    def settle(
        self,
        payment: Payment,
        requirements: PaymentRequirements | PaymentRequirementsV1,
        *,
        timeout: float | None = None,
    ) -> SettleResponse:
        """The facilitator's settlement of ``payment`` (``success``, ``transaction``,
        ``error_reason``), within ``timeout`` seconds (default the configured settle timeout).
        Raises ``FacilitatorUnreachable`` when the request was never sent (nothing charged),
        ``FacilitatorAmbiguous`` when it was sent and no readable answer came back (it may
        have been broadcast)."""
        import httpx

        try:
            response = self._post(
                "settle", self._body(payment, requirements), _within(self.settle_timeout, timeout)
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise FacilitatorUnreachable(f"settle: {type(exc).__name__}: {exc}") from exc
        except httpx.HTTPError as exc:  # sent, then lost: it may have broadcast
            raise FacilitatorAmbiguous(f"settle: {type(exc).__name__}: {exc}") from exc
        parsed = _parse(response, SettleResponse)
        if parsed is None:
            # A 5xx after the request arrived says nothing about whether it broadcast.
            raise FacilitatorAmbiguous(f"settle answered HTTP {response.status_code}")
        return parsed


def _within(configured: float, left: float | None) -> float:
    """The configured timeout, cut to the caller's time left (seconds) when it is shorter."""
    return configured if left is None else max(min(configured, left), 0.01)


_Model = TypeVar("_Model", bound=BaseModel)


def _parse(response: httpx.Response, model: type[_Model]) -> _Model | None:
    """The facilitator's answer, also from a 4xx that carries one (some answer 400 for invalid)."""
    if response.status_code >= 500:
        return None
    try:
        return model.model_validate(response.json())
    except (ValueError, ValidationError):
        return None


_facilitators: dict[str, Facilitator] = {}


def facilitator(cfg: config.X402Config) -> Facilitator:
    """The client for ``cfg.facilitator_url``: one (and one connection pool) per execution environment."""
    client = _facilitators.get(cfg.facilitator_url)
    if client is None:
        client = Facilitator(
            cfg.facilitator_url,
            verify_timeout=cfg.verify_timeout_seconds,
            settle_timeout=cfg.settle_timeout_seconds,
            auth_headers=cdp_auth_headers(cfg),
        )
        _facilitators[cfg.facilitator_url] = client
    return client


def cdp_auth_headers(cfg: config.X402Config) -> AuthHeaders | None:
    """With CDP API keys configured, a factory of fresh per-endpoint JWT headers (cdp-sdk's);
    None without keys. Raises ``errors.ConfigurationError`` when cdp-sdk is missing or the
    keys would be sent to another host than CDP's facilitator."""
    keys = credentials.cdp_api_keys()
    if keys is None:
        return None
    try:  # optional: only deployments on the CDP facilitator ship cdp-sdk in the layer
        from cdp.x402 import create_facilitator_config  # type: ignore[import-not-found]
    except ImportError as exc:
        raise errors.ConfigurationError("the CDP facilitator needs the cdp-sdk package") from exc
    cdp = create_facilitator_config(*keys)
    # CDP's JWTs name the host and path they are for: sent anywhere else they fail, or leak.
    if urlsplit(cdp["url"]).netloc != urlsplit(cfg.facilitator_url).netloc:
        raise errors.ConfigurationError(
            f"CDP API keys are only sent to the CDP facilitator ({cdp['url']}),"
            f" not to {cfg.facilitator_url}: unset MINTQ_X402_FACILITATOR_URL or the CDP secret"
        )
    create_headers: AuthHeaders = cdp["create_headers"]
    return create_headers


def forget_clients() -> None:
    """Forget every client without closing it: a forked process must not use the keep-alive
    sockets it inherited, nor close them under its parent."""
    _facilitators.clear()


def reset() -> None:
    """Close and forget every client (after a configuration change, and in tests)."""
    for client in _facilitators.values():
        client.close()
    _facilitators.clear()
