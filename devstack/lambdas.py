"""Load the Lambda functions in-process and give them a Lambda-like context."""

from __future__ import annotations

import importlib.util
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
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
