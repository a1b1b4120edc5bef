"""Pay for one mint with x402 and follow it until it is on chain.

Against the local stack (``PAYMENT_MODE=x402 make dev``), which writes ``.local/stack.json``:

    .venv/bin/python examples/x402_mint.py            # pays from anvil account 1
    .venv/bin/python examples/x402_mint.py --stack-file /tmp/stack/stack.json --api-url http://127.0.0.1:3311
    PAYER_PRIVATE_KEY=0x... .venv/bin/python examples/x402_mint.py

The x402 package's own client does the protocol: ``POST /mint`` answers 402 with the
terms, the client signs an EIP-3009 authorization for exactly the price and sends it again
in ``PAYMENT-SIGNATURE``; mintq settles it through the facilitator, queues the mint for the
signer of the payment (never a body field) and answers 202 with ``PAYMENT-RESPONSE``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

import httpx
from eth_account import Account
from x402 import x402Client
from x402.http import decode_payment_response_header
from x402.http.clients import x402HttpxClient
from x402.mechanisms.evm.exact import ExactEvmClientScheme
from x402.mechanisms.evm.signers import EthAccountSigner

REPO_ROOT = Path(__file__).resolve().parents[1]
#: anvil's account 1 (the well-known dev mnemonic); the local stack funds it with test USDC
DEV_PAYER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Pay for one mint with x402 and follow it until it is on chain."
    )
    parser.add_argument(
        "--stack-file",
        type=Path,
        default=REPO_ROOT / ".local" / "stack.json",
        help="the local stack's stack.json (python -m devstack --state-dir DIR writes DIR/stack.json)",
    )
    parser.add_argument("--api-url", help="the API to pay (default: the stack file's api_url)")
    args = parser.parse_args(argv)
    try:
        stack = json.loads(args.stack_file.read_text())
    except (OSError, ValueError) as exc:
        parser.error(
            f"cannot read {args.stack_file} ({exc}); start the stack with PAYMENT_MODE=x402 make dev"
        )
    if args.api_url:
        stack["api_url"] = args.api_url.rstrip("/")
    if stack.get("payment_mode") != "x402":
        print("the local stack runs in free mode; start it with PAYMENT_MODE=x402 make dev", file=sys.stderr)
        return 1
    account = Account.from_key(os.environ.get("PAYER_PRIVATE_KEY") or DEV_PAYER_KEY)

    client = x402Client()
    client.register(stack["network"], ExactEvmClientScheme(EthAccountSigner(account)))
    # The test USDC is not one of the package's known assets: allow it, for at most the price.
    client.set_spend_controls(
        {
            "allowed_assets": [
                {
                    "network": stack["network"],
                    "asset": stack["payment_asset"],
                    "max_amount_per_payment": str(stack["price"]),
                }
            ]
        }
    )

    async with x402HttpxClient(client, base_url=stack["api_url"], timeout=30) as http:
        response = await http.post("/mint", json={})
    body = response.json()
    print(f"POST /mint -> {response.status_code}: {json.dumps(body, indent=2)}")
    if response.status_code != 202:
        return 1
    settlement = decode_payment_response_header(response.headers["PAYMENT-RESPONSE"])
    print(f"paid {stack['price']} from {account.address} in {settlement.transaction or '(pending)'}")

    deadline = time.monotonic() + 120
    with httpx.Client(base_url=stack["api_url"], timeout=10) as plain:
        while time.monotonic() < deadline:
            item = plain.get(f"/queue/item/{body['queueId']}").json()
            print(f"  {item['status']} (payment {item.get('payment_status')})")
            if item["status"] in ("completed", "failed"):
                print(json.dumps(item, indent=2))
                return 0 if item["status"] == "completed" else 1
            await asyncio.sleep(3)
    print("not minted within 2 minutes", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
