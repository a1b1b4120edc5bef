"""A self-hosted x402 facilitator on loopback: ``POST /verify``, ``POST /settle``, ``GET /supported``.

The ``x402`` package's in-process facilitator (``x402FacilitatorSync`` with
``ExactEvmFacilitatorScheme(FacilitatorWeb3Signer(...))``) behind a small HTTP server, for
protocol v2 and v1. It settles with its OWN wallet, never the minter's: the two sign
independently, so their nonces can never collide. ``FacilitatorWeb3Signer`` keeps nonces
per process only, so run exactly one of these per settlement wallet.

``mode`` lets tests break it on purpose:

* ``up``: normal;
* ``down``: every endpoint answers 503 (``refuse()`` closes the port instead);
* ``settle_pending``: settle broadcasts, then the receipt wait "times out", so the package
  answers ``settlement_pending`` with the transaction hash;
* ``settle_hang``: settle broadcasts and waits for its receipt, then holds the answer for
  ``hang_seconds`` (past the caller's timeout), so the caller never hears back.

Run standalone: ``python -m devstack.facilitator --rpc-url ... --key ... --network eip155:31337``.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from x402 import x402FacilitatorSync
from x402.mechanisms.evm import FacilitatorWeb3Signer
from x402.mechanisms.evm.constants import MULTICALL3_ADDRESS
from x402.mechanisms.evm.exact import ExactEvmFacilitatorScheme
from x402.mechanisms.evm.exact.v1.facilitator import ExactEvmSchemeV1 as ExactEvmFacilitatorSchemeV1
from x402.mechanisms.evm.types import TransactionReceipt
from x402.mechanisms.evm.v1.constants import V1_NETWORK_CHAIN_IDS
from x402.schemas import parse_payment_payload, parse_payment_requirements

log = logging.getLogger("devstack.facilitator")

Mode = Literal["up", "down", "settle_pending", "settle_hang"]
#: x402 v1 names networks from a fixed table without local chains; the dev chain gets one.
LOCAL_V1_NETWORK = "anvil"


def install_multicall3(rpc_url: str) -> None:
    """Put Multicall3's ``tryAggregate`` at its canonical address on a dev chain (anvil has none);
    without it the facilitator reports every failed simulation as ``transaction_simulation_failed``."""
    from web3 import Web3
    from web3.types import RPCEndpoint

    from devstack.contracts import load_artifact

    w3 = Web3(Web3.HTTPProvider(rpc_url))
    address = Web3.to_checksum_address(MULTICALL3_ADDRESS)
    if not w3.eth.get_code(address):
        w3.provider.make_request(
            RPCEndpoint("anvil_setCode"), [address, load_artifact("Multicall3")["deployedBytecode"]]
        )


def register_local_v1_network(chain_id: int, name: str = LOCAL_V1_NETWORK) -> str:
    """Teach the x402 package (client and facilitator, same process) a v1 name for a dev chain."""
    V1_NETWORK_CHAIN_IDS.setdefault(name, chain_id)
    return name


class _Signer(FacilitatorWeb3Signer):
    """The package's signer, with a switch that loses the receipt after broadcasting."""

    def __init__(self, owner: Facilitator, private_key: str, rpc_url: str) -> None:
        super().__init__(private_key, rpc_url, confirmation_timeout_seconds=20)
        self.owner = owner

    def write_contract(self, *args: Any, **kwargs: Any) -> str:
        tx = super().write_contract(*args, **kwargs)
        with self.owner.lock:
            self.owner.broadcasts += 1
        return tx

    def wait_for_transaction_receipt(self, tx_hash: str) -> TransactionReceipt:
        if self.owner.mode == "settle_pending":
            raise TimeoutError(f"simulated: no receipt for {tx_hash} in time")
        return super().wait_for_transaction_receipt(tx_hash)


class Facilitator:
    def __init__(
        self,
        *,
        rpc_url: str,
        private_key: str,
        network: str,
        v1_network: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.mode: Mode = "up"
        self.hang_seconds = 15.0
        self.lock = threading.Lock()
        self.verify_calls = 0
        self.settle_calls = 0
        self.broadcasts = 0
        self.signer = _Signer(self, private_key, rpc_url)
        self.core = x402FacilitatorSync()
        self.core.register([network], ExactEvmFacilitatorScheme(self.signer))
        if v1_network:
            self.core.register_v1([v1_network], ExactEvmFacilitatorSchemeV1(self.signer))
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="facilitator", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def address(self) -> str:
        return self.signer.address

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # --- endpoints ------------------------------------------------------------

    def supported(self) -> dict[str, Any]:
        return self.core.get_supported().model_dump(by_alias=True, exclude_none=True)

    def verify(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.verify_calls += 1
        payload, requirements = self._parse(body)
        result = self.core.verify(payload, requirements)
        return result.model_dump(by_alias=True, exclude_none=True)

    def settle(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.settle_calls += 1
        payload, requirements = self._parse(body)
        result = self.core.settle(payload, requirements)
        if self.mode == "settle_hang":
            time.sleep(self.hang_seconds)
        return result.model_dump(by_alias=True, exclude_none=True)

    @staticmethod
    def _parse(body: dict[str, Any]) -> tuple[Any, Any]:
        version = int(body["x402Version"])
        payload = parse_payment_payload(body["paymentPayload"])
        requirements = parse_payment_requirements(version, body["paymentRequirements"])
        return payload, requirements

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt: str, *args: Any) -> None:
                log.debug(fmt, *args)

            def _answer(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if owner.mode == "down":
                    return self._answer(503, {"error": "facilitator down (simulated)"})
                if self.path.rstrip("/") == "/supported":
                    return self._answer(200, owner.supported())
                return self._answer(404, {"error": "not found"})

            def do_POST(self) -> None:
                if owner.mode == "down":
                    return self._answer(503, {"error": "facilitator down (simulated)"})
                try:
                    body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                except ValueError:
                    return self._answer(400, {"error": "invalid JSON"})
                route = {"/verify": owner.verify, "/settle": owner.settle}.get(self.path.rstrip("/"))
                if route is None:
                    return self._answer(404, {"error": "not found"})
                try:
                    return self._answer(200, route(body))
                except (KeyError, ValueError, TypeError) as exc:
                    return self._answer(400, {"error": f"invalid request: {exc}"})
                except Exception as exc:
                    log.exception("facilitator failed")
                    return self._answer(500, {"error": f"{type(exc).__name__}: {exc}"})

        return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.facilitator", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--rpc-url", required=True)
    parser.add_argument(
        "--key", required=True, help="the settlement wallet's private key (never the minter's)"
    )
    parser.add_argument("--network", required=True, help="CAIP-2, e.g. eip155:84532")
    parser.add_argument("--v1-network", default=None, help="x402 v1 name, e.g. base-sepolia")
    parser.add_argument("--port", type=int, default=4022)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    fac = Facilitator(
        rpc_url=args.rpc_url,
        private_key=args.key,
        network=args.network,
        v1_network=args.v1_network,
        port=args.port,
    )
    print(f"facilitator on {fac.url}, settling from {fac.address}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        fac.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
