"""A local stand-in for API Gateway (HTTP API, Lambda proxy payload format 2.0).

Each request becomes the event API Gateway would send, the handler runs in-process with a
Lambda-like context, and its result is translated back the way API Gateway does it. Calls to one
plain handler are serialised (a Lambda execution environment handles one event at a time);
different handlers run in parallel. A handler that is a pool of execution environments
(:class:`devstack.lambdas.ExecutionEnvironments`) takes as many events at once as it has
environments, as Lambda scales a function out behind API Gateway.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import uuid
from contextlib import AbstractContextManager, nullcontext
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from devstack.cors import Cors, is_preflight
from devstack.lambdas import ExecutionEnvironments, FakeContext, Handler
from devstack.payload_v2 import Request, error_answer, http_answer, lambda_event
from devstack.routes import CompiledRoute, Route, compile_route, match

__all__ = ["MAX_PAYLOAD_BYTES", "ApiServer", "Route", "serve"]

log = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # API Gateway's request payload quota


class _HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Preflight(Exception):
    """A CORS preflight: the gateway answers it before any route is matched."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 overflows when many clients open a connection per
    # request at once, and the kernel then resets some of them; the kernel caps this at somaxconn.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], routes: list[CompiledRoute], cors: Cors | None) -> None:
        self.routes = routes
        self.cors = cors
        super().__init__(address, _RequestHandler)


class _RequestHandler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, like API Gateway; every response sets Content-Length
    timeout = 60  # drop idle keep-alive connections so their threads end
    _headers_buffer: list[bytes]  # BaseHTTPRequestHandler's pending head, sent by flush_headers()

    def setup(self) -> None:
        super().setup()
        # A response goes out in one write (see _respond); with Nagle's algorithm off nothing
        # small is ever held back waiting for the client's delayed ACK either.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def __getattr__(self, name: str) -> Any:
        # Any other method (TRACE, CONNECT, made-up ones) goes through the routes too, and so gets
        # API Gateway's 404 rather than http.server's HTML 501.
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http.server: " + format, *args)  # the access log below replaces stderr chatter

    def _dispatch(self) -> None:
        started = time.perf_counter()
        request_id = str(uuid.uuid4())
        label = "-"
        cors = self.server.cors
        origin = self.headers.get("origin")
        preflighted = False
        try:
            raw_path, _, raw_query = self.path.partition("?")
            body = self._read_body()
            if cors is not None and is_preflight(
                self.command, {k.lower(): v for k, v in self.headers.items()}
            ):
                raise _Preflight  # answered by the gateway itself: no route, no function
            matched = match(self.server.routes, self.command, raw_path)
            if matched is None:
                raise _HttpError(404, "Not Found")
            compiled, path_params = matched
            label = compiled.function_name
            request = Request(
                method=self.command,
                raw_path=raw_path,
                raw_query=raw_query,
                headers=list(self.headers.items()),
                body=body,
                protocol=self.request_version,
                source_ip=self.client_address[0],
                server_host=str(self.server.server_address[0]),
                server_port=self.server.server_port,
            )
            event = lambda_event(
                request, route_key=compiled.route_key, path_params=path_params, request_id=request_id
            )
            status, headers, payload = self._invoke(compiled, event)
        except _Preflight:
            assert cors is not None
            status, headers, payload = 204, cors.preflight(origin or ""), b""
            label, preflighted = "cors-preflight", True
        except _HttpError as exc:
            status, headers, payload = error_answer(exc.status, exc.message)
        except Exception:
            log.exception("devstack API: %s %s failed", self.command, self.path)
            status, headers, payload = error_answer(500, "Internal Server Error")
        if cors is not None and not preflighted:
            headers = cors.apply(origin, headers)
        headers.append(("apigw-requestid", request_id))
        self._respond(status, headers, payload)
        log.info(
            '%s "%s %s" %d %dB %.1fms %s',
            self.client_address[0],
            self.command,
            self.path,
            status,
            len(payload),
            (time.perf_counter() - started) * 1000,
            label,
        )

    def _read_body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            return self._read_chunked()
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_PAYLOAD_BYTES:
            self.close_connection = True  # the unread body would otherwise be parsed as the next request
            raise _HttpError(413, "Request Entity Too Large")
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            total += size
            if total > MAX_PAYLOAD_BYTES:
                self.close_connection = True
                raise _HttpError(413, "Request Entity Too Large")
            chunks.append(self.rfile.read(size))
            self.rfile.readline()  # CRLF after each chunk

    def _respond(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("content-length", str(len(payload)))
        if self.close_connection:
            self.send_header("connection", "close")
        # Status line, headers and body in one write: written apart, the body is a second small
        # segment that waits for the client to ACK the first, and clients delay that ACK (~40 ms
        # on every kept-alive request).
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD":
            self._headers_buffer.append(payload)
        self.flush_headers()

    def _invoke(
        self, compiled: CompiledRoute, event: dict[str, Any]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        route = compiled.route
        with compiled.lock:
            # The Lambda clock starts when the environment takes the event, not while it queues.
            context = FakeContext(
                function_name=compiled.function_name,
                timeout_s=route.timeout_s,
                memory_limit_in_mb=route.memory_mb,
            )
            started = time.monotonic()
            result = route.handler(event, context)
            elapsed = time.monotonic() - started
        if elapsed > route.timeout_s:
            log.warning(
                "%s ran %.1fs, over its %.0fs Lambda timeout (AWS would have killed it)",
                compiled.function_name,
                elapsed,
                route.timeout_s,
            )
        # The Lambda runtime ships the result as JSON; a value it can't serialise fails there, not here.
        return http_answer(json.loads(json.dumps(result)))


def _lock_for(handler: Handler) -> AbstractContextManager[Any]:
    # A pool queues events for its own environments; a plain handler is one environment.
    return nullcontext() if isinstance(handler, ExecutionEnvironments) else threading.Lock()


class ApiServer:
    """A running local API; ``url`` has no trailing slash."""

    def __init__(self, httpd: _Server, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread
        host, port = httpd.server_address[:2]
        self.host = str(host)
        self.port = int(port)
        self.url = f"http://{self.host}:{self.port}"

    def shutdown(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ApiServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def serve(
    routes: list[Route], host: str = "127.0.0.1", port: int = 3000, cors: Cors | None = None
) -> ApiServer:
    """Start serving ``routes`` in a daemon thread; ``port=0`` picks a free port. With ``cors``
    the server answers preflights and adds CORS headers as an HTTP API with that
    ``CorsConfiguration`` does (see ``devstack.cors``)."""
    locks: dict[Any, AbstractContextManager[Any]] = {}
    compiled = [compile_route(r, locks.setdefault(r.handler, _lock_for(r.handler))) for r in routes]
    keys = [c.route_key for c in compiled]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise ValueError(f"duplicate routes: {duplicates}")
    httpd = _Server((host, port), compiled, cors)
    # A short poll interval keeps shutdown() quick (it waits for the loop's next poll).
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="devstack-api", daemon=True
    )
    thread.start()
    server = ApiServer(httpd, thread)
    log.info("API listening on %s (%s)", server.url, ", ".join(keys))
    return server
