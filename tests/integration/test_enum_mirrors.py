"""Each SQL enum and its Python mirror name the same states, in the same order."""

from __future__ import annotations

import enum
from typing import Any

import pytest
from psycopg import sql

from mintq.statuses import MintStatus, PaymentStatus
from mintq.worker.batches import AttemptStatus, BatchStatus


@pytest.mark.parametrize(
    ("sql_type", "mirror"),
    [
        ("mint_status", MintStatus),
        ("batch_status", BatchStatus),
        ("attempt_status", AttemptStatus),
        ("payment_status", PaymentStatus),
    ],
)
def test_each_python_enum_mirrors_its_sql_enum(conn: Any, sql_type: str, mirror: type[enum.StrEnum]) -> None:
    # A type name is an identifier, not a value: composed as one, never pasted into the text.
    query = sql.SQL("SELECT enum_range(NULL::{})::text[] AS labels").format(sql.Identifier(sql_type))
    row = conn.execute(query).fetchone()
    assert row["labels"] == [m.value for m in mirror]
