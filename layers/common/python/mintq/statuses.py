"""The SQL enums of requests and payments mirrored in Python (the worker's batch and
attempt states are in ``mintq.worker.batches``). ``tests/integration/test_schema.py``
compares each with ``enum_range()`` in PostgreSQL, so a migration that adds a state cannot
leave the code behind."""

from __future__ import annotations

import enum


class MintStatus(enum.StrEnum):
    """The SQL enum ``mint_status``: one request's lifecycle."""

    PENDING = "pending"  #: waiting in line
    PROCESSING = "processing"  #: claimed into a batch that is signed or in flight
    COMPLETED = "completed"  #: minted (its batch was mined with status 1)
    FAILED = "failed"  #: given up, with an error message


class PaymentStatus(enum.StrEnum):
    """The SQL enum ``payment_status``: one x402 payment's lifecycle."""

    SETTLING = "settling"  #: recorded and sent to the facilitator; outcome not known yet
    SETTLEMENT_PENDING = "settlement_pending"  #: may have been broadcast; the worker reconciles it
    SETTLED = "settled"  #: the transfer is on chain and the mint is queued
    FAILED = "failed"  #: never charged
