"""Entry point of the ``mintq`` console command (``[project.scripts]`` in pyproject.toml)."""

from __future__ import annotations

import sys

from mintq import errors
from mintq.cli import admin_commands, queue_commands, render
from mintq.cli.app import app

__all__ = ["admin_commands", "app", "main", "queue_commands", "run"]

#: exit codes: done, refused by a rule (the message says which), wrong usage (Typer's own)
OK, REFUSED, USAGE = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    try:
        app(args=argv, prog_name="mintq")  # standalone: usage errors print Typer's panel and exit 2
    except errors.MintqError as exc:
        render.refused(exc.message)
        return REFUSED
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else OK if exc.code is None else REFUSED
    return OK


def run() -> None:
    sys.exit(main())
