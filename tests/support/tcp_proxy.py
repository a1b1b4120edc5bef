"""A small threaded TCP proxy on 127.0.0.1 for fault injection.

Sits in front of anvil or PostgreSQL and lets a test break the network on purpose:

* ``drop_all()`` cuts every open connection now (both directions, no goodbye);
* ``refuse(True)`` closes the listening socket, so new connections are refused
  (``ECONNREFUSED``) until ``refuse(False)`` binds the same port again;
* ``lose_send_responses(True)`` (HTTP JSON-RPC mode only) forwards any request whose body
  contains ``eth_sendRawTransaction`` to the node, waits for the node's answer, and then
  closes the client's connection without passing the answer on: the transaction reached
  the node, the caller never heard back. ``lost_sends`` counts how often that happened;
* ``hang(methods)`` (HTTP mode) never answers a request whose body names one of these
  JSON-RPC methods (``"*"``: every request): the connection stays open and silent, like a
  node that accepts connections and never answers. With ``forward=True`` the request
  reaches the node first (a send the node took, whose answer never comes). ``hung``
  counts them;
* ``throttle(p)`` (HTTP mode) answers a random share ``p`` of requests with ``429 Too Many
  Requests`` and ``Retry-After: 1`` without forwarding them, like a rate-limited RPC
  provider; ``throttled`` counts them.

``mode="tcp"`` pipes bytes; ``mode="http"`` parses HTTP/1.1 requests (Content-Length
bodies, keep-alive) and relays each one to the upstream over its own connection.
"""

from __future__ import annotations

import contextlib
import http.client
import random
import socket
import threading
from collections.abc import Iterable
from typing import Literal
from urllib.parse import urlsplit

Mode = Literal["tcp", "http"]

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}


