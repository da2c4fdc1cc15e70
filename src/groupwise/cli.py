"""The ``groupwise`` command. Thin typer wrappers: the library raises, only this layer prints
the one-line error and sets the exit code."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from groupwise.errors import GroupwiseError

app = typer.Typer(
    name="groupwise",
    help="Search how a PyTorch model's parameters are split into optimizer groups.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.command()
def demo(
    steps: Annotated[int, typer.Option(min=1, help="Training steps to run.")] = 60,
) -> None:
    """Partition a small character LM every way and train it with a mixed optimizer."""
    from groupwise import _demo

    losses = _demo.run(steps=steps, echo=typer.echo)
    typer.echo(f"\nloss {losses[0]:.3f} -> {losses[-1]:.3f} in {steps} steps")


@app.command()
def version() -> None:
    """Print the groupwise and torch versions."""
    import torch

    from groupwise import __version__

    typer.echo(f"groupwise {__version__} (torch {torch.__version__})")


def main() -> None:
    try:
        app()
    except GroupwiseError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
