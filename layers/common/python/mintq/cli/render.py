"""Output for the ``mintq`` command: Rich tables for people, JSON for scripts."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

out = Console()
err = Console(stderr=True)


def emit_json(data: Any) -> None:
    """``data`` as JSON on stdout (no colours, no wrapping: safe to pipe)."""
    print(json.dumps(data, indent=2, default=str))


_ISO_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$")
#: columns of free text: they wrap; every other column keeps its value on one line
_PROSE = frozenset({"description", "error_message", "reason", "error"})


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        value = value.isoformat()
    if isinstance(value, list | dict):
        return json.dumps(value, default=str)
    text = str(value)
    match = _ISO_TIME.match(text)
    if match:  # seconds are enough on a screen; --json keeps the full value
        return match[1].replace("T", " ") + ("Z" if match[3] in ("Z", "+00:00") else match[3] or "")
    return text


def table(title: str, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> None:
    """One Rich table of ``rows`` (dicts), with ``columns`` in that order (default: the first row's keys).

    Identifiers, hashes and times stay on one line (cut with an ellipsis if the terminal is
    too narrow); only prose columns wrap."""
    cols = list(columns or (rows[0].keys() if rows else []))
    t = Table(title=title, title_justify="left")
    for col in cols:
        if col in _PROSE:
            t.add_column(col, overflow="fold", ratio=1)
        else:
            t.add_column(col, no_wrap=True, overflow="ellipsis")
    for row in rows:
        t.add_row(*(_cell(row.get(col)) for col in cols))
    if not rows:
        out.print(f"[bold]{title}[/bold]: none")
        return
    out.print(t)


def fields(title: str, data: Mapping[str, Any]) -> None:
    """A two-column table of one record's fields."""
    t = Table(title=title, title_justify="left", show_header=False)
    t.add_column("field", style="bold")
    t.add_column("value", overflow="fold")
    for key, value in data.items():
        t.add_row(key, _cell(value))
    out.print(t)


def refused(message: str) -> None:
    err.print(f"[bold red]refused:[/bold red] {message}", highlight=False)
