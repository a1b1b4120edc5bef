"""POST /mint from browser pages: only the API's own origin and the listed ones may mint."""

from __future__ import annotations

from typing import Any

import pytest

from mintq import config
from tests.support.events import http_event, invoke

ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
OWN = "https://localhost"  # the test events' host, behind API Gateway's https


def _mint(origin: str | None) -> tuple[int, dict[str, Any]]:
    headers = {"host": "localhost"} | ({"origin": origin} if origin else {})
    status, body, _ = invoke("enqueue", http_event("POST", "/mint", body={"payer": ALICE}, headers=headers))
    return status, body


@pytest.fixture
def allowed(monkeypatch: pytest.MonkeyPatch) -> Any:
    def set_origins(value: str | None) -> None:
        if value is None:
            monkeypatch.delenv("MINTQ_ALLOWED_ORIGINS", raising=False)
        else:
            monkeypatch.setenv("MINTQ_ALLOWED_ORIGINS", value)
        config.reset()

    yield set_origins
    config.reset()


def test_with_the_wildcard_only_the_apis_own_pages_and_non_browsers_mint(
    database_url: str, conn: Any, allowed: Any
) -> None:
    allowed(None)  # the default: "*"
    status, body = _mint("https://dapp.example")
    assert (status, body["error"]["code"]) == (403, "origin_not_allowed")
    assert conn.execute("SELECT count(*) AS n FROM mint_queue").fetchone()["n"] == 0
    assert _mint(OWN)[0] == 202
    assert _mint(None)[0] == 202


def test_a_listed_origin_mints_and_others_do_not(database_url: str, allowed: Any) -> None:
    allowed("https://dapp.example,https://staging.example")
    assert _mint("https://dapp.example")[0] == 202
    status, body = _mint("https://evil.example")
    assert (status, body["error"]["code"]) == (403, "origin_not_allowed")
