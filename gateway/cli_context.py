"""What every `scimgate` command shares: the settings and database of the invocation, error
handling that turns domain errors into one-line messages, and table / JSON output.

Area modules (connectors.ldap.cli, gateway.admin.cli, gateway.provisioning.cli) import from here,
not from gateway.cli, which imports them to register their commands.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import click

from gateway.config import Config, ConfigError
from gateway.errors import GatewayError
from gateway.store import Database, SchemaState
from gateway.tables import table_lines


class CliContext:
    def __init__(self) -> None:
        self._config: Config | None = None
        self._db: Database | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = Config.from_env()
        return self._config

    @property
    def db(self) -> Database:
        if self._db is None:
            c = self.config
            self._db = Database(
                c.database_url,
                pool_size=c.db_pool_size,
                statement_timeout_ms=c.db_statement_timeout_ms,
            )
        return self._db

    def current_db(self) -> Database:
        """The database, refusing to go on unless its schema is current. A database without
        any table (a fresh install) gets its schema on first use, as `serve` does; one at an
        older revision is migrated only when the operator says so (`scimgate db upgrade`),
        since a migration may want a backup first."""
        state = self.db.schema_state()
        if state is SchemaState.EMPTY:
            state = self._create_schema()
        if state is SchemaState.CURRENT:
            return self.db
        raise click.ClickException(schema_message(state))

    def _create_schema(self) -> SchemaState:
        try:
            self.db.upgrade()
        except Exception:
            # Another command (or serve) created it at the same moment: theirs will do.
            if self.db.schema_state() is not SchemaState.CURRENT:
                raise
        click.echo("note: the database was empty: created the scimgate schema in it", err=True)
        return self.db.schema_state()


def schema_message(state: SchemaState) -> str:
    if state is SchemaState.EMPTY:
        return "the database has no scimgate schema yet: run `scimgate db upgrade` first"
    if state is SchemaState.OUTDATED:
        return (
            "the database schema is out of date: run `scimgate db upgrade` "
            "(or start with `scimgate serve --upgrade`)"
        )
    return (
        "the database schema has a revision this version of scimgate does not know: "
        "is a newer scimgate using this database?"
    )


pass_ctx = click.make_pass_decorator(CliContext, ensure=True)


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Domain and configuration errors become one-line messages, never tracebacks."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (GatewayError, ConfigError) as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def print_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    for line in table_lines(headers, rows):
        click.echo(line)


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def limit_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`--limit N` and `--all`: how many of each kind of change a command lists; the command
    gets `limit` (None: all). JSON output is never cut."""

    @click.option(
        "--limit",
        "limit",
        type=click.IntRange(min=0),
        default=20,
        show_default=True,
        help="Changes listed per kind.",
    )
    @click.option("--all", "show_all", is_flag=True, help="List every change.")
    @functools.wraps(fn)
    def wrapper(*args: Any, limit: int, show_all: bool, **kwargs: Any) -> Any:
        return fn(*args, limit=None if show_all else limit, **kwargs)

    return wrapper
