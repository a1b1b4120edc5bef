"""Browser fixtures: one real Chromium per session (Debian's, via Playwright), a fresh
context and page per test, both closed at the end."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.browser import CHROMIUM_ARGS, ensure_chromium


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
    context = browser.new_context()
    try:
        yield context.new_page()
    finally:
        context.close()
