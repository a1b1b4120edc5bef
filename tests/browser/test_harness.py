"""The browser harness itself: Debian's Chromium runs JavaScript and fetches from a local server."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.browser import artifact_path


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!doctype html><title>harness</title><p id=greeting>hello</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def local_site() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_chromium_loads_a_local_page_and_runs_script(page: Any, local_site: str) -> None:
    page.goto(local_site)
    assert page.locator("#greeting").text_content() == "hello"
    assert page.evaluate("() => 6 * 7") == 42
    assert "Chrome/" in page.evaluate("() => navigator.userAgent")
    shot = artifact_path("harness.png")
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 0
