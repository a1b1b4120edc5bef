"""A web3 HTTP provider whose every request ends by the worker's deadline (``mintq.rpc.web3``
builds a ``Web3`` on it).

web3 8's ``HTTPProvider`` retries allow-listed methods (receipts, ``eth_call``,
``eth_sendRawTransaction``, …) five times by default, each with the full request timeout,
so one call can take a minute whatever the caller's own timeout. Here web3's retries are
off (the worker retries by cycle, with backoff) and each request's timeout is the
configured one cut to the time left (``deadlines.Deadline.timeout``), so a node that
accepts connections and never answers costs at most the time the invocation has left.
"""

from __future__ import annotations

from typing import Any

from web3 import HTTPProvider
from web3.types import RPCEndpoint

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
