"""A web3 HTTP provider whose every request ends by the worker's deadline (``mintq.rpc.web3``
builds a ``Web3`` on it).

web3 8's ``HTTPProvider`` retries allow-listed methods (receipts, ``eth_call``,
``eth_sendRawTransaction``, …) five times by default, each with the full request timeout,
and its requests session bounds each read of an answer, not the answer: one call could take
a minute, or as long as a node sending a byte at a time liked. Here each request is one POST,
never retried (the worker retries by cycle, with backoff), through ``mintq.bounded_http`` on
the environment's pooled httpx client (``rpc.http_client``), within the configured timeout
cut to the time left (``deadlines.Deadline.timeout``). Transport faults are
``httpx.HTTPError`` (``mintq.chain`` reads them as the node being unavailable). web3's batch
requests, which would still go through requests, are not used.
"""

from __future__ import annotations

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
            rpc_url, cache_allowed_requests=True, cacheable_requests={RPCEndpoint("eth_chainId")}
        )
        self.timeout = timeout
        self.deadline = deadline

    def _make_request(self, method: RPCEndpoint, request_data: bytes) -> bytes:
        """POST ``request_data`` (one JSON-RPC request) and return the answer's body, all within
        the configured timeout cut to the time left. Raises ``httpx.HTTPError`` on a transport
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
