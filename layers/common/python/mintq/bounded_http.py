"""An httpx POST that ends within its timeout in all, however the server answers.

httpx's timeouts bound each network operation (connecting, each write, each read), not the
request: a server that sends its answer a few bytes at a time, each read inside the timeout,
holds the caller as long as it likes (measured: a 1 s timeout returned after 6.5 s). The API's
external calls (the facilitator's verify and settle, the supply read) must end by the
invocation's deadline, so the request runs in a daemon thread that the caller waits for at
most ``timeout`` seconds; past it, the abandoned request's answer is dropped.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx


def post(client: httpx.Client, url: str, *, timeout: float, connect: float, **kwargs: Any) -> httpx.Response:
    """``client.post(url, **kwargs)`` within ``timeout`` seconds in all (``connect``: at most
    this many of them to connect). Raises what httpx raises, and ``httpx.ReadTimeout`` when the
    whole answer has not come within ``timeout``: sent or not, its fate is unknown, as with any
    read timeout."""
    import httpx

    results: list[httpx.Response] = []
    failures: list[BaseException] = []
    done = threading.Event()

    def send() -> None:
        try:
            results.append(client.post(url, timeout=httpx.Timeout(timeout, connect=connect), **kwargs))
        except BaseException as exc:  # raised in the waiting caller below
            failures.append(exc)
        finally:
            done.set()

    threading.Thread(target=send, name="bounded-post", daemon=True).start()
    if not done.wait(timeout):
        raise httpx.ReadTimeout(f"no whole answer within {timeout:.2f} s")
    if failures:
        raise failures[0]
    return results[0]
