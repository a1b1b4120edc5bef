"""``mintq --help`` read in a real terminal: tmux at a typical 100-column width, the screen
captured with ``capture-pane`` and kept as a test artifact (tests/artifacts/)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.debian import ensure

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "tests" / "artifacts"
WIDTH, HEIGHT = 100, 60
PROMPT = "mintq-test$ "


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    term = Terminal(ensure("tmux"))
    yield term
    term.close()


class Terminal:
    def __init__(self, tmux: str) -> None:
        self.name = f"mintq-help-{uuid.uuid4().hex[:8]}"
        # A tmux server of its own (-S: its own socket): the default one is shared with every
        # other tmux user on the machine, and a new session that reaches it while it exits (the
        # previous test closed its last session) fails with "server exited unexpectedly".
        self.socket_dir = tempfile.mkdtemp(prefix="mintq-tmux-")
        self.tmux = [tmux, "-S", os.path.join(self.socket_dir, "socket")]
        subprocess.run(
            [
                *self.tmux,
                "new-session",
                "-d",
                "-s",
                self.name,
                "-x",
                str(WIDTH),
                "-y",
                str(HEIGHT),
                "env",
                "TERM=xterm-256color",
                f"PS1={PROMPT}",
                "bash",
                "--norc",
                "--noprofile",
            ],
            check=True,
        )

    def run(self, command: str, *, until: str, timeout: float = 30) -> str:
        subprocess.run([*self.tmux, "send-keys", "-t", self.name, "clear; " + command, "Enter"], check=True)
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = subprocess.run(
                [*self.tmux, "capture-pane", "-p", "-t", self.name],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            if until in screen and screen.rstrip().endswith(PROMPT.strip()):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{until!r} never appeared:\n{screen}")

    def close(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], check=False)
        shutil.rmtree(self.socket_dir, ignore_errors=True)  # the server leaves its socket behind


@pytest.mark.parametrize(
    ("args", "must_show"),
    [
        (
            "--help",
            [
                "migrate",
                "stats",
                "settings",
                "requests",
                "batches",
                "pause",
                "resume",
                "refunds",
                "cleanup",
                "signer",
                "--database-url",
                "MINTQ_DATABASE_URL",
            ],
        ),
        (
            "requests retry-failed --help",
            ["--since", "--reason-like", "--force", "--dry-run", "--yes", "--json", "refund"],
        ),
        ("cleanup --help", ["--older-than", "--dry-run", "mint_history"]),
        ("settings set --help", ["KEY", "VALUE", "rule"]),
    ],
)
def test_help_reads_well_in_a_real_terminal(terminal: Terminal, args: str, must_show: list[str]) -> None:
    mintq = Path(sys.executable).with_name("mintq")
    screen = terminal.run(f"{mintq} {args}", until="Show this message and exit")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"mintq {args}.txt".replace(" ", "_")).write_text(screen)
    lines = screen.splitlines()
    assert all(len(line) <= WIDTH for line in lines)
    text = " ".join(screen.split())
    missing = [word for word in must_show if word.lower() not in text.lower()]
    assert not missing, f"{missing} not on screen:\n{screen}"
    assert "Traceback" not in screen and "\\x1b" not in screen
    # Box drawing survived the terminal: the panels are whole.
    assert any(line.startswith("╭─") for line in lines) and any(line.startswith("╰─") for line in lines)
