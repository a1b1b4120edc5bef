"""The batch repository's guarded moves (``mintq.worker.repository``) against a real PostgreSQL:
a move reports whether it moved a row, and a miss that can only be a bug raises."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from mintq import errors
from mintq.units import Wei
from mintq.worker import batches, repository
from mintq.worker.batches import TRANSITIONS, UNFINISHED, BatchStatus

PAYERS = [f"0x{i:040x}" for i in range(1, 6)]


def enqueue(conn: Any, n: int) -> None:
    for payer in PAYERS[:n]:
        conn.execute(
            "INSERT INTO mint_queue (payer_address, payment_type) VALUES (%(p)s, 'free')", {"p": payer}
        )


GWEI = Wei(10**9)
TWO_GWEI = Wei(2 * GWEI)


def new_batch(
    batch_id: uuid.UUID,
    *,
    nonce: int,
    tx_hash: str,
    mint_count: int,
    max_fee_per_gas: Wei = TWO_GWEI,
    max_priority_fee_per_gas: Wei = GWEI,
) -> batches.NewBatch:
    """A signed batch of ``mint_count`` mints from signer ``PAYERS[4]`` on token ``PAYERS[3]``."""
    return batches.NewBatch(
        id=batch_id,
        chain_id=31337,
        signer=PAYERS[4],
        token=PAYERS[3],
        nonce=nonce,
        tx_hash=tx_hash,
        raw_tx=b"\x02raw",
        mint_count=mint_count,
        gas_limit=100_000,
        max_fee_per_gas=max_fee_per_gas,
        max_priority_fee_per_gas=max_priority_fee_per_gas,
        amount_per_mint=None,
    )


def test_the_transitions_cover_every_state_and_only_signed_and_pending_move() -> None:
    assert set(TRANSITIONS) == set(BatchStatus)
    assert {BatchStatus.SIGNED, BatchStatus.PENDING} == UNFINISHED
    assert all(BatchStatus.SIGNED not in moves for moves in TRANSITIONS.values()), (
        "nothing goes back to signed"
    )


def test_releasing_or_failing_a_request_no_longer_processing_is_an_invalid_transition(conn: Any) -> None:
    enqueue(conn, 3)

    def pending() -> int:
        return int(
            conn.execute("SELECT count(*) AS n FROM mint_queue WHERE status = 'pending'").fetchone()["n"]
        )

    with (
        pytest.raises(errors.InvalidTransition),
        repository.claiming(conn, limit=3, batch_id=uuid.uuid4()) as claimed,
    ):
        assert len(claimed) == 3
        repository.release(conn, claimed[:1])  # moved: fine
        repository.release(conn, claimed[:2])  # the first is pending again: a bug
    assert pending() == 3, "the claim's whole transaction rolled back"
    with (
        pytest.raises(errors.InvalidTransition),
        repository.claiming(conn, limit=3, batch_id=uuid.uuid4()) as claimed,
    ):
        repository.fail(conn, claimed[:1], "supply gone")
        repository.fail(conn, claimed[:1], "twice")
    assert pending() == 3
    with repository.claiming(conn, limit=3, batch_id=uuid.uuid4()) as claimed:
        repository.release(conn, claimed[:1])
        repository.fail(conn, claimed[1:], "supply gone")
    assert pending() == 1


def test_the_claim_cursor_moves_past_the_claimed_requests_as_their_transaction_commits(conn: Any) -> None:
    enqueue(conn, 5)

    def cursor() -> int:
        return int(conn.execute("SELECT claimed_through FROM queue_cursor").fetchone()["claimed_through"])

    before = cursor()
    with pytest.raises(errors.InvalidTransition), repository.claiming(conn, limit=2, batch_id=uuid.uuid4()):
        raise errors.InvalidTransition("the batch is not recorded")
    assert cursor() == before, "rolled back with the claim"
    with repository.claiming(conn, limit=2, batch_id=uuid.uuid4()) as claimed:
        assert [c.queue_position for c in claimed] == sorted(c.queue_position for c in claimed)
        repository.release(conn, claimed[1:])  # released requests stay below the cursor, as re-queued ones
    assert cursor() == claimed[-1].queue_position > before


def test_a_batch_moves_once_and_a_second_move_reports_none(conn: Any) -> None:
    enqueue(conn, 2)
    batch_id = uuid.uuid4()
    with repository.claiming(conn, limit=2, batch_id=batch_id) as claimed:
        repository.insert_signed(
            conn,
            new_batch(batch_id, nonce=0, tx_hash="0x" + "ab" * 32, mint_count=len(claimed)),
        )
    [batch] = repository.inflight(conn, chain_id=31337, signer=PAYERS[4])
    assert (batch.status, batch.nonce, batch.latest.raw_tx, batch.latest.max_fee_per_gas) == (
        BatchStatus.SIGNED,
        0,
        b"\x02raw",
        2 * 10**9,
    )
    assert repository.mark_sent(conn, batch_id) is True
    assert repository.mark_sent(conn, batch_id) is False, "already pending"
    assert repository.drop(conn, batch_id, "nonce used elsewhere") == 2
    assert repository.drop(conn, batch_id, "again") == 0, "a finished batch moves no more"
    assert repository.inflight(conn, chain_id=31337, signer=PAYERS[4]) == []


def test_fees_come_back_from_the_database_as_exact_integers_of_wei(conn: Any) -> None:
    """Past 2**53 a float would round; the fees travel as JSON integers, never as text or floats."""
    enqueue(conn, 1)
    batch_id = uuid.uuid4()
    huge = Wei(10**30 + 1)
    with repository.claiming(conn, limit=1, batch_id=batch_id):
        repository.insert_signed(
            conn,
            new_batch(
                batch_id,
                nonce=7,
                tx_hash="0x" + "cd" * 32,
                mint_count=1,
                max_fee_per_gas=huge,
                max_priority_fee_per_gas=Wei(huge - 1),
            ),
        )
    [batch] = repository.inflight(conn, chain_id=31337, signer=PAYERS[4])
    fees = (batch.latest.max_fee_per_gas, batch.latest.max_priority_fee_per_gas)
    assert fees == (10**30 + 1, 10**30) and all(type(f) is int for f in fees)
    assert (batch.nonce, batch.gas_limit) == (7, 100_000)
