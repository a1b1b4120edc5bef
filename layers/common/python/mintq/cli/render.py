"""Output for the ``mintq`` command: Rich tables for people, JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

out = Console()
err = Console(stderr=True)


def emit_json(data: Any) -> None:
    """``data`` as JSON on stdout (no colours, no wrapping: safe to pipe)."""
    print(json.dumps(data, indent=2, default=str))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | dict):
        return json.dumps(value, default=str)
    return str(value)


def table(title: str, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> None:
    """One Rich table of ``rows`` (dicts), with ``columns`` in that order (default: the first row's keys)."""
    cols = list(columns or (rows[0].keys() if rows else []))
    t = Table(title=title, title_justify="left")
    for col in cols:
        t.add_column(col, overflow="fold")
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
