"""The ``mintq`` command's Typer apps and what every command shares: the database and ``--json``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

import typer

from mintq import credentials, db

app = typer.Typer(
    name="mintq",
    help="Operate a mintq deployment: migrations, queue stats, settings, requests, batches, "
    "pause and resume, refunds, retention and signer addresses.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
settings_app = typer.Typer(
    help="Read and change runtime settings (validated as the worker reads them).", no_args_is_help=True
)
requests_app = typer.Typer(
    help="Look at one request, or put failed requests back in line safely.", no_args_is_help=True
)
batches_app = typer.Typer(
    help="Look at batches: one by id or nonce, or the newest ones.", no_args_is_help=True
)
refunds_app = typer.Typer(help="Paid requests that will never be minted.", no_args_is_help=True)
signer_app = typer.Typer(help="The worker's signer(s).", no_args_is_help=True)
app.add_typer(settings_app, name="settings")
app.add_typer(requests_app, name="requests")
app.add_typer(batches_app, name="batches")
app.add_typer(refunds_app, name="refunds")
app.add_typer(signer_app, name="signer")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]


@dataclass
class Target:
    """Where the command works: the database, given or found in the environment."""

    database_url: str | None = None

    def url(self) -> str:
        """--database-url (or MINTQ_DATABASE_URL), else the API's database as
        ``mintq.credentials`` finds it (MINTQ_DATABASE_SECRET_ARN's secret).

        Raises ``typer.BadParameter`` (usage, exit 2) when none is given, ``ConfigurationError``
        (refused, exit 1) when the secret cannot be read."""
        if self.database_url:
            return self.database_url
        if not credentials.database_configured():
            raise typer.BadParameter(
                f"no database given: pass --database-url, or set {credentials.DATABASE_URL_VARIABLE} or"
                f" {credentials.DATABASE_SECRET_VARIABLE} (the local stack's is `database_url` in"
                " .local/stack.json)",
                param_hint="--database-url",
            )
        return credentials.database_url()


@app.callback()
def root(
    ctx: typer.Context,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            envvar=credentials.DATABASE_URL_VARIABLE,
            show_envvar=True,
            help=f"PostgreSQL conninfo. Without it, {credentials.DATABASE_SECRET_VARIABLE} names an RDS-style"
            " secret.",
        ),
    ] = None,
) -> None:
    """Operate a mintq deployment."""
    ctx.obj = Target(database_url=database_url)


@contextlib.contextmanager
def connection(ctx: typer.Context) -> Iterator[db.Conn]:
    """An autocommit connection to the target database, closed afterwards."""
    target: Target = ctx.find_object(Target) or Target()
    conn = db.connect(target.url(), application_name="mintq-cli")
    try:
        yield conn
    finally:
        conn.close()
