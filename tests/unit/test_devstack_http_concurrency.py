"""The local API under concurrent clients, kept-alive and connection-per-request, and its pools
of execution environments (real processes, real sockets)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import socketserver
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from devstack.http import ApiServer, Route, serve
from devstack.lambdas import ExecutionEnvironments, FakeContext


def hello(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": '{"ok": true}'}


@pytest.fixture
def api() -> Iterator[ApiServer]:
    server = serve([Route("POST", "/mint", hello, function_name="Hello")], port=0)
    try:
        yield server
    finally:
        server.shutdown()


def test_a_response_is_one_write_on_a_socket_without_nagle(
    api: ApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Written in two pieces, the body waits on the client's delayed ACK of the head (~40 ms a
    # request on a kept-alive connection).
    writes: list[tuple[bytes, int]] = []
    original = socketserver._SocketWriter.write

    def counting(self: Any, data: Any) -> int:
        writes.append((bytes(data), self._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)))
        return original(self, data)

    monkeypatch.setattr(socketserver._SocketWriter, "write", counting)
    conn = http.client.HTTPConnection(api.host, api.port, timeout=10)
    try:
        for _ in range(3):
            conn.request("POST", "/mint", body=b"{}", headers={"content-type": "application/json"})
            response = conn.getresponse()
            assert response.status == 200
            assert json.loads(response.read()) == {"ok": True}
    finally:
        conn.close()
    assert len(writes) == 3
    for data, nodelay in writes:
        assert data.startswith(b"HTTP/1.1 200") and data.endswith(b'{"ok": true}')
        assert nodelay != 0


def _client(api: ApiServer, requests: int, keep_alive: bool) -> list[int]:
    statuses: list[int] = []
    conn: http.client.HTTPConnection | None = None
    try:
        for _ in range(requests):
            if conn is None or not keep_alive:
                if conn is not None:
                    conn.close()
                conn = http.client.HTTPConnection(api.host, api.port, timeout=30)
            conn.request("POST", "/mint", body=b"{}", headers={"content-type": "application/json"})
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
    finally:
        if conn is not None:
            conn.close()
    return statuses


@pytest.mark.parametrize("keep_alive", [True, False], ids=["kept-alive", "connection-per-request"])
@pytest.mark.parametrize("clients", [1, 16, 64])
def test_concurrent_clients_all_get_answers_without_a_reset(
    api: ApiServer, clients: int, keep_alive: bool
) -> None:
    # A reset (ConnectionResetError) or refused connection would raise out of a client.
    per_client = 20
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(lambda _: _client(api, per_client, keep_alive), range(clients)))
    assert results == [[200] * per_client] * clients


APP = """
import json, os, time

STARTED = os.getpid()


def lambda_handler(event, context):
    event = json.loads(event["body"] or "{}")
    if event.get("boom"):
        raise ValueError("kaboom")
    gate = event.get("gate")
    if gate:
        # Wait until every caller has arrived: only parallel environments get past this.
        open(os.path.join(gate, str(os.getpid()) + "-" + context.aws_request_id), "w").close()
        deadline = time.monotonic() + 10
        while len(os.listdir(gate)) < event["expect"] and time.monotonic() < deadline:
            time.sleep(0.01)
    return {
        "statusCode": 200,
        "body": f"{STARTED} {os.getpid()} {context.function_name} {context.get_remaining_time_in_millis()}",
    }
"""


@pytest.fixture
def function_dir(tmp_path: Path) -> Path:
    fn = tmp_path / "pid_function"
    fn.mkdir()
    (fn / "app.py").write_text(APP)
    return fn


def test_execution_environments_run_events_in_parallel_processes(function_dir: Path, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    pool = ExecutionEnvironments(function_dir, 3)
    server = serve([Route("POST", "/run", pool, function_name="PidFunction", timeout_s=7)], port=0)
    try:
        body = json.dumps({"gate": str(gate), "expect": 3}).encode()

        def run(_: int) -> tuple[int, str]:
            conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
            try:
                conn.request("POST", "/run", body=body, headers={"content-type": "application/json"})
                response = conn.getresponse()
                return response.status, response.read().decode()
            finally:
                conn.close()

        with ThreadPoolExecutor(3) as threads:
            answers = list(threads.map(run, range(3)))
    finally:
        server.shutdown()
        pool.close()
    assert [status for status, _ in answers] == [200, 200, 200]
    pids = set()
    for _, text in answers:
        started, pid, name, remaining_ms = text.split()
        assert started == pid  # module state lives in the environment that imported it
        assert name == "PidFunction" and 0 < int(remaining_ms) <= 7000
        pids.add(int(pid))
    assert len(pids) == 3 and os.getpid() not in pids
    assert len(os.listdir(gate)) == 3


def test_a_handler_that_raises_in_its_environment_is_a_500_and_the_environment_lives_on(
    function_dir: Path,
) -> None:
    pool = ExecutionEnvironments(function_dir, 1)
    server = serve([Route("POST", "/run", pool, function_name="PidFunction")], port=0)
    try:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
        conn.request("POST", "/run", body=b'{"boom": true}', headers={"content-type": "application/json"})
        failed = conn.getresponse()
        assert failed.status == 500 and json.loads(failed.read()) == {"message": "Internal Server Error"}
        conn.request("POST", "/run", body=b"{}", headers={"content-type": "application/json"})
        again = conn.getresponse()
        assert again.status == 200 and again.read()
        conn.close()
    finally:
        server.shutdown()
        pool.close()


def test_a_function_that_cannot_import_fails_at_startup(tmp_path: Path) -> None:
    fn = tmp_path / "broken_function"
    fn.mkdir()
    (fn / "app.py").write_text("raise RuntimeError('no database settings')\n")
    with pytest.raises(ImportError, match="no database settings"):
        ExecutionEnvironments(fn, 2)


def test_closing_a_pool_ends_its_processes(function_dir: Path) -> None:
    pool = ExecutionEnvironments(function_dir, 2)
    processes = list(pool._processes)
    assert all(p.is_alive() for p in processes)
    pool.close()
    assert not any(p.is_alive() for p in processes)


def test_ctrl_c_in_the_terminal_leaves_the_environments_to_the_stacks_own_shutdown(
    function_dir: Path,
) -> None:
    """Ctrl-C signals the terminal's whole process group: an environment ignores it (it printed
    a KeyboardInterrupt traceback each) and still answers until the stack closes the pool."""
    pool = ExecutionEnvironments(function_dir, 2)
    try:
        for process in pool._processes:
            assert process.pid is not None
            os.kill(process.pid, signal.SIGINT)
        time.sleep(0.5)
        assert all(p.is_alive() for p in pool._processes)
        answers = [pool({"body": "{}"}, FakeContext(function_name="f", timeout_s=5)) for _ in range(2)]
        assert all(a["statusCode"] == 200 for a in answers)
    finally:
        pool.close()
    assert not any(p.is_alive() for p in pool._processes)
