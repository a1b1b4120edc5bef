"""The mint page's HTTP routes: ``GET /`` (the page), ``GET /static/{name}`` (its script and
style) and ``GET /config.json`` (what the page must know about this deployment).

The files are packaged with the status function (``functions/status/static/``) and read on
each request (so the local stack serves edits at once): no build step or server at run time.
The page talks only to its own origin, and its Content-Security-Policy says so: no fonts,
CDNs or analytics, even if a later edit tried to add one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from mintq import config, errors

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
_ASSET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{0,63}\.(?:js|css)")
_HEADERS = {
    # 'self' only: the page and its wallet client never reach another origin.
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _file(path: Path, cache_seconds: int) -> Response[str]:
    headers = {
        **_HEADERS,
        "Cache-Control": f"public, max-age={cache_seconds}" if cache_seconds else "no-cache",
    }
    return Response(
        status_code=200,
        content_type=_TYPES[path.suffix],
        body=path.read_text(encoding="utf-8"),
        headers=headers,
    )


def page_config() -> dict[str, object]:
    """``GET /config.json``: ``paymentMode`` ("free" or "x402"), ``explorerTxUrl`` (a URL with
    ``{hash}``, or null) and ``chainId`` (or null). The x402 terms themselves come from the
    402 challenge, as for any client."""
    cfg = config.load()
    return {
        "paymentMode": cfg.payment_mode.value,
        "explorerTxUrl": cfg.explorer_tx_url,
        "chainId": cfg.chain_id,
    }


def router(static_dir: Path) -> Router:
    """The page's routes, serving files from ``static_dir`` (``index.html`` and its assets)."""
    pages = Router()  # type: ignore[no-untyped-call]

    @pages.get("/")  # type: ignore[untyped-decorator]
    def get_page() -> Response[str]:
        return _file(static_dir / "index.html", 0)

    @pages.get("/static/<name>")  # type: ignore[untyped-decorator]
    def get_asset(name: str) -> Response[str]:
        path = static_dir / name
        if not _ASSET_NAME.fullmatch(name) or not path.is_file():
            raise errors.NotFound(f"no page asset named {name[:64]!r}")
        return _file(path, 300)

    @pages.get("/config.json")  # type: ignore[untyped-decorator]
    def get_config() -> Response[str]:
        return Response(
            status_code=200,
            content_type="application/json",
            body=json.dumps(page_config()),
            headers={"Cache-Control": "no-cache"},
        )

    return pages
