"""The mint page's routes through the status function's real handler."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from devstack.lambdas import FakeContext, load_handler
from mintq import config
from tests.support.events import http_event

REPO_ROOT = Path(__file__).resolve().parents[2]
STATIC = REPO_ROOT / "functions" / "status" / "static"


def call(path: str, route: str, params: dict[str, str] | None = None) -> dict[str, Any]:
    handler = load_handler(REPO_ROOT / "functions" / "status")
    result: dict[str, Any] = handler(
        http_event("GET", path, route=route, path_parameters=params), FakeContext(function_name="status")
    )
    return result


def test_the_page_is_served_at_the_root_with_a_same_origin_only_policy() -> None:
    answer = call("/", "/")
    assert answer["statusCode"] == 200
    headers = {k.lower(): v for k, v in answer["headers"].items()}
    assert headers["content-type"].startswith("text/html")
    assert "connect-src 'self'" in headers["content-security-policy"]
    assert "default-src 'none'" in headers["content-security-policy"]
    assert answer["body"] == (STATIC / "index.html").read_text()
    # Everything the page loads is one of our own assets, by a relative URL.
    for name in ("style.css", "x402-client.js", "app.js"):
        assert f'"static/{name}"' in answer["body"]


@pytest.mark.parametrize(("name", "kind"), [("app.js", "text/javascript"), ("style.css", "text/css")])
def test_assets_are_served_with_their_types(name: str, kind: str) -> None:
    answer = call(f"/static/{name}", "/static/{name}", {"name": name})
    assert answer["statusCode"] == 200
    assert answer["headers"]["Content-Type"].startswith(kind)
    assert answer["body"] == (STATIC / name).read_text()


@pytest.mark.parametrize(
    "name", ["index.html", "..%2Fapp.py", ".hidden.js", "nope.js", "app.py", "x" * 80 + ".js"]
)
def test_anything_else_under_static_is_a_404_in_the_error_shape(name: str) -> None:
    answer = call(f"/static/{name}", "/static/{name}", {"name": name})
    assert answer["statusCode"] == 404
    assert json.loads(answer["body"])["error"]["code"] == "not_found"


def test_config_tells_the_page_the_mode_and_the_explorer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINTQ_EXPLORER_TX_URL", "https://basescan.org/tx/{hash}")
    monkeypatch.setenv("MINTQ_CHAIN_ID", "8453")
    config.reset()
    try:
        answer = call("/config.json", "/config.json")
    finally:
        config.reset()
    assert answer["statusCode"] == 200
    assert json.loads(answer["body"]) == {
        "paymentMode": "free",
        "explorerTxUrl": "https://basescan.org/tx/{hash}",
        "chainId": 8453,
    }


@pytest.mark.parametrize("template", ["https://basescan.org/tx/", "javascript:alert('{hash}')"])
def test_an_explorer_template_without_hash_or_http_is_a_configuration_error(
    template: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINTQ_EXPLORER_TX_URL", template)
    config.reset()
    try:
        with pytest.raises(Exception, match="MINTQ_EXPLORER_TX_URL"):
            config.load()
    finally:
        config.reset()


def test_the_committed_wallet_bundle_is_what_make_page_builds(tmp_path: Path) -> None:
    esbuild = REPO_ROOT / "node_modules" / ".bin" / "esbuild"
    if not esbuild.exists():
        subprocess.run(["make", "node_modules/.stamp"], cwd=REPO_ROOT, check=True, capture_output=True)
    flags = subprocess.run(
        ["make", "-s", "--no-print-directory", "-pn", "page"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(x for x in flags.splitlines() if x.startswith("PAGE_BUNDLE_FLAGS :="))
    out = tmp_path / "x402-client.js"
    subprocess.run(
        [str(esbuild), "web/x402-client.js", *line.split(":=", 1)[1].split(), f"--outfile={out}"],
        cwd=REPO_ROOT,
        check=True,
        env={**os.environ},
    )
    assert out.read_bytes() == (STATIC / "x402-client.js").read_bytes(), (
        "run `make page` and commit the bundle"
    )
