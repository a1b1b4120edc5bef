"""Any payment header, mangled at random from a real payment or made of noise, is answered with a
refusal in x402's body or, if it stayed valid, with its one mint: never a 5xx, never a mint
without a settled payment.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from x402.schemas import PaymentRequiredV1

from tests.support.x402_client import pay_v2, post_mint, v2_header
from tests.support.x402_stack import Stack, stack

__all__ = ["stack"]  # the fixture, used by name


def _leaves(value: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    if isinstance(value, dict):
        return [prefix] + [p for k, v in value.items() for p in _leaves(v, (*prefix, k))]
    if isinstance(value, list):
        return [prefix] + [p for i, v in enumerate(value) for p in _leaves(v, (*prefix, i))]
    return [prefix]


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=70),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)


@settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "60")),
    derandomize="FUZZ_EXAMPLES" not in os.environ,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_mangled_payment_header_is_a_402_or_a_mint_never_a_5xx(
    stack: Stack, conn: Any, data: Any
) -> None:
    """One real payment, then any of its fields replaced by anything (or a header of noise):
    the answer is a refusal in x402's body, or, if the change kept it valid, its one mint."""
    valid = pay_v2(stack.payer(), stack).model_dump(by_alias=True, exclude_none=True)
    kind = data.draw(st.sampled_from(["mutate", "json", "text"]))
    if kind == "text":
        header = {
            data.draw(st.sampled_from(["PAYMENT-SIGNATURE", "X-PAYMENT"])): data.draw(st.text(max_size=300))
        }
    elif kind == "json":
        header = {"PAYMENT-SIGNATURE": base64.b64encode(json.dumps(data.draw(_json)).encode()).decode()}
    else:
        path = data.draw(st.sampled_from(_leaves(valid)[1:]))
        mutated = json.loads(json.dumps(valid))
        target = mutated
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = data.draw(_json)
        header = v2_header(mutated)
    status, body, _ = post_mint(header)
    assert status in (202, 402), body
    if status == 402:
        # A refusal names its v1 reason; an empty header is no payment: a first challenge, no reason.
        assert body["success"] is False and isinstance(body.get("error", ""), str) and body["accepts"], body
        PaymentRequiredV1.model_validate(body)
    minted = {r["payment_id"] for r in conn.execute("SELECT payment_id FROM mint_queue").fetchall()}
    settled = {r["id"] for r in conn.execute("SELECT id FROM payments WHERE status = 'settled'").fetchall()}
    assert minted == settled  # every settled payment has its one queued mint, and nothing else is queued
    if status == 202:  # a change that kept the payment valid bought exactly this request
        queued = conn.execute(
            "SELECT id FROM mint_queue WHERE id = %(id)s", {"id": body["queueId"]}
        ).fetchone()
        assert queued is not None and len(minted) >= 1
