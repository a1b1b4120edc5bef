"""The floor under the enqueue handler's Python: Powertools' HTTP API resolver alone, one
``POST /mint`` route, with and without request validation (a pydantic body model), no database,
no logger context, no metrics. Shows how much of the handler's own time the fixed shape costs.

    .venv/bin/python bench/powertools_floor.py [--requests 3000] [--rounds 5]

Prints JSON: the median over ``rounds`` of the mean time per request, in ms, for each variant.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import setup_environment

setup_environment()

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from devstack.lambdas import FakeContext  # noqa: E402
from tests.support.events import http_event  # noqa: E402


class MintBody(BaseModel):
    payer: str


def resolver(validation: bool) -> APIGatewayHttpResolver:
    app = APIGatewayHttpResolver(enable_validation=validation)
    if validation:

        @app.post("/mint")  # type: ignore[untyped-decorator]
        def mint(body: MintBody) -> dict[str, Any]:
            return {"queueId": "x", "payer": body.payer}

    else:

        @app.post("/mint")  # type: ignore[untyped-decorator]
        def mint_unvalidated() -> dict[str, Any]:
            return {"queueId": "x", "payer": app.current_event.json_body["payer"]}

    return app


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    ctx = FakeContext(function_name="floor", timeout_s=60)
    event = http_event("POST", "/mint", body={"payer": "0x" + "ab" * 20})
    result: dict[str, Any] = {"command": " ".join(sys.orig_argv), "requests": args.requests}
    for validation in (True, False):
        app = resolver(validation)
        for _ in range(500):  # warm
            app.resolve(event, ctx)
        means = []
        for _ in range(args.rounds):
            started = time.perf_counter()
            for _ in range(args.requests):
                app.resolve(event, ctx)
            means.append((time.perf_counter() - started) / args.requests * 1000)
        key = "with_validation" if validation else "without_validation"
        result[key] = {
            "median_ms": round(statistics.median(means), 4),
            "rounds_ms": [round(m, 4) for m in means],
        }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
