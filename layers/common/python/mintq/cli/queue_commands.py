"""``mintq stats``, ``requests``, ``batches`` and ``refunds``: reading the queue (and retrying)."""

from __future__ import annotations

import csv
import enum
import sys
from datetime import datetime
from typing import Annotated

import typer

from mintq import controls, reports
from mintq.cli import render
from mintq.cli.app import JsonOption, app, batches_app, connection, refunds_app, requests_app


@app.command()
def stats(
    ctx: typer.Context,
    rpc_url: Annotated[
        str | None,
        typer.Option(
            "--rpc-url", envvar="MINTQ_RPC_URL", help="Also read each signer's balance and nonce lag."
        ),
    ] = None,
    rpc_timeout: Annotated[
        float,
        typer.Option(
            "--rpc-timeout", min=0.1, help="Seconds the node may take in all to answer for every signer."
        ),
    ] = reports.CHAIN_READ_SECONDS,
    window: Annotated[int, typer.Option(min=10, help="Seconds the drain rate is measured over.")] = 300,
    as_json: JsonOption = False,
) -> None:
    """The queue's counts, oldest pending age, drain rate, in-flight batches and paused state.

    With --rpc-url, also each signer's balance and nonce lag (one batched request to the node)."""
    with connection(ctx) as conn:
        data = reports.stats(conn, window_seconds=window)
        signers = reports.signer_nonces(conn) if rpc_url else []
    if rpc_url:  # outside the connection: a slow node does not hold a database session open
        data["signers"] = reports.signers_on_chain(rpc_url, signers, timeout=rpc_timeout)
    if as_json:
        render.emit_json(data)
        return
    state = "PAUSED (claiming nothing new)" if data["paused"] else "running"
    api = "CLOSED (503)" if data["api_closed"] else "open"
    render.fields(
        "queue",
        data["counts"]
        | {
            "oldest pending (s)": data["oldest_pending_seconds"],
            f"drained, last {window} s": f"{data['drain']['mints']} mints in {data['drain']['batches']} batches "
            f"({data['drain']['mints_per_minute']}/min)",
            "worker": state,
            "api": api,
        },
    )
    render.table(
        "in-flight batches",
        data["inflight"],
        [
            "signer_address",
            "nonce",
            "status",
            "mint_count",
            "age_seconds",
            "attempts",
            "max_fee_per_gas",
            "max_priority_fee_per_gas",
        ],
    )
    if "signers" in data:
        columns = ["signer_address", "balance_wei", "chain_nonce", "recorded_next_nonce", "nonce_lag"]
        render.table("signers on chain", data["signers"], columns)
        # The node failed for all of them at once: say so once, naming it.
        for error in dict.fromkeys(row["error"] for row in data["signers"] if "error" in row):
            render.out.print(f"[bold yellow]{rpc_url}[/bold yellow]: {error}", highlight=False)


@requests_app.command("show")
def requests_show(
    ctx: typer.Context,
    queue_id: Annotated[str, typer.Argument(help="The request's queueId (a UUID).")],
    as_json: JsonOption = False,
) -> None:
    """One request as the API shows it, plus its batch and tries."""
    with connection(ctx) as conn:
        data = reports.request(conn, queue_id)
    if as_json:
        render.emit_json(data)
        return
    batch = data.pop("batch", None) or {}
    render.fields(f"request {queue_id}", data | {f"batch.{k}": v for k, v in batch.items() if k != "id"})


