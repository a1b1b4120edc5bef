"""Browser fixtures: one real Chromium per session (Debian's, via Playwright), a fresh
context and page per test, both closed at the end; and the local stack the page is served by."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import stack
from tests.support.browser import CHROMIUM_ARGS, ensure_chromium

#: Links are checked, never followed: the host does not resolve.
EXPLORER = "https://explorer.invalid/tx/{hash}"
#: A phone's viewport (CSS pixels), so every test also checks the narrow layout.
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """A Playwright ``Browser`` on the system Chromium (no browser download)."""
    from playwright.sync_api import sync_playwright

    executable = ensure_chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A page in its own context (own storage, cookies), closed after the test."""
    context = browser.new_context(viewport=PHONE)
    try:
        yield context.new_page()
    finally:
        context.close()


def _stack(pg_server: Any, tmp_path_factory: pytest.TempPathFactory, mode: str) -> Iterator[stack.Stack]:
    with stack.running(
        pg_server.admin_url,
        f"mintq_test_{os.getpid()}_page_{mode}",
        tmp_path_factory.mktemp(f"stack-{mode}"),
        payment_mode=mode,
        env={"MINTQ_EXPLORER_TX_URL": EXPLORER},
    ) as running:
        yield running


@pytest.fixture(scope="module")
def free_stack(pg_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[stack.Stack]:
    """The local stack in free mode (own database, anvil with 1 s blocks, worker running)."""
    yield from _stack(pg_server, tmp_path_factory, "free")


@pytest.fixture(scope="module")
def x402_stack(pg_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[stack.Stack]:
    """The local stack in x402 mode: TestUSDC, anvil accounts 1-9 funded, a local facilitator."""
    yield from _stack(pg_server, tmp_path_factory, "x402")
