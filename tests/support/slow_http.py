"""An HTTP forwarder on 127.0.0.1 that makes an upstream (the local x402 facilitator) slow,
silent or forgetful, per path, for tests of what a payer hears back.

Behaviours (``SlowHttp.on(path, behaviour)``):

* ``"forward"`` (default): pass the request on and the answer back;
* ``"hold"``: count the request in ``arrived[path]``, wait until ``release()`` (or
  ``hold_limit`` seconds), then forward it; a facilitator whose verify takes as long as
  the test needs;
* ``"delay"``: wait ``delay_seconds`` before forwarding;
* ``"hang"``: accept the request and never answer, never forward (a socket that accepts
  and then goes quiet);
* ``"lose"``: forward it (the upstream acts on it, e.g. broadcasts a settlement), then
  never answer: the caller cannot know what happened;
* ``"drip"``: forward it, then send the answer one byte every ``delay_seconds`` (each read
  of the caller's well inside a per-read timeout, the whole answer as slow as the test likes).

``close()`` stops the server and lets every held or hanging request go.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import urlsplit

Behaviour = Literal["forward", "hold", "delay", "hang", "lose", "drip"]


class SlowHttp:
    def __init__(self, upstream_url: str, *, hold_limit: float = 30.0, delay_seconds: float = 1.0) -> None:
        parts = urlsplit(upstream_url)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.hold_limit = hold_limit
        self.delay_seconds = delay_seconds
        self.behaviours: dict[str, Behaviour] = {}
        self.arrived: Counter[str] = Counter()
        self.forwarded: Counter[str] = Counter()
        self._gate = threading.Event()
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="slow-http", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def on(self, path: str, behaviour: Behaviour) -> None:
        self.behaviours[path] = behaviour

    def release(self) -> None:
        """Let every held request (and any later one) through."""
        self._gate.set()

    def wait_arrivals(self, path: str, count: int, timeout: float = 30.0) -> bool:
        """Wait until ``count`` requests for ``path`` have arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self.arrived[path] >= count:
                    return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        self._stopped.set()
        self._gate.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> SlowHttp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes, str]:
        upstream = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            upstream.request(method, path, body=body, headers=headers)
            response = upstream.getresponse()
            return response.status, response.read(), response.getheader("Content-Type") or "application/json"
        finally:
            upstream.close()
            with self._lock:
                self.forwarded[path] += 1

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt: str, *args: object) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path
                behaviour = owner.behaviours.get(path, "forward")
                with owner._lock:
                    owner.arrived[path] += 1
                if behaviour == "hang":
                    owner._stopped.wait()
                    self.close_connection = True
                    return
                if behaviour == "hold":
                    owner._gate.wait(owner.hold_limit)
                elif behaviour == "delay":
                    owner._stopped.wait(owner.delay_seconds)
                headers = {"Content-Type": self.headers.get("Content-Type") or "application/json"}
                status, payload, content_type = owner._forward(self.command, path, headers, body)
                if behaviour == "lose":
                    owner._stopped.wait()
                    self.close_connection = True
                    return
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if behaviour != "drip":
                    self.wfile.write(payload)
                    return
                self.wfile.flush()
                for byte in payload:
                    if owner._stopped.wait(owner.delay_seconds):
                        self.close_connection = True
                        return
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()

            do_GET = _serve
            do_POST = _serve

        return Handler
