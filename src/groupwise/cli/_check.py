"""The commands that check and show without a study database: ``validate``, ``demo`` and
``version``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from groupwise.cli._common import app, out, user_errors, warn

__all__ = ["demo", "validate", "version"]


@app.command()
def validate(
    files: Annotated[
        list[Path], typer.Argument(metavar="FILE", help="Study or search-space YAML files.")
    ],
) -> None:
    """Check study and search-space files. Trains nothing, but a study's task is code: it is
    imported and its model built, to check it and partition it."""
    from groupwise.plan import make_plan
    from groupwise.studyfiles import StudySpec, validate_file

    with user_errors():
        for path in files:
            loaded = validate_file(path)
            if isinstance(loaded, StudySpec):
                warnings = make_plan(loaded).warnings  # task, metric, partitions, sampler...
                warn(warnings)
                schemes = len(loaded.space.schemes)
                kind = f"study {loaded.name!r} (task {loaded.task.name}, {schemes} schemes)"
                kind += f"; {len(warnings)} warning(s) above" if warnings else ""
            else:
                counts = f"{len(loaded.schemes)} schemes, {len(loaded.optimizers)} optimizers"
                kind = f"search space ({counts})"
            out.print(f"{path}: ok: {kind}")


@app.command()
def demo(
    steps: Annotated[int, typer.Option(min=1, metavar="N", help="Training steps to run.")] = 60,
) -> None:
    """Partition a small character LM every way and train it with a mixed optimizer."""
    from groupwise import _demo

    losses = _demo.run(steps=steps, echo=typer.echo)
    typer.echo(f"\nloss {losses[0]:.3f} -> {losses[-1]:.3f} in {steps} steps")


@app.command()
def version() -> None:
    """Print the groupwise and torch versions."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    from groupwise import __version__

    try:
        torch = installed("torch")  # its metadata: importing torch would take seconds
    except PackageNotFoundError:
        torch = "not installed"
    typer.echo(f"groupwise {__version__} (torch {torch})")
