"""The named points where tests (and the fault suite's killed processes) crash the worker.

Each is a moment whose crash the write-ahead record must survive: the worker calls its
``FaultHook`` with the point's name as it passes, and the hook may raise or kill the
process. In production the hook does nothing.
"""

from __future__ import annotations

from collections.abc import Callable

#: ``hook(point)`` is called at every point below; see ``docs/architecture.md``.
FaultHook = Callable[[str], None]

#: In the order a batch passes them.
CRASH_POINTS = (
    "after_claim",  # requests claimed in the open transaction, nothing signed
    "after_sign",  # signed, not yet recorded (the transaction still open)
    "after_record",  # batch and attempt committed, not broadcast
    "after_broadcast",  # sent (or refused) by the node, maybe not yet marked sent
    "after_receipt",  # receipt seen, nothing finalised
    "mid_record",  # inside the finalising transaction, before its commit
)


def no_fault(point: str) -> None:
    """The production hook: passing a point does nothing."""
    return None
