"""Check a running local stack end to end: N mints in, N tokens out, within a deadline.

    .venv/bin/python scripts/smoke_local.py [--count 20] [--timeout 30]

Reads .local/stack.json (written by ``make dev``), POSTs one /mint per fresh address,
polls /queue/item/{queueId} until every request is completed, then checks each
address's on-chain balance equals the token's amountPerMint.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from eth_account import Account
from web3 import Web3

STACK = Path(__file__).resolve().parents[1] / ".local" / "stack.json"
ABI = [
    {
        "name": "balanceOf",
        "type": "function",
        "stateMutability": "view",
        "inputs": [{"name": "a", "type": "address"}],
        "outputs": [{"name": "", "type": "uint256"}],
    },
    {
        "name": "amountPerMint",
        "type": "function",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [{"name": "", "type": "uint256"}],
    },
]


def call(method: str, url: str, body: object | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=30)
    args = parser.parse_args()
    stack = json.loads(STACK.read_text())
    api = stack["api_url"]
    addresses = [Account.create().address for _ in range(args.count)]
    started = time.monotonic()
    ids = []
    for address in addresses:
        status, body = call("POST", f"{api}/mint", {"payer": address})
        if status != 202:
            print(f"POST /mint {address}: {status} {body}", file=sys.stderr)
            return 1
        ids.append(body["queueId"])
    waiting = set(ids)
    while waiting and time.monotonic() - started < args.timeout:
        for queue_id in list(waiting):
            _, item = call("GET", f"{api}/queue/item/{queue_id}")
            if item.get("status") == "completed":
                waiting.discard(queue_id)
            elif item.get("status") == "failed":
                print(f"{queue_id} failed: {item.get('error_message')}", file=sys.stderr)
                return 1
        time.sleep(0.5)
    elapsed = time.monotonic() - started
    if waiting:
        print(f"{len(waiting)} of {args.count} not completed after {elapsed:.1f} s", file=sys.stderr)
        return 1
    w3 = Web3(Web3.HTTPProvider(stack["rpc_url"]))
    token = w3.eth.contract(address=Web3.to_checksum_address(stack["token_address"]), abi=ABI)
    amount = token.functions.amountPerMint().call()
    wrong = [a for a in addresses if token.functions.balanceOf(a).call() != amount]
    if wrong:
        print(f"{len(wrong)} addresses do not hold amountPerMint: {wrong[:3]}", file=sys.stderr)
        return 1
    print(
        json.dumps(
            {
                "requests": args.count,
                "completed": args.count,
                "seconds": round(elapsed, 1),
                "each_holds_amount_per_mint": True,
                "amount_per_mint": str(amount),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
