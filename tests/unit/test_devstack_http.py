"""The local API Gateway stand-in, exercised over real HTTP."""

from __future__ import annotations

import base64
import http.client
import itertools
import json
import logging
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from email.message import Message
from typing import Any

import pytest

from devstack.http import MAX_PAYLOAD_BYTES, ApiServer, Route, serve


def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    ctx = {
        "function_name": context.function_name,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "invoked_function_arn": context.invoked_function_arn,
        "aws_request_id": context.aws_request_id,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps({"event": event, "context": ctx}),
    }


def crafted(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {
        "statusCode": 201,
        "headers": {"x-single": "one", "content-type": "application/octet-stream"},
        "multiValueHeaders": {"x-multi": ["a", "b"]},
        "cookies": ["session=abc; HttpOnly", "theme=dark"],
        "body": base64.b64encode(b"\x00\xffbinary").decode(),
        "isBase64Encoded": True,
    }


def bare(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"hello": "world"}  # no statusCode: API Gateway wraps it as a 200 JSON body


def boom(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raise RuntimeError("kaboom")


def unserialisable(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"statusCode": 200, "body": "x", "extra": object()}


class Recorder:
    """A slow handler that records when each call ran."""

    def __init__(self) -> None:
        self.intervals: list[tuple[float, float]] = []

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        start = time.monotonic()
        time.sleep(0.15)
        self.intervals.append((start, time.monotonic()))
        return {"statusCode": 200, "body": "ok"}


class Rendezvous:
    """Two handlers that each wait for the other: they only succeed when run in parallel."""

    def __init__(self) -> None:
        self.a_in, self.b_in = threading.Event(), threading.Event()

    def a(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.a_in.set()
        return {"statusCode": 200 if self.b_in.wait(5) else 504, "body": "a"}

    def b(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.b_in.set()
        return {"statusCode": 200 if self.a_in.wait(5) else 504, "body": "b"}


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def rendezvous() -> Rendezvous:
    return Rendezvous()


@pytest.fixture
def api(recorder: Recorder, rendezvous: Rendezvous) -> Iterator[ApiServer]:
    routes = [
        Route("POST", "/queue/item/{queueId}", echo, function_name="EchoFunction", timeout_s=10),
        Route("GET", "/queue/item/{queueId}", echo, function_name="EchoFunction", timeout_s=10),
        Route("GET", "/queue/item/latest", echo, function_name="EchoFunction"),
        Route("GET", "/files/{path+}", echo, function_name="EchoFunction"),
        Route("POST", "/mint", echo, function_name="EchoFunction"),
        Route("GET", "/crafted", crafted),
        Route("GET", "/bare", bare),
        Route("GET", "/boom", boom),
        Route("GET", "/unserialisable", unserialisable),
        Route("GET", "/slow", recorder, function_name="SlowFunction"),
        Route("GET", "/slow/again", recorder, function_name="SlowFunction"),
        Route("GET", "/a", rendezvous.a, function_name="A"),
        Route("GET", "/b", rendezvous.b, function_name="B"),
    ]
    server = serve(routes, port=0)
    try:
        yield server
    finally:
        server.shutdown()


def call(
    api: ApiServer,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Message[str, str], bytes]:
    req = urllib.request.Request(api.url + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.headers, err.read()


def echoed(api: ApiServer, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    status, _, body = call(api, method, path, **kwargs)
    assert status == 200, body
    result: dict[str, Any] = json.loads(body)
    return result


def test_event_has_the_http_api_v2_shape(api: ApiServer) -> None:
    out = echoed(
        api,
        "POST",
        "/queue/item/q%201?x=1&x=2&empty=&y=%C3%A9",
        body=b'{"n": 1}',
        headers={"Content-Type": "application/json", "X-Custom": "Hi", "Cookie": "a=1; b=2"},
    )
    event, ctx = out["event"], out["context"]

    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /queue/item/{queueId}"
    assert event["rawPath"] == "/queue/item/q%201"
    assert event["rawQueryString"] == "x=1&x=2&empty=&y=%C3%A9"
    assert event["queryStringParameters"] == {"x": "1,2", "empty": "", "y": "é"}
    assert event["pathParameters"] == {"queueId": "q 1"}
    assert event["cookies"] == ["a=1", "b=2"]
    assert event["headers"]["content-type"] == "application/json"
    assert event["headers"]["x-custom"] == "Hi"
    assert "cookie" not in event["headers"]  # payload 2.0 moves them to "cookies"
    assert all(name == name.lower() for name in event["headers"])
    assert event["body"] == '{"n": 1}'
    assert event["isBase64Encoded"] is False
    assert event["stageVariables"] is None

    rc = event["requestContext"]
    assert rc["routeKey"] == "POST /queue/item/{queueId}"
    assert rc["stage"] == "$default"
    assert rc["http"]["method"] == "POST"
    assert rc["http"]["path"] == "/queue/item/q%201"
    assert rc["http"]["protocol"] == "HTTP/1.1"
    assert rc["http"]["sourceIp"] == "127.0.0.1"
    assert rc["http"]["userAgent"].startswith("Python-urllib")
    assert rc["accountId"] and rc["apiId"] and rc["domainName"]
    uuid.UUID(rc["requestId"])
    assert abs(rc["timeEpoch"] / 1000 - time.time()) < 60
    time.strptime(rc["time"], "%d/%b/%Y:%H:%M:%S +0000")

    assert ctx["function_name"] == "EchoFunction"
    assert ctx["invoked_function_arn"].endswith(":function:EchoFunction")
    assert isinstance(ctx["memory_limit_in_mb"], int)
    uuid.UUID(ctx["aws_request_id"])
    assert 0 < ctx["remaining_ms"] <= 10_000


def test_empty_parts_are_none(api: ApiServer) -> None:
    event = echoed(api, "GET", "/queue/item/latest")["event"]
    assert event["routeKey"] == "GET /queue/item/latest"  # a literal route beats {queueId}
    assert event["queryStringParameters"] is None
    assert event["pathParameters"] is None
    assert event["cookies"] is None
    assert event["body"] is None
    assert event["rawQueryString"] == ""


def test_greedy_path_variable(api: ApiServer) -> None:
    event = echoed(api, "GET", "/files/a/b/c.txt")["event"]
    assert event["routeKey"] == "GET /files/{path+}"
    assert event["pathParameters"] == {"path": "a/b/c.txt"}


def test_binary_body_is_base64(api: ApiServer) -> None:
    raw = b"\xff\x00\xfe\x80not utf-8"
    headers = {"Content-Type": "application/octet-stream"}
    event = echoed(api, "POST", "/mint", body=raw, headers=headers)["event"]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == raw


def test_chunked_body_and_repeated_headers(api: ApiServer) -> None:
    conn = http.client.HTTPConnection(api.host, api.port, timeout=10)
    try:
        conn.putrequest("POST", "/mint")
        conn.putheader("X-Dup", "one")
        conn.putheader("X-Dup", "two")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        for chunk in (b"hello ", b"chunked ", b"world"):
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        conn.send(b"0\r\n\r\n")
        resp = conn.getresponse()
        event = json.loads(resp.read())["event"]
    finally:
        conn.close()
    assert resp.status == 200
    assert event["headers"]["x-dup"] == "one,two"
    assert event["body"] == "hello chunked world"


def test_response_is_translated(api: ApiServer) -> None:
    status, headers, body = call(api, "GET", "/crafted")
    assert status == 201
    assert body == b"\x00\xffbinary"
    assert headers["x-single"] == "one"
    assert headers["content-type"] == "application/octet-stream"
    assert headers.get_all("x-multi") == ["a", "b"]
    assert headers.get_all("set-cookie") == ["session=abc; HttpOnly", "theme=dark"]
    assert headers["apigw-requestid"]


def test_result_without_status_code_is_a_json_200(api: ApiServer) -> None:
    status, headers, body = call(api, "GET", "/bare")
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"hello": "world"}


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/nope"), ("GET", "/queue/item"), ("GET", "/queue/item/1/extra"), ("DELETE", "/mint")],
)
def test_unknown_route_or_method_is_404(api: ApiServer, method: str, path: str) -> None:
    status, headers, body = call(api, method, path)
    assert status == 404
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"message": "Not Found"}


def test_handler_exception_is_500_and_logged(api: ApiServer, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="devstack.http"):
        status, _, body = call(api, "GET", "/boom")
    assert status == 500
    assert json.loads(body) == {"message": "Internal Server Error"}
    assert any(r.exc_info and "kaboom" in str(r.exc_info[1]) for r in caplog.records)


def test_unserialisable_result_is_500(api: ApiServer, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.CRITICAL, logger="devstack.http"):
        status, _, body = call(api, "GET", "/unserialisable")
    assert status == 500
    assert json.loads(body) == {"message": "Internal Server Error"}


def test_payload_over_10_mb_is_413(api: ApiServer) -> None:
    conn = http.client.HTTPConnection(api.host, api.port, timeout=10)
    try:
        # Announce an oversized body without sending it: the gateway must refuse on the header alone.
        conn.putrequest("POST", "/mint")
        conn.putheader("Content-Length", str(MAX_PAYLOAD_BYTES + 1))
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    assert resp.status == 413
    assert json.loads(body) == {"message": "Request Entity Too Large"}


def test_one_handler_sees_one_request_at_a_time(api: ApiServer, recorder: Recorder) -> None:
    # Two routes of the same function, hit concurrently: their calls must not overlap.
    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(lambda p: call(api, "GET", p)[0], ["/slow", "/slow/again"] * 2))
    assert statuses == [200] * 4
    intervals = sorted(recorder.intervals)
    assert len(intervals) == 4
    for (_, end), (next_start, _) in itertools.pairwise(intervals):
        assert end <= next_start


def test_different_handlers_run_in_parallel(api: ApiServer) -> None:
    # Each handler waits for the other to have started; serialising them would deadlock into 504s.
    with ThreadPoolExecutor(2) as pool:
        statuses = list(pool.map(lambda p: call(api, "GET", p)[0], ["/a", "/b"]))
    assert statuses == [200, 200]


def test_bad_route_templates_are_rejected() -> None:
    with pytest.raises(ValueError, match="whole segment"):
        serve([Route("GET", "/x/id-{id}", echo)], port=0)
    with pytest.raises(ValueError, match="must be last"):
        serve([Route("GET", "/{p+}/x", echo)], port=0)
    with pytest.raises(ValueError, match="duplicate"):
        serve([Route("GET", "/x", echo), Route("get", "/x", bare)], port=0)


def test_threads_loading_one_function_at_once_all_get_its_handler(tmp_path: Any) -> None:
    from devstack.lambdas import load_handler

    fn = tmp_path / f"slow_{uuid.uuid4().hex[:8]}"
    fn.mkdir()
    # A slow module body widens the window in which a half-imported module could be seen.
    (fn / "app.py").write_text(
        "import time\ntime.sleep(0.3)\n\ndef lambda_handler(event, context):\n    return event\n"
    )
    with ThreadPoolExecutor(max_workers=8) as pool:
        handlers = list(pool.map(lambda _: load_handler(fn), range(8)))
    assert len({id(h) for h in handlers}) == 1
    assert handlers[0]({"ok": 1}, None) == {"ok": 1}
