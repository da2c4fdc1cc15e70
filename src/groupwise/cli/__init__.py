"""The ``groupwise`` command. Thin typer wrappers: the library raises one GroupwiseError with an
actionable sentence; only this layer prints it (one line, on stderr) and exits 2.

One module a group of commands, in the order ``--help`` lists them: ``_launch`` (launch),
``_read`` (status, studies, best, export, compare, report), ``_serve`` (dashboard, serve,
hash-token, run-job), ``_check`` (validate, demo, version); ``_common`` holds what they share.
Each command imports what it needs when it runs: `groupwise --help` and `validate` must not
pay for Ray (or, for --help, torch and Optuna). tests/test_architecture.py checks it.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Annotated

import typer

from groupwise.cli._common import app, render, user_errors
from groupwise.errors import GroupwiseError, one_line

for _group in ("_launch", "_read", "_serve", "_check"):  # each registers its commands, in order
    importlib.import_module(f"{__name__}.{_group}")

__all__ = ["app", "main", "render", "user_errors"]


def _print_version(value: bool) -> None:
    if value:
        from groupwise import __version__  # the package only: no torch for this

        typer.echo(f"groupwise {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the groupwise version and exit (`groupwise version` adds torch's).",
        ),
    ] = False,
) -> None:
    """Search how a PyTorch model's parameters are split into optimizer groups."""


def main() -> None:
    """Console entry point: usage errors too become one line and exit 2."""
    # "module:function" tasks may live in the directory we run from, but it goes last: a stray
    # sklearn.py there must not replace an installed package.
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    command = typer.main.get_command(app)
    try:
        code = command.main(args=sys.argv[1:], prog_name="groupwise", standalone_mode=False)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except GroupwiseError as e:  # raised outside a command's user_errors()
        typer.echo(f"error: {one_line(e)}", err=True)
        sys.exit(2)
    except Exception as e:
        # click's usage errors (typer vendors its own click, so match the interface, not a class)
        if type(e).__name__ == "NoArgsIsHelpError":  # typer has printed the help already
            sys.exit(2)
        if callable(getattr(e, "format_message", None)) and hasattr(e, "exit_code"):
            message = e.format_message()  # type: ignore[attr-defined]
            typer.echo(f"error: {one_line(message)}", err=True)
            sys.exit(2)
        raise
    sys.exit(code if isinstance(code, int) else 0)
