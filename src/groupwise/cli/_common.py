"""What every command shares: the typer app, the options several commands take, the console,
and the one rule for errors (a GroupwiseError is one line on stderr and exit code 2)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from groupwise.errors import GroupwiseError, one_line

if TYPE_CHECKING:
    from groupwise.analysis import Table

__all__ = [
    "Format",
    "HostOption",
    "PortOption",
    "ServerOption",
    "StorageOption",
    "app",
    "out",
    "render",
    "user_errors",
    "warn",
]

app = typer.Typer(
    name="groupwise",
    help="Search how a PyTorch model's parameters are split into optimizer groups.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Plain help: rich markup would swallow "[default: ...]" and print types as metavars.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
# Piped output (CI logs, `| less`) gets room for whole names instead of rich's 80 columns.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)

StorageOption = Annotated[
    str | None,
    typer.Option(
        "--storage",
        envvar="GROUPWISE_STORAGE",
        metavar="URL",
        help="Database URL [default: sqlite:///groupwise.db].",
        show_default=False,
    ),
]
ServerOption = Annotated[
    str | None,
    typer.Option(
        "--server",
        envvar="GROUPWISE_SERVER",
        metavar="URL",
        help="Ask a `groupwise serve` instead of the database (token: GROUPWISE_API_TOKEN).",
        show_default=False,
    ),
]
HostOption = Annotated[
    str, typer.Option(metavar="HOST", help="Address to bind; loopback unless told.")
]
PortOption = Annotated[
    int, typer.Option(min=1, max=65535, metavar="PORT", help="Port to listen on.")
]


class Format(StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


def warn(lines: tuple[str, ...]) -> None:
    for line in lines:
        typer.echo(f"warning: {line}", err=True)


def render(table: Table) -> None:
    """A table as ``groupwise.analysis`` defines it, drawn with rich."""
    from rich.table import Table as RichTable

    drawn = RichTable(*table.columns)
    for row in table.rows:
        drawn.add_row(*row)
    out.print(drawn)


@contextmanager
def user_errors() -> Iterator[None]:
    """A GroupwiseError becomes one line on stderr and exit code 2, never a traceback."""
    try:
        yield
    except GroupwiseError as e:
        typer.echo(f"error: {one_line(e)}", err=True)
        raise typer.Exit(2) from None
