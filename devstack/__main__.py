"""``make dev``: the whole of mintq on one machine, in the foreground.

PostgreSQL (``DATABASE_URL``, else 127.0.0.1:5432, else an embedded server), a chain
(``RPC_URL``, else anvil with 1-second blocks) with MintToken deployed (unless
``TOKEN_ADDRESS``), the API on http://127.0.0.1:3000 serving the Lambda handlers with
API Gateway events, and the batch function invoked the way EventBridge would.

Restarting on the same database and chain resumes where it stopped, even after
``kill -9``: anvil runs in its own session and is adopted again, the token is found
from ``.local/stack.json``, and the batch worker reconciles whatever was in flight.
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

from devstack import anvil, contracts, lambdas, postgres
from devstack.http import Route, serve

REPO_ROOT = Path(__file__).resolve().parents[1]
STATE_DIR = REPO_ROOT / ".local"
STACK_FILE = STATE_DIR / "stack.json"
ANVIL_FILE = STATE_DIR / "anvil.json"
DEV_DATABASE = "mintq_dev"
BATCH_TIMEOUT_S = 300  # the template's BatchFunction timeout

log = logging.getLogger("devstack")


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def start_database() -> tuple[postgres.Server, str]:
    server = postgres.resolve_server(STATE_DIR)
    url = (
        server.admin_url if server.kind == "env" else postgres.ensure_database(server.admin_url, DEV_DATABASE)
    )
    from mintq import migrations

    applied = migrations.apply(url)
    log.info("postgres (%s) ready; migrations applied now: %s", server.kind, applied or "none")
    return server, url


def start_chain(rpc_port: int, block_time: float) -> tuple[str, anvil.Anvil | None, int | None]:
    """Returns the RPC URL, the node we started (to stop on exit) and an adopted anvil's pid."""
    url = _env("RPC_URL")
    if url:
        return url, None, None
    previous = _read_json(ANVIL_FILE)
    pid, port = previous.get("pid"), previous.get("port")
    if isinstance(pid, int) and isinstance(port, int) and _pid_alive(pid):
        url = f"http://127.0.0.1:{port}"
        if anvil.rpc_alive(url):
            log.info("adopting anvil pid %s left running by a previous run", pid)
            return url, None, pid
    node = anvil.start_anvil(
        port=rpc_port,
        block_time=block_time,
        state_path=STATE_DIR / "anvil-state.json",
        new_session=True,  # survives a kill -9 of this process, to be adopted on restart
        log_path=STATE_DIR / "anvil.log",
    )
    if node.process is not None:
        ANVIL_FILE.write_text(json.dumps({"pid": node.process.pid, "port": node.port}))
    return node.rpc_url, node, None


def ensure_token(w3: Web3, signer_key: str, chain_id: int) -> str:
    given = _env("TOKEN_ADDRESS")
    if given:
        return Web3.to_checksum_address(given)
    previous = _read_json(STACK_FILE)
    known = previous.get("token_address")
    if (
        isinstance(known, str)
        and previous.get("chain_id") == chain_id
        and w3.eth.get_code(Web3.to_checksum_address(known))
    ):
        return Web3.to_checksum_address(known)
    minter = Account.from_key(signer_key).address
    address = contracts.deploy_mint_token(w3, signer_key, minter=minter)
    log.info("deployed MintToken at %s (minter %s)", address, minter)
    return str(address)


#: x402 mode: the test USDC's price per mint (0.01 USDC) and who is funded with it.
X402_PRICE = 10_000
X402_FUNDED_ACCOUNTS = range(1, 10)
X402_FUND_AMOUNT = 1_000 * 10**6
FACILITATOR_PORT = 4022
#: anvil's account 8 settles payments: never the minter (account 0), so their nonces never collide.
FACILITATOR_ACCOUNT = 8


def start_x402(w3: Web3, rpc_url: str, chain_id: int, deployer_key: str) -> tuple[dict[str, str], Any]:
    """Deploy (or find) the EIP-3009 test USDC, fund accounts 1-9, start the local facilitator."""
    from devstack import facilitator

    previous = _read_json(STACK_FILE)
    known = previous.get("payment_asset")
    if (
        isinstance(known, str)
        and previous.get("chain_id") == chain_id
        and w3.eth.get_code(Web3.to_checksum_address(known))
    ):
        asset = Web3.to_checksum_address(known)
    else:
        asset = contracts.deploy(w3, "TestUSDC", [], deployer_key)
        log.info("deployed TestUSDC at %s", asset)
    usdc = w3.eth.contract(address=asset, abi=contracts.load_artifact("TestUSDC")["abi"])
    for index in X402_FUNDED_ACCOUNTS:
        holder = Account.from_key(anvil.dev_private_key(index)).address
        if usdc.functions.balanceOf(holder).call() < X402_FUND_AMOUNT // 2:
            contracts.transact(w3, usdc.functions.mint(holder, X402_FUND_AMOUNT), deployer_key)
    facilitator.install_multicall3(rpc_url)
    network = f"eip155:{chain_id}"
    v1_network = config_v1_network(chain_id) or facilitator.register_local_v1_network(chain_id)
    server = facilitator.Facilitator(
        rpc_url=rpc_url,
        private_key=anvil.dev_private_key(FACILITATOR_ACCOUNT),
        network=network,
        v1_network=v1_network,
        port=FACILITATOR_PORT,
    )
    pay_to = _env("PAY_TO") or Account.from_key(anvil.dev_private_key(9)).address
    log.info("x402: facilitator %s settles from %s; payTo %s", server.url, server.address, pay_to)
    env = {
        "MINTQ_X402_PRICE": str(X402_PRICE),
        "MINTQ_X402_PAY_TO": pay_to,
        "MINTQ_X402_ASSET": asset,
        "MINTQ_X402_NETWORK": network,
        "MINTQ_X402_V1_NETWORK": v1_network,
        "MINTQ_X402_ASSET_NAME": "USDC",
        "MINTQ_X402_ASSET_VERSION": "2",
        "MINTQ_X402_FACILITATOR_URL": server.url,
    }
    return env, server


