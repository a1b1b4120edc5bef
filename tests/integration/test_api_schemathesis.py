"""Schemathesis against the running local stack, from the served OpenAPI document.

Every operation, in free and in x402 mode, through the examples/coverage/fuzzing phases and
the stateful phase (which follows the document's links: POST /mint -> GET /queue/item/{queueId}
and GET /queue/payer/{address}), with the checks not_a_server_error,
response_schema_conformance, status_code_conformance and content_type_conformance. The
response models forbid undocumented fields, so a field added to a response without adding it
to ``mintq.api_models`` fails here.

``make test`` runs a short deterministic pass (the same cases every run); ``FUZZ_EXAMPLES=N``
(``make fuzz``) explores afresh with N examples per operation and prints what it tried.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.local_stack import local_stack

CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"
CI_EXAMPLES = 25
OPERATIONS = 4

pytestmark = pytest.mark.slow


def _schemathesis_args(url: str, report: Path) -> list[str]:
    hunt = os.environ.get("FUZZ_EXAMPLES")
    args = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{url}/openapi.json",
        "--checks",
        CHECKS,
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--no-color",
        "--report",
        "junit",
        "--report-junit-path",
        str(report),
    ]
    if hunt:
        return [*args, "--max-examples", hunt, "--continue-on-failure"]
    # CI: no randomness at all, a bounded number of cases.
    return [*args, "--max-examples", str(CI_EXAMPLES), "--generation-deterministic"]


@pytest.mark.parametrize("payment_mode", ["free", "x402"])
def test_schemathesis_finds_nothing(
    payment_mode: str, pg_server: Any, template_db: str, tmp_path: Path
) -> None:
    with local_stack(
        pg_server, template_db, tmp_path / f"stack-{payment_mode}", payment_mode=payment_mode
    ) as stack:
        assert stack.stack["payment_mode"] == payment_mode
        run = subprocess.run(
            _schemathesis_args(stack.url, tmp_path / "junit.xml"),
            check=False,
            capture_output=True,
            text=True,
            timeout=3000,
        )
        print(run.stdout)  # what it tried: phases, cases per operation, links covered (make fuzz shows it)
        assert run.returncode == 0, (
            f"{run.stdout[-12000:]}\n{run.stderr[-3000:]}\n--- devstack ---\n{stack.log_tail()}"
        )
    summary = run.stdout
    assert f"Tested: {OPERATIONS}" in summary, summary[-3000:]
    assert "Stateful" in summary
    # The document's request examples are sent (the phase is skipped when it has none).
    assert "\u2705 Examples" in summary, summary[-3000:]
    if payment_mode == "free" and not os.environ.get("FUZZ_EXAMPLES"):
        # Links are followed: a queued mint is looked up by its queueId and its payer. Held in
        # the deterministic run only: a short hunt with fresh cases may draw no 202 to follow
        # (FUZZ_EXAMPLES=20 did not), which says nothing about the API.
        assert "API Links:    2 covered / 2 selected" in summary, summary[-3000:]