@requests_app.command("retry-failed")
def requests_retry_failed(
    ctx: typer.Context,
    since: Annotated[
        datetime | None, typer.Option(help="Only requests that failed at or after this time (ISO 8601).")
    ] = None,
    reason_like: Annotated[
        str | None,
        typer.Option(help="Only failures whose reason matches this ILIKE pattern, e.g. '%revert%'."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Also requests that failed because supply was exhausted.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be retried; change nothing.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Put failed requests back at the end of the line, safely, in one transaction.

    The count is shown first. Never a paid request (it is listed for refund); never one that
    failed because supply was exhausted, unless --force."""

    declined = False

    def confirm(plan: controls.RetryPlan) -> bool:
        nonlocal declined
        if not as_json:
            render.out.print(f"{plan.count} failed request(s) can be retried.")
        declined = not (
            yes or typer.confirm(f"Put {plan.count} request(s) back in line?", default=False, err=True)
        )
        return not declined

    with connection(ctx) as conn:
        plan, requeued = controls.retry_failed(
            conn, since=since, reason_like=reason_like, force=force, dry_run=dry_run, confirm=confirm
        )
    if declined:
        render.refused("nothing was retried")
        raise typer.Exit(1)
    rows = [
        {
            "id": str(r["id"]),
            "payer_address": r["payer_address"],
            "reason": r["error_message"],
            "failed_at": str(r["processed_at"]),
        }
        for r in plan.requests
    ]
    if as_json:
        render.emit_json({"matched": plan.count, "requeued": requeued, "dry_run": dry_run, "requests": rows})
        return
    if dry_run:
        render.out.print(f"{plan.count} failed request(s) can be retried (dry run: nothing changed).")
    render.table("retryable failed requests", rows[:50])
    if not dry_run:
        render.out.print(f"requeued {requeued} request(s)")


@batches_app.command("show")
def batches_show(
    ctx: typer.Context,
    batch_id: Annotated[str | None, typer.Argument(help="The batch id (a UUID).")] = None,
    nonce: Annotated[int | None, typer.Option(help="Find the batch by its nonce instead.")] = None,
    signer: Annotated[str | None, typer.Option(help="With --nonce: only this signer's batch.")] = None,
    as_json: JsonOption = False,
) -> None:
    """One batch with every signed attempt (fees, hashes, status)."""
    with connection(ctx) as conn:
        found = reports.batch(conn, batch_id=batch_id, nonce=nonce, signer=signer)
    if as_json:
        render.emit_json(found)
        return
    for batch in found:
        attempts = batch.pop("attempts")
        render.fields(f"batch {batch['id']}", batch)
        render.table("attempts", attempts)


BatchStatus = enum.StrEnum("BatchStatus", {s: s for s in reports.BATCH_STATUSES})  # type: ignore[misc]


class RefundFormat(enum.StrEnum):
    TABLE = "table"
    CSV = "csv"


@batches_app.command("list")
def batches_list(
    ctx: typer.Context,
    status: Annotated[BatchStatus | None, typer.Option(help="Only batches in this state.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    as_json: JsonOption = False,
) -> None:
    """The newest batches."""
    with connection(ctx) as conn:
        rows = reports.batches(conn, status=status.value if status else None, limit=limit)
    if as_json:
        render.emit_json(rows)
        return
    render.table(
        "batches",
        rows,
        ["id", "nonce", "status", "mint_count", "gas_used", "confirmed_at", "error_message"],
    )


@refunds_app.command("list")
def refunds_list(
    ctx: typer.Context,
    output_format: Annotated[
        RefundFormat, typer.Option("--format", help="How to print them.")
    ] = RefundFormat.TABLE,
    as_json: JsonOption = False,
) -> None:
    """Paid requests that will never be minted: payer, amount, payment transaction, reason."""
    with connection(ctx) as conn:
        rows = reports.refunds(conn)
    if as_json:
        render.emit_json(rows)
    elif output_format is RefundFormat.CSV:
        columns = [
            "payment_id",
            "queue_id",
            "payer_address",
            "amount",
            "asset",
            "network",
            "settlement_tx_hash",
            "reason",
            "failed_at",
        ]
        writer = csv.DictWriter(sys.stdout, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    else:
        render.table(
            "refunds due",
            rows,
            ["payer_address", "amount", "asset", "settlement_tx_hash", "reason", "failed_at"],
        )
