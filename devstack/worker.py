"""``python -m devstack.worker``: the batch worker, alone, against the running local stack.

Reads ``.local/stack.json`` (written by ``make dev`` / ``python -m devstack``) and invokes
the batch function's handler (``functions/batch/app.py``) the way EventBridge would, one
invocation after another: a run that finds the signer's advisory lock held by another
worker returns at once and the next one starts ``--idle-pause`` seconds later. Start as
many as you like (``make dev --no-worker`` leaves the stack without one); kill any of them
with ``kill -9`` at any instant: whichever takes the lock next reconciles what was in flight.

    .venv/bin/python -m devstack.worker [--seconds N] [--stack .local/stack.json]

The signer keys are ``SIGNER_PRIVATE_KEYS`` (a pool, comma-separated) or ``SIGNER_PRIVATE_KEY``
if set, else anvil's account 0 (the stack's minter); each needs ``MINTER_ROLE`` (``make dev``
grants it to the pool it was started with).
With ``--seconds`` it stops after about that long and prints a JSON summary of its runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
STACK_FILE = REPO_ROOT / ".local" / "stack.json"
BATCH_TIMEOUT_S = 300  # the template's BatchFunction timeout
SAFETY_S = 10  # mintq.worker.invocation.run_invocation keeps this much of the invocation in reserve
MIN_INVOCATION_S = SAFETY_S + 6  # below this a run would not start a single cycle

log = logging.getLogger("devstack.worker")


def configure_environment(stack: dict[str, Any]) -> None:
    """Set the variables the batch handler reads, from the stack description: every ``MINTQ_*``
    setting the stack's own handlers run with (``environment``: the payment mode and, in x402
    mode, the price, asset, network and facilitator the reconciler needs), plus the signer keys,
    which the stack file never holds."""
    from devstack import signers

    missing = [k for k in ("rpc_url", "token_address", "database_url", "chain_id") if not stack.get(k)]
    if missing:
        raise SystemExit(f"stack file lacks {', '.join(missing)}; is the local stack running?")
    given = stack.get("environment")
    if not isinstance(given, dict):  # a stack file from before it carried the environment
        given = {"MINTQ_PAYMENT_MODE": str(stack.get("payment_mode") or "free")}
    os.environ.update(
        {
            **{str(name): str(value) for name, value in given.items()},
            "MINTQ_DATABASE_URL": str(stack["database_url"]),
            "MINTQ_RPC_URL": str(stack["rpc_url"]),
            "MINTQ_TOKEN_ADDRESS": str(stack["token_address"]),
            "MINTQ_CHAIN_ID": str(stack["chain_id"]),
            "POWERTOOLS_SERVICE_NAME": "mintq",
            "POWERTOOLS_METRICS_NAMESPACE": "MintqLocal",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
    )
    signers.set_worker_environment(signers.keys_from_env())
    v1_network = stack.get("v1_network")
    if isinstance(v1_network, str):
        # A local v1 name (a chain outside x402's table) is known to the stack's process only.
        from devstack.facilitator import register_local_v1_network

        register_local_v1_network(int(stack["chain_id"]), v1_network)


def check_chain(stack: dict[str, Any]) -> None:
    """Refuse to start against a chain other than the one the stack file was written for (the
    stack was restarted on a fresh chain since, or ``rpc_url`` now answers for another node)."""
    from devstack import anvil

    expected = stack.get("genesis_hash")
    if not expected:
        return  # a stack file from before it recorded its chain
    try:
        actual = anvil.genesis_hash(str(stack["rpc_url"]))
    except (OSError, ValueError, anvil.AnvilError) as exc:
        raise SystemExit(
            f"the chain at {stack['rpc_url']} does not answer ({exc}); is the stack running?"
        ) from exc
    if actual != expected:
        raise SystemExit(
            f"the chain at {stack['rpc_url']} (genesis {actual}) is not the one the stack file was written for"
            f" (genesis {expected}): the stack was restarted on another chain; use its new stack file"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=None, help="stop after about this long")
    parser.add_argument("--stack", type=Path, default=STACK_FILE, help="the stack description to use")
    parser.add_argument(
        "--idle-pause", type=float, default=2.0, help="seconds between runs that found the lock busy"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        stack = json.loads(args.stack.read_text())
    except (OSError, ValueError) as exc:
        raise SystemExit(f"cannot read {args.stack}: {exc}; start the stack first (make dev)") from exc
    check_chain(stack)
    configure_environment(stack)
    sys.path.insert(0, str(REPO_ROOT / "layers" / "common" / "python"))

    from devstack import lambdas

    handler = lambdas.load_handler(REPO_ROOT / "functions" / "batch")
    deadline = None if args.seconds is None else time.monotonic() + args.seconds
    totals: dict[str, Any] = {"pid": os.getpid(), "invocations": 0, "locked": 0, "errors": 0}
    while True:
        timeout_s: float = BATCH_TIMEOUT_S
        if deadline is not None:
            timeout_s = min(timeout_s, deadline - time.monotonic())
            if timeout_s < MIN_INVOCATION_S:
                break
        totals["invocations"] += 1
        try:
            result = handler(
                {"source": "aws.scheduler", "detail-type": "Scheduled Event"},
                lambdas.FakeContext(function_name="mintq-batch", timeout_s=timeout_s),
            )
        except Exception:
            totals["errors"] += 1
            log.exception("batch invocation failed; the next one starts in 2 s")
            time.sleep(2)
            continue
        for key, value in result.items():
            if key == "locked":
                totals["locked"] += int(bool(value))
            elif isinstance(value, int | float):
                totals[key] = totals.get(key, 0) + value
        if not result.get("locked"):
            time.sleep(args.idle_pause)
    print(json.dumps(totals), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
