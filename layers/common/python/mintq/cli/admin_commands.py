"""``mintq migrate``, ``settings``, ``pause``/``resume``, ``cleanup`` and ``signer``: changing a deployment."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mintq import controls, credentials, migrations, retention
from mintq.cli import render
from mintq.cli.app import JsonOption, Target, app, connection, settings_app, signer_app


@app.command()
def migrate(
    ctx: typer.Context,
    status: Annotated[
        bool, typer.Option("--status", help="List applied and pending migrations; apply none.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Apply pending schema migrations under the migration advisory lock."""
    url = (ctx.find_object(Target) or Target()).url()
    if status:
        rows = migrations.status(url)
        if as_json:
            render.emit_json(rows)
        else:
            render.table("migrations", rows, ["version", "name", "state", "applied_at"])
        return
    applied = migrations.apply(url)
    if as_json:
        render.emit_json({"applied": applied})
    else:
        render.out.print(
            f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else "")
        )


@settings_app.command("get")
def settings_get(
    ctx: typer.Context,
    key: Annotated[str | None, typer.Argument(help="One setting; all of them without it.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Settings as stored, and whether the worker accepts each value."""
    with connection(ctx) as conn:
        rows = controls.get_settings(conn, key)
    if as_json:
        render.emit_json(rows)
    else:
        render.table("settings", rows, ["key", "value", "valid", "description"])


@settings_app.command("set", context_settings={"ignore_unknown_options": True})
def settings_set(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="The setting, e.g. batch_interval_seconds.")],
    value: Annotated[
        str, typer.Argument(help="Its new value; refused unless it follows the setting's rule.")
    ],
    as_json: JsonOption = False,
) -> None:
    """Change a setting; the worker picks it up on its next cycle. An invalid value is refused
    with the rule it breaks and never stored."""
    with connection(ctx) as conn:
        row = controls.set_setting(conn, key, value)
    if as_json:
        render.emit_json(row)
    else:
        render.out.print(f"{row['key']} = {row['value']}")


@app.command()
def pause(
    ctx: typer.Context,
    close_api: Annotated[
        bool, typer.Option("--close-api", help="Also answer POST /mint with 503 and Retry-After.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Stop the worker claiming new requests (it still finishes what is in flight)."""
    with connection(ctx) as conn:
        state = controls.pause(conn, close_api=close_api)
    if as_json:
        render.emit_json(state)
    else:
        render.out.print(
            "worker paused" + ("; POST /mint closed (503)" if state["api_closed"] else "; API open")
        )


@app.command()
def resume(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Let the worker claim again and reopen POST /mint."""
    with connection(ctx) as conn:
        state = controls.resume(conn)
    if as_json:
        render.emit_json(state)
    else:
        render.out.print("worker resumed; API open")


@app.command()
def cleanup(
    ctx: typer.Context,
    older_than: Annotated[
        str | None, typer.Option(help="Age such as 30d, 12h or 90m; default: the retention_days setting.")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would go; delete nothing.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete completed and failed queue rows past retention, in short chunks.

    mint_history is kept, and so are paid requests listed for refund."""
    days = _days(older_than) if older_than else None
    with connection(ctx) as conn:
        if days is None:
            days = float(next(r for r in controls.get_settings(conn, "retention_days"))["value"] or 30)
        expired = retention.count_expired(conn, older_than_days=days)
        deleted = 0
        if not dry_run and expired.total:
            with Progress(
                TextColumn("deleting"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=render.err,
                disable=as_json,
            ) as bar:
                task = bar.add_task("delete", total=expired.total)
                deleted = retention.delete_expired(
                    conn, older_than_days=days, on_chunk=lambda n: bar.advance(task, n)
                )
    result = {
        "older_than_days": days,
        "completed": expired.completed,
        "failed": expired.failed,
        "deleted": deleted,
        "dry_run": dry_run,
    }
    if as_json:
        render.emit_json(result)
    elif dry_run:
        render.out.print(
            f"{expired.total} row(s) older than {days:g} days would be deleted "
            f"({expired.completed} completed, {expired.failed} failed); nothing deleted"
        )
    else:
        render.out.print(f"deleted {deleted} row(s) older than {days:g} days")


_UNITS = {"d": 1.0, "h": 1 / 24, "m": 1 / 1440}


def _days(text: str) -> float:
    unit = text[-1:].lower()
    try:
        value = float(text[:-1]) * _UNITS[unit] if unit in _UNITS else float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise typer.BadParameter(f"{text!r} is not an age such as 30d, 12h or 90m", param_hint="--older-than")
    return value


@signer_app.command("address")
def signer_address(
    kms_key_id: Annotated[
        list[str] | None,
        typer.Option("--kms-key-id", help="A KMS key id, ARN or alias (repeat for a pool)."),
    ] = None,
    region: Annotated[str | None, typer.Option(help="AWS region of the KMS keys.")] = None,
    as_json: JsonOption = False,
) -> None:
    """The worker's signer address(es): of --kms-key-id, else of MINTQ_SIGNER_KMS_KEY_IDS, else of
    the local keys (MINTQ_SIGNER_PRIVATE_KEY(S) or the signer secret)."""
    key_ids = kms_key_id or credentials.signer_kms_key_ids()
    if key_ids:
        from mintq import kms_signer  # boto3 and the key's public half; the key never leaves KMS

        client = kms_signer.kms_client(region_name=region)
        addresses = [kms_signer.key_address(key_id, client=client) for key_id in key_ids]
    else:
        from eth_account import Account  # the key never leaves this process

        addresses = [str(Account.from_key(key).address) for key in credentials.signer_private_keys()]
    if as_json:
        render.emit_json({"addresses": addresses})
    else:
        for address in addresses:
            render.out.print(address)
