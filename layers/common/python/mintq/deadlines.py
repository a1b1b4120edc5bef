"""The instant by which a batch worker's external calls must be done.

A scheduled invocation ends at a known moment (its context's remaining time less a safety
margin). Every call the worker makes to the outside (RPC, KMS, a facilitator) takes its
timeout from one shared ``Deadline``: its own configured timeout, or the time left if that
is shorter, and none at all once the time is up (``errors.DeadlineReached``). A call can
then never carry a cycle past the invocation's end, retries included, since the worker
disables its clients' own retries and retries by cycle instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mintq import errors

#: Below this many seconds a call is not worth starting: it would only time out.
MIN_CALL_SECONDS = 0.05


class Deadline:
    """A ``clock()`` instant (``time.monotonic`` by default), or ``None`` for no bound.

    Shared by reference: the worker moves it each invocation, the clients it built read it
    at every call. Setting a float is atomic, so a signer pool's threads may share one.
    """

    def __init__(self, at: float | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.at = at
        self.clock = clock

    def set(self, at: float | None) -> None:
        self.at = at

    def remaining(self) -> float | None:
        """Seconds left (negative once past), or ``None`` when unbounded."""
        return None if self.at is None else self.at - self.clock()

    def timeout(self, configured: float, what: str) -> float:
        """The timeout in seconds for one call of ``what``: ``configured``, cut to the time
        left. Raises ``errors.DeadlineReached`` when less than ``MIN_CALL_SECONDS`` is left."""
        left = self.remaining()
        if left is None:
            return configured
        if left < MIN_CALL_SECONDS:
            raise errors.DeadlineReached(f"{what}: not started, the invocation's deadline has come")
        return min(configured, left)
