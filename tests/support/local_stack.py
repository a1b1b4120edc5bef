"""The whole local stack for tests that talk to it over HTTP as a client would: ``python -m
devstack`` in its own process (``tests.support.devstack_process``) on free ports, with its own
anvil and state directory, on a fresh clone of the migrated template database."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack import postgres
from tests.support.devstack_process import StackProcess, free_port, start_stack

__all__ = ["LocalStack", "free_port", "local_stack"]


@dataclass(frozen=True)
class LocalStack:
    url: str  # the API, no trailing slash
    stack: dict[str, Any]  # the stack.json it wrote
    process: StackProcess

    def log_tail(self, chars: int = 6000) -> str:
        return self.process.log()[-chars:]


@contextmanager
def local_stack(
    pg_server: postgres.Server,
    template_db: str,
    state_dir: Path,
    *,
    payment_mode: str = "free",
    extra_args: tuple[str, ...] = (),
    worker: bool = True,
) -> Iterator[LocalStack]:
    """Start the stack; stop it (and its anvil) and drop its database afterwards."""
    name = f"mintq_stack_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    database_url = postgres.clone_database(pg_server.admin_url, template_db, name)
    args = [*extra_args, *(() if worker else ("--no-worker",))]
    try:
        process = start_stack(
            state_dir,
            database_name=name,
            payment_mode=payment_mode,
            args=args,
            env={"DATABASE_URL": database_url},
            timeout=180,
        )
        try:
            stack = process.stack()
            yield LocalStack(url=str(stack["api_url"]), stack=stack, process=process)
        finally:
            process.stop()
    finally:
        postgres.drop_database(pg_server.admin_url, name)
