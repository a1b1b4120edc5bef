"""What the enqueue and status functions import: web3 never (about a second of imports; only
the batch function ships it), and the x402 package and httpx only once a paid request needs
them. Checked in a fresh interpreter, as a cold start sees it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.support.events import REPO_ROOT

HEAVY = ["web3", "eth_account", "x402", "httpx"]

COLD_START = """
import sys
sys.path[:0] = ["layers/common/python", "."]
from pathlib import Path
from devstack.lambdas import load_handler
load_handler(Path("functions/enqueue"))
load_handler(Path("functions/status"))
"""


def _imported_after(script: str) -> dict[str, bool]:
    code = (
        COLD_START
        + textwrap.dedent(script)
        + f"\nimport json\nprint(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    found: dict[str, bool] = json.loads(done.stdout)
    return found


def test_a_cold_start_imports_neither_web3_nor_x402_nor_httpx() -> None:
    assert _imported_after("") == dict.fromkeys(HEAVY, False)


def test_the_paid_path_imports_x402_and_httpx_but_never_web3() -> None:
    # Every module a paid POST /mint runs, and the clients it builds and calls on first use.
    found = _imported_after(
        """
        from mintq import api_x402, paid_mint, payment_admission, rpc, supply, x402_facilitator
        x402_facilitator.Facilitator("http://127.0.0.1:9", verify_timeout=1, settle_timeout=1).close()
        try:
            rpc.supply_view("http://127.0.0.1:9", "0x" + "00" * 20, [], timeout=0.2)
        except Exception:
            pass  # nothing listens there: only the imports matter
        """
    )
    assert found == {"web3": False, "eth_account": False, "x402": True, "httpx": True}
