"""A real x402 payment sent with a body ``POST /mint`` refuses: refused before the facilitator
sees it, nobody charged, and the same payment sent properly is then settled and queued once."""

from __future__ import annotations

import json
from typing import Any

from tests.support.events import http_event, invoke
from tests.support.x402_client import pay_v2, post_mint, v2_header
from tests.support.x402_stack import PRICE, Stack, rows, stack

__all__ = ["stack"]  # the fixture, used by name

REFUSED = [  # (content type, body, status, code)
    ("multipart/form-data", "{}", 415, "unsupported_media_type"),
    ("multipart/form-data; boundary=XyZ", '--XyZ\r\nContent-Disposition: form-data; name="a"\r\n\r\nb\r\n--XyZ--\r\n', 415, "unsupported_media_type"),
    ("application/json", '{"payer": "0x1", "payer": "0x2"}', 400, "duplicate_json_key"),
    ("application/json", "[]", 422, "validation_error"),
]  # fmt: skip


def test_a_payment_with_a_refused_body_is_neither_verified_nor_charged(stack: Stack, conn: Any) -> None:
    account = stack.payer()
    payment = v2_header(pay_v2(account, stack))
    for content_type, body, status, code in REFUSED:
        event = http_event("POST", "/mint", raw_body=body, headers={**payment, "content-type": content_type})
        got, answer, _ = invoke("enqueue", event)
        assert (got, answer["error"]["code"]) == (status, code), (content_type, body, answer)
    assert (stack.facilitator.verify_calls, stack.facilitator.settle_calls) == (0, 0)
    assert rows(conn, "mint_queue") == [] and rows(conn, "payments") == []
    assert stack.usdc_balance(account.address) == 10 * PRICE

    status, answer, _ = post_mint(payment)  # the same payment, with a JSON object
    assert status == 202, json.dumps(answer)
    assert stack.usdc_balance(account.address) == 9 * PRICE
    assert len(rows(conn, "mint_queue")) == 1
