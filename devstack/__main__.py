"""``make dev``: the whole of mintq on one machine, in the foreground.

PostgreSQL (``DATABASE_URL``, else 127.0.0.1:5432, else an embedded server), a chain
(``RPC_URL``, else anvil with 1-second blocks under Base Sepolia's chain id 84532, so x402 v1
clients, which only know a fixed list of networks, can pay it) with MintToken deployed (unless
``TOKEN_ADDRESS``), the API on http://127.0.0.1:3000 serving the Lambda handlers with API
Gateway events, and the batch function invoked the way EventBridge would.

Restarting resumes where it stopped, even after ``kill -9``: anvil runs in its own session
and is adopted again (or reloads its state file), the token is found from the stack file, and
the batch worker reconciles whatever was in flight. The database is the one made for this
chain (``devstack.chain_database``): a fresh chain gets a fresh database, never one whose
recorded nonces it has not reached.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from eth_account import Account
from web3 import Web3

from devstack import anvil, chain_database, cors, lambdas, postgres, signers, x402_stack
from devstack.http import Route, serve
from devstack.startup import ensure_token, env, pid_alive, read_json, start_chain, start_database

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_STATE_DIR = REPO_ROOT / ".local"
DEV_DATABASE = "mintq_dev"
#: Base Sepolia's chain id: x402 v1 clients sign only for networks in their fixed table (local
#: chains are not in it), and a payment is bound to its chain id (EIP-712 domain).
LOCAL_CHAIN_ID = 84532
BATCH_TIMEOUT_S = 300  # the template's BatchFunction timeout
# Execution environments per API function: enough for 16 clients to keep two cores busy while
# each environment waits on PostgreSQL, few enough to start in a few seconds.
DEFAULT_ENVIRONMENTS = 4

log = logging.getLogger("devstack")


def handler_environment(stack: dict[str, Any]) -> dict[str, str]:
    """The ``MINTQ_*`` variables every handler of this stack reads, without the signer key: a
    ``python -m devstack.worker`` beside the stack applies them from the stack file."""
    return {
        name: value
        for name, value in os.environ.items()
        if name.startswith("MINTQ_") and not name.endswith(("PRIVATE_KEY", "PRIVATE_KEYS"))
    } | {"MINTQ_DATABASE_URL": str(stack["database_url"])}


def batch_schedule(stop: threading.Event) -> None:
    """EventBridge's rate(1 minute) with reserved concurrency 1: one invocation after another."""
    handler = lambdas.load_handler(REPO_ROOT / "functions" / "batch")
    while not stop.is_set():
        try:
            handler(
                {"source": "aws.scheduler", "detail-type": "Scheduled Event"},
                lambdas.FakeContext(function_name="mintq-batch", timeout_s=BATCH_TIMEOUT_S),
            )
        except Exception:
            log.exception("batch invocation failed; the next one starts in 5 s")
            stop.wait(5)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(env("PORT") or 3000), help="the API's port")
    parser.add_argument("--rpc-port", type=int, default=8545, help="anvil's port")
    parser.add_argument(
        "--facilitator-port",
        type=int,
        default=x402_stack.DEFAULT_FACILITATOR_PORT,
        help="the local x402 facilitator's port (0: a free one)",
    )
    parser.add_argument(
        "--chain-id", type=int, default=LOCAL_CHAIN_ID, help="anvil's chain id (a fresh chain only)"
    )
    parser.add_argument("--block-time", type=float, default=1.0)
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=DEFAULT_STATE_DIR,
        help="where the stack keeps stack.json, anvil's state and the embedded PostgreSQL",
    )
    parser.add_argument(
        "--database-name",
        default=env("DEV_DATABASE") or DEV_DATABASE,
        help="the database on a local or embedded PostgreSQL (ignored with DATABASE_URL)",
    )
    parser.add_argument(
        "--environments",
        type=int,
        default=int(env("DEV_ENVIRONMENTS") or DEFAULT_ENVIRONMENTS),
        help="execution environments (processes) per API function, as Lambda scales out",
    )
    parser.add_argument(
        "--allowed-origins",
        default=env("ALLOWED_ORIGINS") or "*",
        help="comma-separated origins a browser page may call the API from, as the template's "
        "AllowedOrigins (default *: every origin may read the status routes, none may POST /mint)",
    )
    parser.add_argument(
        "--no-worker",
        action="store_true",
        help="serve the API only (run workers yourself: python -m devstack.worker)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cors_config = cors.for_origins(args.allowed_origins.split(","))
    except ValueError as exc:
        raise SystemExit(f"--allowed-origins: {exc}") from exc
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    state_dir: Path = args.state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    stack_file = state_dir / "stack.json"
    sys.path.insert(0, str(REPO_ROOT / "layers" / "common" / "python"))

    server = postgres.resolve_server(state_dir)
    rpc_url, node, adopted_pid = start_chain(state_dir, args.rpc_port, args.block_time, args.chain_id)
    w3 = Web3(Web3.HTTPProvider(rpc_url))
    chain_id = int(w3.eth.chain_id)
    identity = chain_database.ChainIdentity(chain_id, anvil.genesis_hash(rpc_url))
    signer_keys = signers.keys_from_env()
    signer_key, signer_addresses = signer_keys[0], [signers.address(k) for k in signer_keys]
    database_url, refusal = start_database(server, args.database_name, identity, w3, signer_addresses)
    previous = read_json(stack_file)
    if (previous.get("chain_id"), previous.get("genesis_hash")) != (chain_id, identity.genesis_hash):
        previous = {}  # made for another chain: nothing in it exists on this one
    token = ensure_token(w3, signer_key, previous)
    signers.grant_minters(w3, token, signer_key, signer_keys)
    payment_mode = env("PAYMENT_MODE") or "free"
    x402_env: dict[str, str] = {}
    facilitator_server: Any = None
    if payment_mode == "x402":
        x402_env, facilitator_server = x402_stack.start_x402(
            w3, rpc_url, chain_id, signer_key, previous=previous, facilitator_port=args.facilitator_port
        )

    os.environ.update(
        {
            "MINTQ_DATABASE_URL": database_url,
            "MINTQ_RPC_URL": rpc_url,
            "MINTQ_TOKEN_ADDRESS": token,
            "MINTQ_CHAIN_ID": str(chain_id),
            "MINTQ_PAYMENT_MODE": payment_mode,
            "MINTQ_ALLOWED_ORIGINS": ",".join(cors_config.allow_origins),
            "POWERTOOLS_SERVICE_NAME": "mintq",
            "POWERTOOLS_METRICS_NAMESPACE": "MintqLocal",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",
            # AWS runs retention on its own daily schedule; here the worker's housekeeping does.
            "MINTQ_RETENTION_IN_WORKER": "true",
            **x402_env,
        }
    )
    signers.set_worker_environment(signer_keys)
    enqueue = lambdas.ExecutionEnvironments(REPO_ROOT / "functions" / "enqueue", args.environments)
    status = lambdas.ExecutionEnvironments(REPO_ROOT / "functions" / "status", args.environments)
    api = serve(
        [
            Route("POST", "/mint", enqueue, function_name="mintq-enqueue", timeout_s=10),
            Route("GET", "/queue/status", status, function_name="mintq-status", timeout_s=10),
            Route("GET", "/queue/payer/{address}", status, function_name="mintq-status", timeout_s=10),
            Route("GET", "/queue/item/{queueId}", status, function_name="mintq-status", timeout_s=10),
            Route("GET", "/", status, function_name="mintq-status", timeout_s=10),
            Route("GET", "/static/{name}", status, function_name="mintq-status", timeout_s=10),
            Route("GET", "/config.json", status, function_name="mintq-status", timeout_s=10),
            Route("GET", "/openapi.json", status, function_name="mintq-status", timeout_s=10),
            Route("GET", "/docs", status, function_name="mintq-status", timeout_s=10),
        ],
        port=args.port,
        cors=cors_config,
    )
    log.info(
        "CORS: origins %s may %s", ",".join(cors_config.allow_origins), "/".join(cors_config.allow_methods)
    )
    stop = threading.Event()
    if not args.no_worker:
        threading.Thread(target=batch_schedule, args=(stop,), name="batch", daemon=True).start()

    stack: dict[str, Any] = {
        "api_url": api.url,
        "rpc_url": rpc_url,
        "chain_id": chain_id,
        "genesis_hash": identity.genesis_hash,
        "token_address": token,
        "database_url": database_url,
        "signer_address": signer_addresses[0],
        "signer_addresses": signer_addresses,
        "payment_mode": payment_mode,
    }
    if x402_env:
        stack |= {
            "payment_asset": x402_env["MINTQ_X402_ASSET"],
            "pay_to": x402_env["MINTQ_X402_PAY_TO"],
            "price": int(x402_env["MINTQ_X402_PRICE"]),
            "network": x402_env["MINTQ_X402_NETWORK"],
            "v1_network": x402_env["MINTQ_X402_V1_NETWORK"],
            "facilitator_url": x402_env["MINTQ_X402_FACILITATOR_URL"],
        }
    stack["environment"] = handler_environment(stack)
    stack_file.write_text(json.dumps(stack, indent=2) + "\n")
    print(
        ready_line(stack, refusal),
        flush=True,
    )

    def shutdown(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, shutdown)
    signal.signal(signal.SIGTERM, shutdown)
    while not stop.is_set():
        stop.wait(0.5)
    log.info("stopping")
    api.shutdown()
    enqueue.close()
    status.close()
    if facilitator_server is not None:
        facilitator_server.close()
    if node is not None:
        node.stop()
    elif adopted_pid is not None and pid_alive(adopted_pid):
        os.kill(adopted_pid, signal.SIGTERM)  # ours from an earlier run: it dumps its state on SIGTERM
        for _ in range(50):
            if not pid_alive(adopted_pid):
                break
            time.sleep(0.1)
    (state_dir / "anvil.json").unlink(missing_ok=True)
    server.stop()
    return 0


def ready_line(stack: dict[str, Any], refusal: str | None) -> str:
    """The one line ``make dev`` prints when it is up: how to try it, or why it will not mint."""
    url = stack["api_url"]
    if refusal:
        return f"mintq is up at {url}, but its batch worker REFUSES TO SEND and nothing will be minted: {refusal}"
    if stack["payment_mode"] == "x402":
        return (
            f"mintq (x402) is up at {url} — pay and mint in a browser at {url}/ "
            "or try: .venv/bin/python examples/x402_mint.py"
        )
    sample = Account.from_key(anvil.dev_private_key(1)).address
    return (
        f"mintq is up at {url} — open the mint page at {url}/ or try: curl -s -X POST {url}/mint "
        f"-H 'content-type: application/json' -d '{{\"payer\": \"{sample}\"}}'"
    )


if __name__ == "__main__":
    sys.exit(main())
