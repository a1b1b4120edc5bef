"""A web3 HTTP provider whose every request ends by the worker's deadline (``mintq.rpc.web3``
builds a ``Web3`` on it).

web3 8's ``HTTPProvider`` retries allow-listed methods (receipts, ``eth_call``,
``eth_sendRawTransaction``, …) five times by default, each with the full request timeout,
so one call can take a minute whatever the caller's own timeout. Here web3's retries are
off (the worker retries by cycle, with backoff) and each request's timeout is the
configured one cut to the time left (``deadlines.Deadline.timeout``), so a node that
accepts connections and never answers costs at most the time the invocation has left.

Each request is one POST through ``mintq.bounded_http`` on the environment's pooled httpx
client (``rpc.http_client``), not web3's requests session: requests, like httpx, bounds each
read of the answer, not the answer, so a node sending its answers a byte at a time held a
call for as long as it liked. Transport faults are ``httpx.HTTPError`` (``mintq.chain`` reads
them as the node being unavailable).
"""

from __future__ import annotations

from typing import Any

from web3 import HTTPProvider
from web3.types import RPCEndpoint

from mintq import bounded_http, rpc
from mintq.deadlines import Deadline


class DeadlineHTTPProvider(HTTPProvider):
    """``HTTPProvider`` without retries, each request's timeout ``timeout`` seconds cut to
    what ``deadline`` leaves (``errors.DeadlineReached`` when nothing is left)."""

    def __init__(self, rpc_url: str, *, timeout: float, deadline: Deadline) -> None:
        # eth_chainId is cached: web3's validation middleware asks it before every eth_call and
        # eth_estimateGas, a second round trip each; a node's chain id does not change under it.
        super().__init__(
            rpc_url,
            exception_retry_configuration=None,
            cache_allowed_requests=True,
            cacheable_requests={RPCEndpoint("eth_chainId")},
        )
        self.timeout = timeout
        self.deadline = deadline

    def get_request_kwargs(self) -> dict[str, Any]:  # type: ignore[override]
        kwargs = dict(super().get_request_kwargs())
        kwargs["timeout"] = self.deadline.timeout(self.timeout, "JSON-RPC request")
        return kwargs

    def _make_request(self, method: RPCEndpoint, request_data: bytes) -> bytes:
        """POST ``request_data`` (one JSON-RPC request) and return the answer's body, all within
        the call's timeout (``get_request_kwargs``). Raises ``httpx.HTTPError`` on a transport
        fault, an HTTP error status or a whole answer not in time; ``errors.DeadlineReached``
        unsent when the deadline has come. (web3's batch requests, unused here, keep requests.)"""
        timeout = self.deadline.timeout(self.timeout, f"JSON-RPC {method}")
        response = bounded_http.post(
            rpc.http_client(),
            str(self.endpoint_uri),
            timeout=timeout,
            connect=min(timeout, rpc.CONNECT_TIMEOUT_SECONDS),
            content=request_data,
            headers={"Content-Type": "application/json"},
        )
        response.raise_for_status()
        return response.content