def config_v1_network(chain_id: int) -> str | None:
    from mintq import config

    return config.V1_NETWORK_NAMES.get(chain_id)


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(_env("PORT") or 3000))
    parser.add_argument("--rpc-port", type=int, default=8545)
    parser.add_argument("--block-time", type=float, default=1.0)
    parser.add_argument(
        "--no-worker",
        action="store_true",
        help="serve the API only (run workers yourself: python -m devstack.worker)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    STATE_DIR.mkdir(exist_ok=True)
    sys.path.insert(0, str(REPO_ROOT / "layers" / "common" / "python"))

    server, database_url = start_database()
    rpc_url, node, adopted_pid = start_chain(args.rpc_port, args.block_time)
    w3 = Web3(Web3.HTTPProvider(rpc_url))
    chain_id = int(w3.eth.chain_id)
    signer_key = _env("SIGNER_PRIVATE_KEY") or anvil.dev_private_key(0)
    signer_address = Account.from_key(signer_key).address
    token = ensure_token(w3, signer_key, chain_id)
    payment_mode = _env("PAYMENT_MODE") or "free"
    x402_env: dict[str, str] = {}
    facilitator_server: Any = None
    if payment_mode == "x402":
        x402_env, facilitator_server = start_x402(w3, rpc_url, chain_id, signer_key)

    os.environ.update(
        {
            "MINTQ_DATABASE_URL": database_url,
            "MINTQ_RPC_URL": rpc_url,
            "MINTQ_TOKEN_ADDRESS": token,
            "MINTQ_CHAIN_ID": str(chain_id),
            "MINTQ_SIGNER_PRIVATE_KEY": signer_key,
            "MINTQ_PAYMENT_MODE": payment_mode,
            "POWERTOOLS_SERVICE_NAME": "mintq",
            "POWERTOOLS_METRICS_NAMESPACE": "MintqLocal",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",
            # AWS runs retention on its own daily schedule; here the worker's housekeeping does.
            "MINTQ_RETENTION_IN_WORKER": "true",
            **x402_env,
        }
    )
    enqueue = lambdas.load_handler(REPO_ROOT / "functions" / "enqueue")
    status = lambdas.load_handler(REPO_ROOT / "functions" / "status")
    api = serve(
        [
            Route("POST", "/mint", enqueue, function_name="mintq-enqueue", timeout_s=10),
            Route("GET", "/queue/status", status, function_name="mintq-status", timeout_s=10),
            Route("GET", "/queue/payer/{address}", status, function_name="mintq-status", timeout_s=10),
            Route("GET", "/queue/item/{queueId}", status, function_name="mintq-status", timeout_s=10),
        ],
        port=args.port,
    )
    stop = threading.Event()
    if not args.no_worker:
        threading.Thread(target=batch_schedule, args=(stop,), name="batch", daemon=True).start()

    stack = {
        "api_url": api.url,
        "rpc_url": rpc_url,
        "chain_id": chain_id,
        "token_address": token,
        "database_url": database_url,
        "signer_address": signer_address,
        "payment_mode": os.environ["MINTQ_PAYMENT_MODE"],
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
    STACK_FILE.write_text(json.dumps(stack, indent=2) + "\n")
    sample = Account.from_key(anvil.dev_private_key(1)).address
    if x402_env:
        print(f"mintq (x402) is up at {api.url} — try: python examples/x402_mint.py", flush=True)
    print(
        f"mintq is up at {api.url} — try: curl -s -X POST {api.url}/mint "
        f"-H 'content-type: application/json' -d '{{\"payer\": \"{sample}\"}}'",
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
    if facilitator_server is not None:
        facilitator_server.close()
    if node is not None:
        node.stop()
    elif adopted_pid is not None and _pid_alive(adopted_pid):
        os.kill(adopted_pid, signal.SIGTERM)  # ours from an earlier run: it dumps its state on SIGTERM
        for _ in range(50):
            if not _pid_alive(adopted_pid):
                break
            time.sleep(0.1)
    ANVIL_FILE.unlink(missing_ok=True)
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
