"""The migrations custom resource always answers CloudFormation, and only migrates on Create/Update."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import ModuleType
from typing import Any

import pytest

from devstack.lambdas import FakeContext, load_handler, module_name_for
from tests.support.events import REPO_ROOT

MIGRATE_DIR = REPO_ROOT / "functions" / "migrate"


class _Capture(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]

    def do_PUT(self) -> None:
        length = int(self.headers["Content-Length"])
        self.received.append(
            {"content_type": self.headers["Content-Type"], "body": json.loads(self.rfile.read(length))}
        )
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


@pytest.fixture
def response_url() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []
    handler = type("Capture", (_Capture,), {"received": received})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/cfn-response?X-Amz-Signature=abc", received
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def module() -> ModuleType:
    load_handler(MIGRATE_DIR)
    return sys.modules[module_name_for(MIGRATE_DIR)]


def _event(url: str, request_type: str, physical_id: str | None = None) -> dict[str, Any]:
    event = {
        "RequestType": request_type,
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:mintq-dev-MigrateFunction",
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/mintq-dev/5b6c1a52-8b7e",
        "RequestId": "9c41-5e0b7d9a2f13",
        "LogicalResourceId": "Migrations",
        "ResourceType": "Custom::Migrations",
        "ResourceProperties": {"LayerVersionArn": "arn:aws:lambda:us-east-1:123456789012:layer:x:3"},
    }
    if physical_id:
        event["PhysicalResourceId"] = physical_id
    return event


def _only_response(received: list[dict[str, Any]]) -> dict[str, Any]:
    """CloudFormation must get exactly one answer per request."""
    assert len(received) == 1, received
    body: dict[str, Any] = received[0]["body"]
    return body


def test_create_migrates_and_reports_success(
    module: ModuleType, response_url: tuple[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, received = response_url
    monkeypatch.setattr(module, "_migrate", lambda: ["0001_initial.sql", "0002_more.sql"])
    module.lambda_handler(_event(url, "Create"), FakeContext(function_name="migrate", timeout_s=120))
    assert len(received) == 1
    response = received[0]
    body = response["body"]
    assert response["content_type"] == ""
    assert body["Status"] == "SUCCESS"
    assert body["Data"] == {"Applied": "0001_initial.sql,0002_more.sql"}
    assert body["RequestId"] == "9c41-5e0b7d9a2f13"
    assert body["LogicalResourceId"] == "Migrations"
    assert body["PhysicalResourceId"]


def test_update_keeps_the_physical_id_and_reports_failures(
    module: ModuleType, response_url: tuple[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, received = response_url

    def boom() -> list[str]:
        raise RuntimeError("relation already exists")

    monkeypatch.setattr(module, "_migrate", boom)
    module.lambda_handler(
        _event(url, "Update", "phys-1"), FakeContext(function_name="migrate", timeout_s=120)
    )
    body = _only_response(received)
    assert body["Status"] == "FAILED"
    assert body["PhysicalResourceId"] == "phys-1"
    assert "relation already exists" in body["Reason"]


def test_delete_does_nothing(
    module: ModuleType, response_url: tuple[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, received = response_url

    def must_not_run() -> list[str]:
        raise AssertionError("Delete must not migrate")

    monkeypatch.setattr(module, "_migrate", must_not_run)
    module.lambda_handler(
        _event(url, "Delete", "phys-1"), FakeContext(function_name="migrate", timeout_s=120)
    )
    body = _only_response(received)
    assert (body["Status"], body["PhysicalResourceId"]) == ("SUCCESS", "phys-1")


def test_a_hung_migration_still_gets_an_answer_before_the_timeout(
    module: ModuleType, response_url: tuple[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, received = response_url
    release = threading.Event()

    def hang() -> list[str]:
        release.wait(10)
        return []

    monkeypatch.setattr(module, "_migrate", hang)
    monkeypatch.setattr(module, "_RESPONSE_MARGIN_S", 0.0)
    started = time.monotonic()
    try:
        module.lambda_handler(_event(url, "Create"), FakeContext(function_name="migrate", timeout_s=1.5))
    finally:
        release.set()
    assert time.monotonic() - started < 5
    body = _only_response(received)
    assert body["Status"] == "FAILED"
    assert "TimeoutError" in body["Reason"]


def test_missing_configuration_is_reported_not_hung(
    module: ModuleType, response_url: tuple[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mintq import config

    url, received = response_url
    monkeypatch.delenv("MINTQ_DATABASE_URL", raising=False)
    monkeypatch.delenv("MINTQ_DATABASE_SECRET_ARN", raising=False)
    config.reset()
    module.lambda_handler(_event(url, "Create"), FakeContext(function_name="migrate", timeout_s=120))
    body = _only_response(received)
    assert body["Status"] == "FAILED"
    assert "ConfigurationError" in body["Reason"]


def test_a_response_endpoint_that_never_answers_cannot_hold_the_handler_past_its_timeout(
    module: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer's timeout is what the invocation has left, never a fixed 15 s over a 10 s margin."""
    monkeypatch.setattr(module, "_migrate", lambda: [])
    with socket.socket() as silent:  # accepts connections (the kernel's backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/cfn-response"
        context = FakeContext(function_name="migrate", timeout_s=2)
        with pytest.raises(OSError):  # the timeout: the answer could not be sent, and it says so
            module.lambda_handler(_event(url, "Create"), context)
        assert context.get_remaining_time_in_millis() > 0
