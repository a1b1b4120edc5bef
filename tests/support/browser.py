"""Real Chromium for browser tests: Debian's ``chromium`` driven by Playwright for Python.

Playwright never downloads a browser here: it launches the system binary through
``executable_path``. :func:`ensure_chromium` installs Debian's package when the binary is
missing (idempotent, the way ``make test`` installs every other Debian dependency).
"""

from __future__ import annotations

from pathlib import Path

from tests.support import debian

CHROMIUM = "/usr/bin/chromium"

# Headless and quiet: no GPU, no sandbox (tests run as root), and nothing that phones home
# (component updates, sync, background networking, QUIC), so a test sees only the requests
# its page makes.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)

REPO_ROOT = Path(__file__).resolve().parents[2]
# Screenshots and other artifacts a browser test keeps (gitignored).
ARTIFACTS_DIR = REPO_ROOT / "tests" / "artifacts"


def ensure_chromium() -> str:
    """Return the path of Debian's Chromium, installing the ``chromium`` package if it is missing.

    Raises ``subprocess.CalledProcessError`` when apt-get fails (no root, no network).
    """
    return debian.ensure(CHROMIUM, "chromium")


def artifact_path(name: str) -> Path:
    """``tests/artifacts/<name>``, with the folder created; for screenshots a test keeps."""
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS_DIR / name
