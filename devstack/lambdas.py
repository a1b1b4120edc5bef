"""Load the Lambda functions in-process and give them a Lambda-like context."""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import queue
import re
import signal
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

Handler = Callable[[dict[str, Any], Any], Any]

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # the placeholder account SAM local uses too


def module_name_for(function_dir: Path) -> str:
    return "mintq_fn_" + re.sub(r"\W", "_", function_dir.name)


def load_handler(function_dir: Path, *, attr: str = "lambda_handler") -> Handler:
    """Import ``function_dir/app.py`` once, as ``mintq_fn_<dir name>``, and return its handler.

    Every function's module is called app.py, so a plain ``import app`` would hand all of them the
    first one loaded; a distinct module name per function keeps them apart. Like a warm Lambda
    execution environment, module-level code runs once per process.
    """
    function_dir = function_dir.resolve()
    app_py = function_dir / "app.py"
    if not app_py.is_file():
        raise FileNotFoundError(f"no Lambda entry point at {app_py}")
    name = module_name_for(function_dir)
    # Threads (the local HTTP server, concurrent tests) must never see a half-imported module.
    with _import_lock:
        module = _import(name, app_py)
    handler = getattr(module, attr, None)
    if not callable(handler):
        raise AttributeError(f"{app_py} has no callable {attr!r}")
    return handler  # type: ignore[no-any-return]


_import_lock = threading.Lock()


def _import(name: str, app_py: Path) -> Any:
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, app_py)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {app_py}")
        module = importlib.util.module_from_spec(spec)
        # Registered before exec so dataclasses/pickling/typing lookups of the module work.
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return module


@dataclass
class FakeContext:
    """The attributes of the Python runtime's LambdaContext that code (and Powertools) reads."""

    function_name: str
    timeout_s: float = 30.0
    memory_limit_in_mb: int = 256
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    region: str = REGION
    account_id: str = ACCOUNT_ID
    identity: Any = None
    client_context: Any = None
    # Monotonic, so wall-clock jumps don't change the remaining time.
    deadline: float = field(init=False)

    def __post_init__(self) -> None:
        self.deadline = time.monotonic() + self.timeout_s

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"{time.strftime('%Y/%m/%d')}/[{self.function_version}]local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


class ExecutionEnvironments:
    """Several execution environments of one function: ``size`` processes, one event each at a time.

    API Gateway in front of Lambda hands concurrent requests to as many environments; the handlers
    are Python, so only processes run them in parallel. Each process imports the function once
    (a cold start) and keeps its module state (the database connection) like a warm environment.
    Calling the pool waits for an idle environment, runs the event there with a fresh context and
    returns the handler's result; a handler's exception comes back as :class:`HandlerError`.
    Environments inherit the caller's ``os.environ`` and ``sys.path`` as they are at construction;
    ``discard_stdout`` drops what handlers print (Powertools' metrics and logs), for benchmarks.
    """

    def __init__(self, function_dir: Path, size: int, *, discard_stdout: bool = False) -> None:
        if size < 1:
            raise ValueError("an execution environment pool needs at least one environment")
        self.function_dir = function_dir.resolve()
        self.size = size
        context = multiprocessing.get_context("spawn")  # never fork a process that runs threads
        self._idle: queue.SimpleQueue[Connection] = queue.SimpleQueue()
        self._processes: list[BaseProcess] = []
        pipes: list[Connection] = []
        for i in range(size):
            ours, theirs = context.Pipe()
            process = context.Process(
                target=_environment_main,
                args=(str(self.function_dir), theirs, discard_stdout),
                name=f"{module_name_for(self.function_dir)}-{i}",
                daemon=True,  # ends with the local stack
            )
            process.start()
            theirs.close()
            self._processes.append(process)
            pipes.append(ours)
        for pipe in pipes:  # all import in parallel; a broken function fails here, at startup
            ok, detail = pipe.recv()
            if not ok:
                self.close()
                raise ImportError(f"{self.function_dir}: {detail}")
            self._idle.put(pipe)

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        pipe = self._idle.get()
        try:
            pipe.send((event, context.function_name, context.timeout_s, context.memory_limit_in_mb))
            ok, value = pipe.recv()
        finally:
            self._idle.put(pipe)
        if not ok:
            raise HandlerError(value)
        return value

    def close(self) -> None:
        for process in self._processes:
            process.terminate()
        for process in self._processes:
            process.join(timeout=5)


class HandlerError(RuntimeError):
    """A handler raised in its execution environment; the message carries its traceback."""


def _environment_main(function_dir: str, pipe: Connection, discard_stdout: bool) -> None:
    # Ctrl-C reaches the terminal's whole process group; the local stack stops its environments
    # itself (close()), so each would only print a KeyboardInterrupt traceback over its shutdown.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if discard_stdout:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    try:
        handler = load_handler(Path(function_dir))
    except BaseException as exc:  # reported to the parent, which refuses to start
        pipe.send((False, f"{type(exc).__name__}: {exc}"))
        return
    pipe.send((True, None))
    while True:
        try:
            event, function_name, timeout_s, memory_mb = pipe.recv()
        except (EOFError, OSError):
            return  # the local stack has gone
        # The Lambda clock starts when the environment takes the event, not while it queued.
        context = FakeContext(function_name=function_name, timeout_s=timeout_s, memory_limit_in_mb=memory_mb)
        try:
            reply: tuple[bool, Any] = (True, handler(event, context))
        except Exception:
            reply = (False, traceback.format_exc())
        pipe.send(reply)