class TcpProxy:
    def __init__(self, upstream_host: str, upstream_port: int, *, mode: Mode = "tcp") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.mode = mode
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._refusing = False
        self._lose_sends = False
        self._stopped = threading.Event()
        self.lost_sends = 0
        self._throttle = 0.0
        self._rng = random.Random(402)
        self.throttled = 0
        self._hang: tuple[frozenset[str], bool] = (frozenset(), False)
        self.hung = 0
        self.accepted = 0
        self._listener: socket.socket | None = self._bind(0)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, name=f"proxy:{self.port}", daemon=True)
        self._thread.start()

    @classmethod
    def for_url(cls, url: str, *, mode: Mode = "http") -> TcpProxy:
        parts = urlsplit(url)
        return cls(parts.hostname or "127.0.0.1", parts.port or 80, mode=mode)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (meaningful for the HTTP mode)."""
        return f"http://127.0.0.1:{self.port}"

    # --- controls -------------------------------------------------------------

    def drop_all(self) -> int:
        """Cut every open connection now; returns how many sockets were closed."""
        with self._lock:
            doomed = list(self._sockets)
            self._sockets.clear()
        for sock in doomed:
            _kill(sock)
        return len(doomed)

    def refuse(self, on: bool) -> None:
        """Refuse new connections (the port is closed) or accept them again."""
        with self._lock:
            self._refusing = on
            if on and self._listener is not None:
                _kill(self._listener)
                self._listener = None
            elif not on and self._listener is None:
                self._listener = self._bind(self.port)

    def lose_send_responses(self, on: bool) -> None:
        """HTTP mode: deliver eth_sendRawTransaction to the node but never answer the caller."""
        if self.mode != "http":
            raise ValueError("losing responses needs mode='http'")
        self._lose_sends = on

    def hang(self, methods: Iterable[str], *, forward: bool = False) -> None:
        """HTTP mode: leave requests for these JSON-RPC methods (``"*"``: all) unanswered."""
        if self.mode != "http":
            raise ValueError("hanging needs mode='http'")
        with self._lock:
            self._hang = (frozenset(methods), forward)

    def _hangs(self, body: bytes) -> tuple[bool, bool]:
        with self._lock:
            methods, forward = self._hang
        if "*" in methods:
            return True, forward
        return any(f'"{m}"'.encode() in body for m in methods), forward

    def throttle(self, share: float, *, seed: int = 429) -> None:
        """HTTP mode: refuse this share of requests (0..1) with 429 before they reach the node."""
        if self.mode != "http":
            raise ValueError("throttling needs mode='http'")
        with self._lock:
            self._throttle = share
            self._rng.seed(seed)

    def _silence(self) -> None:
        """Hold a request unanswered until the proxy closes (which cuts the connection)."""
        with self._lock:
            self.hung += 1
        self._stopped.wait()

    def close(self) -> None:
        self._stopped.set()
        with self._lock:
            if self._listener is not None:
                _kill(self._listener)
                self._listener = None
        self.drop_all()
        self._thread.join(timeout=2)

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing -------------------------------------------------------------

    @staticmethod
    def _bind(port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(128)
        sock.settimeout(0.05)
        return sock

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)
        _kill(sock)

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            with self._lock:
                listener = self._listener
            if listener is None:
                self._stopped.wait(0.02)
                continue
            try:
                client, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            client.settimeout(None)
            self.accepted += 1
            self._track(client)
            target = self._serve_http if self.mode == "http" else self._serve_tcp
            threading.Thread(target=target, args=(client,), daemon=True).start()

    def _serve_tcp(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            self._untrack(client)
            return
        upstream.settimeout(None)
        self._track(upstream)

        def pump(src: socket.socket, dst: socket.socket) -> None:
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        break
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                self._untrack(src)
                self._untrack(dst)

        threading.Thread(target=pump, args=(upstream, client), daemon=True).start()
        pump(client, upstream)

    def _serve_http(self, client: socket.socket) -> None:
        reader = client.makefile("rb")
        try:
            while True:
                request = _read_request(reader)
                if request is None:
                    return
                method, path, headers, body = request
                with self._lock:
                    limited = self._throttle > 0 and self._rng.random() < self._throttle
                    self.throttled += limited
                if limited:
                    message = b'{"error": "rate limited"}'
                    client.sendall(
                        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Type: application/json\r\n"
                        + f"Content-Length: {len(message)}\r\nConnection: keep-alive\r\n\r\n".encode()
                        + message
                    )
                    continue
                hangs, forward = self._hangs(body)
                if hangs and not forward:
                    self._silence()
                    return
                upstream = http.client.HTTPConnection(*self.upstream, timeout=30)
                try:
                    upstream.request(method, path, body=body, headers=headers)
                    response = upstream.getresponse()
                    payload = response.read()
                finally:
                    upstream.close()
                if hangs:
                    self._silence()
                    return
                if self._lose_sends and b"eth_sendRawTransaction" in body:
                    with self._lock:
                        self.lost_sends += 1
                    return  # the node has the transaction; the caller gets a cut connection
                head = [f"HTTP/1.1 {response.status} {response.reason}"]
                head += [f"{k}: {v}" for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
                head += [f"Content-Length: {len(payload)}", "Connection: keep-alive", "", ""]
                client.sendall("\r\n".join(head).encode("latin-1") + payload)
        except (OSError, ValueError, http.client.HTTPException):
            return
        finally:
            with contextlib.suppress(OSError):
                reader.close()
            self._untrack(client)


def _read_request(reader: object) -> tuple[str, str, dict[str, str], bytes] | None:
    readline = reader.readline  # type: ignore[attr-defined]
    line = readline(65537)
    if not line:
        return None
    method, path, _version = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    headers: dict[str, str] = {}
    while True:
        raw = readline(65537)
        if raw in (b"\r\n", b"\n", b""):
            break
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip()] = value.strip()
    length = int(next((v for k, v in headers.items() if k.lower() == "content-length"), "0"))
    body = reader.read(length) if length else b""  # type: ignore[attr-defined]
    forwarded = {k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP}
    return method, path, forwarded, body


def _kill(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
