"""The commands that check and show without a study database: ``validate``, ``partition``,
``demo`` and ``version``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from groupwise.cli._common import StorageOption, app, out, user_errors, warn

if TYPE_CHECKING:
    from groupwise.transfer import CoordCheck

__all__ = ["coord_check", "demo", "partition", "transfer_check", "validate", "version"]


@app.command()
def validate(
    files: Annotated[
        list[Path], typer.Argument(metavar="FILE", help="Study or search-space YAML files.")
    ],
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="A function task (task: {train: ...}): run it here up to its first report "
            "and check it reports the study's metric.",
        ),
    ] = False,
) -> None:
    """Check study and search-space files. Trains nothing, but a study's task is code: it is
    imported and its model built (a function task: run up to trial.build), to check it and
    partition it."""
    from groupwise.plan import dry_run as run_to_report
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
                reported = run_to_report(loaded) if dry_run else {}
                if reported:
                    shown = ", ".join(f"{k} {v:.4g}" for k, v in reported.items())
                    kind += f"; its first report: {shown}"
            else:
                counts = f"{len(loaded.schemes)} schemes, {len(loaded.optimizers)} optimizers"
                kind = f"search space ({counts})"
            out.print(f"{path}: ok: {kind}")


@app.command()
def partition(
    task: Annotated[
        str,
        typer.Argument(
            metavar="TASK",
            help="A task (a built-in name, package.module:function or file.py:function), or "
            "a study file: its task and its space's schemes.",
        ),
    ],
    scheme: Annotated[
        list[str] | None,
        typer.Option(
            "--scheme",
            metavar="SCHEME",
            help="A scheme, e.g. role or '{name: depth, blocks: 3}' (repeatable) [default: "
            "every built-in scheme; for a study file, its space's].",
        ),
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option", metavar="KEY=VALUE", help="A task option (repeatable), e.g. hidden=32."
        ),
    ] = None,
    names: Annotated[
        bool, typer.Option("--names/--no-names", help="List each group's tensors by name.")
    ] = True,
) -> None:
    """How each scheme splits a task's model: each group's tensors, their shapes and sizes.
    Trains nothing; the task's model is built (its code runs)."""
    from groupwise.plan import show_partitions
    from groupwise.registry import key_values

    with user_errors():
        options = key_values(option or [], "--option")
        shown = show_partitions(task, scheme or [], options, names=names)
    out.print("\n\n".join(shown), markup=False)


@app.command("coord-check")
def coord_check(
    task: Annotated[str, typer.Argument(metavar="TASK", help="A task with a width option.")],
    widths: Annotated[
        list[int], typer.Argument(metavar="WIDTHS...", help="Widths to check, increasing.")
    ],
    _marker: Annotated[
        bool,
        typer.Option("--widths", help="Says that the numbers are widths: --widths 64 128 256 512."),
    ] = False,
    option: Annotated[
        list[str] | None,
        typer.Option("--option", metavar="KEY=VALUE", help="A task option (repeatable)."),
    ] = None,
    width_option: Annotated[
        str, typer.Option(metavar="NAME", help="The task option that sets the width.")
    ] = "width",
    config: Annotated[
        Path | None,
        typer.Option(metavar="PATH", help="A config for the narrowest width [AdamW, lr 1e-2]."),
    ] = None,
    rule: Annotated[
        str, typer.Option(metavar="RULE", help="How lrs follow width: sp-per-layer, mup, none.")
    ] = "sp-per-layer",
    steps: Annotated[int, typer.Option(min=1, metavar="N", help="Training steps.")] = 4,
    output: Annotated[
        Path, typer.Option("-o", "--output", metavar="PATH", help="The plot (.png/.svg/.pdf).")
    ] = Path("coord_check.png"),
) -> None:
    """Train TASK a few steps at each width, each width's lrs carried from the narrowest by
    --rule, and plot each layer's output scale against width: flat when a config searched
    narrow will transfer, growing when it will not."""
    from groupwise.config import TrialConfig
    from groupwise.registry import key_values
    from groupwise.transfer import coord_check as check
    from groupwise.transfer import plot_coord_check

    with user_errors():
        options = key_values(option or [], "--option")
        start = None if config is None else TrialConfig.load(config)
        done = check(
            task,
            widths,
            options=options,
            width_option=width_option,
            config=start,
            rule=rule,
            steps=steps,
        )
        path = plot_coord_check(done, output)
    _print_coord(done, path)


def _print_coord(done: CoordCheck, path: Path) -> None:
    """Each layer's scale at each width after the last step, its growth, and the verdict."""
    head = "  ".join(f"{w:>8}" for w in done.widths)
    out.print(f"{'layer':<28}{head}   growth", markup=False)
    for layer in done.layers:
        cells = "  ".join(f"{x:8.3g}" for x in done.scales[layer][done.steps])
        out.print(f"{layer[:27]:<28}{cells}  {done.growth(layer):6.2f}x", markup=False)
    layer, growth = done.worst
    verdict = "flat: a config should transfer" if done.flat else "grows: transfer will not hold"
    out.print(f"{verdict} (largest growth {growth:.2f}x at {layer}); wrote {path}", markup=False)


@app.command("transfer-check")
def transfer_check(
    studies: Annotated[
        list[str],
        typer.Argument(
            metavar="STUDY...",
            help="Studies with a transfer target; several: carried to one target, the best named.",
        ),
    ],
    seeds: Annotated[
        int, typer.Option(min=1, max=100, metavar="N", help="Fresh training seeds.")
    ] = 1,
    device: Annotated[str, typer.Option(metavar="DEVICE", help="cpu, cuda, cuda:1 ...")] = "cpu",
    storage: StorageOption = None,
) -> None:
    """Train each study's best config, carried to its transfer target, on the target as the
    study trained its trials (on N fresh seeds), and record what it scored with the study.
    Several studies (searches of one proxy in other spaces, carried to one width): the one
    whose config scored best there is named, the one to carry on to the wide model."""
    from groupwise.analysis import study_transfer
    from groupwise.store import fresh_seeds, record_transfer_check
    from groupwise.transfer import TransferCheck, best_checked, check_transfer, named, one_target

    checks: dict[str, TransferCheck] = {}
    with user_errors():
        facts = {name: study_transfer(name, storage) for name in dict.fromkeys(studies)}
        one_target(facts)  # before any training: a refusal leaves no record half-written
        for name, fact in facts.items():
            done = check_transfer(
                fact["transfer"],
                fact["training"],
                fact["objective"],
                fresh_seeds(fact["seed"], seeds),
                data_seed=fact["data_seed"],
                device=device,
            )
            record_transfer_check(name, storage, done.to_dict())
            target = named(fact["transfer"]["target"])
            out.print(f"{name} at {target}: {done.summary()}", markup=False)
            checks[name] = done
    if len(checks) > 1:  # one target and one objective: one_target said so
        first = next(iter(facts.values()))
        target = named(first["transfer"]["target"])
        best = best_checked(checks, first["objective"])
        said = (
            f"best at {target}: {best}; carry it on with `groupwise export {best} --to-task ...`"
            if best
            else f"every study's config diverged at {target}"
        )
        out.print(said, markup=False)


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
