"""Measure MintToken.batchMint gas per mint on a throwaway anvil.

Usage: .venv/bin/python scripts/gas_report.py [--sizes 1,50,200,500,1000] [--contract MintToken]

Every batch goes to fresh addresses (the worst case: a zero-to-nonzero balance SSTORE each), and the
figure is the receipt's gasUsed / n, i.e. including the 21,000 intrinsic gas and the calldata.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a plain script from anywhere

from web3 import Web3

from devstack.anvil import dev_private_key, start_anvil, stop_quietly
from devstack.contracts import deploy_mint_token, load_artifact, transact

DEFAULT_SIZES = (1, 50, 200, 500, 1000)
BLOCK_GAS_LIMIT = 30_000_000
# Per-mint floor for a fresh recipient: cold zero->nonzero SSTORE (2,100 + 20,000), a LOG3 with 32 data
# bytes (375 + 3*375 + 8*32) and 32 calldata bytes of a random address (12 zero * 4 + 20 nonzero * 16).
FLOOR_PER_MINT = 22_100 + 1_756 + 368


def fresh_addresses(n: int, salt: str) -> list[str]:
    # Deterministic but random-looking, so calldata costs what real addresses cost.
    return [Web3.to_checksum_address(Web3.keccak(text=f"{salt}:{i}")[-20:]) for i in range(n)]


def measure(sizes: list[int], contract: str) -> dict[str, Any]:
    node = start_anvil(gas_limit=BLOCK_GAS_LIMIT)
    try:
        w3 = Web3(Web3.HTTPProvider(node.rpc_url))
        admin_key, minter_key = dev_private_key(0), dev_private_key(1)
        minter = w3.eth.account.from_key(minter_key).address
        address = deploy_mint_token(w3, admin_key, minter=minter, max_mints=10_000_000, contract=contract)
        token = w3.eth.contract(address=address, abi=load_artifact(contract)["abi"])
        rows = []
        for n in sizes:
            recipients = fresh_addresses(n, f"gas-report-{n}")
            receipt = transact(w3, token.functions.batchMint(recipients), minter_key)
            gas_used = int(receipt["gasUsed"])
            rows.append(
                {
                    "n": n,
                    "gas_used": gas_used,
                    "gas_per_mint": round(gas_used / n, 1),
                    "vs_floor_pct": round(100 * (gas_used / n / FLOOR_PER_MINT - 1), 2),
                }
            )
        compiler = load_artifact(contract)["compiler"]
        return {
            "contract": contract,
            "solc": compiler["version"],
            "evm_version": compiler["settings"]["evmVersion"],
            "floor_per_mint": FLOOR_PER_MINT,
            "results": rows,
        }
    finally:
        stop_quietly(node)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="comma-separated")
    parser.add_argument("--contract", default="MintToken")
    args = parser.parse_args(argv)
    report = measure([int(s) for s in args.sizes.split(",")], args.contract)

    print(f"{args.contract} batchMint to fresh addresses (floor ~{FLOOR_PER_MINT:,} gas/mint)")
    print(f"{'n':>6} {'gasUsed':>12} {'gas/mint':>10} {'vs floor':>9}")
    for row in report["results"]:
        print(
            f"{row['n']:>6} {row['gas_used']:>12,} {row['gas_per_mint']:>10,.1f} {row['vs_floor_pct']:>8.2f}%"
        )
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
