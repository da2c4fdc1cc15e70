"""The Task record and the task registry: name or "package.module:function" -> Task."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from torch.nn.parameter import is_lazy

from groupwise.errors import TaskError, UnknownNameError
from groupwise.registry import Registry, accepted_options, check_options

__all__ = [
    "Batches",
    "Task",
    "TaskFactory",
    "available_tasks",
    "parametrization_of",
    "raised_at",
    "reference",
    "register_task",
    "resolve_task",
    "user_frame",
]


class Batches(Protocol):
    """A data split that yields (inputs, targets) batches."""

    def train_batches(
        self, generator: torch.Generator, batch_size: int, steps: int | None
    ) -> Iterator[tuple[Tensor, Tensor]]: ...

    def eval_batches(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]: ...


@dataclass(frozen=True)
class Task:
    """Everything a trial needs besides its TrialConfig.

    Attributes:
        name: the registry name or ``module:function`` it came from.
        build_model: makes a fresh model; called under a seeded RNG, so it must use torch's
            global RNG for initialisation (every ``nn`` layer does).
        data: the train and validation splits (fixed when the task is made).
        loss: ``loss(outputs, targets)`` -> scalar tensor, used for training and ``val_loss``.
        metrics: extra validation metrics, name -> ``metric(outputs, targets)`` -> float;
            averaged over validation batches and reported as ``val_<name>``.
        description: one line for listings.
    """

    name: str
    build_model: Callable[[], nn.Module]
    data: Batches
    loss: Callable[[Tensor, Tensor], Tensor]
    metrics: Mapping[str, Callable[[Tensor, Tensor], float]] = field(default_factory=dict)
    description: str = ""

    @property
    def metric_names(self) -> tuple[str, ...]:
        return ("val_loss", *(f"val_{m}" for m in self.metrics))

    def make_model(self) -> nn.Module:
        """``build_model()``, with its lazy modules (``nn.LazyLinear``, ``nn.LazyConv2d`` ...)
        materialized, as torch asks before an optimizer is built: one forward pass on two
        validation samples, in eval mode (no batch statistics move) and without gradients."""
        model = self.build_model()
        if not _lazy(model):
            return model
        training = model.training
        inputs, _ = next(iter(self.data.eval_batches(2)))
        model.eval()
        with torch.no_grad():
            model(inputs)
        model.train(training)
        still = _lazy(model)
        if still:
            raise TaskError(
                f"task {self.name!r}: the model still has uninitialized lazy parameters after "
                f"a forward pass on a validation batch: {still[:3]}"
            )
        return model


def _lazy(model: nn.Module) -> list[str]:
    """Names of the model's parameters and buffers that a lazy module has not yet made."""
    tensors = [*model.named_parameters(), *model.named_buffers()]
    return [name for name, t in tensors if is_lazy(t)]


# A factory takes keyword ``seed`` and its own options: ``f(*, seed=0, **options) -> Task``.
TaskFactory = Callable[..., Task]


TASKS: Registry[TaskFactory] = Registry("task")


PARAMETRIZATIONS = ("standard", "mup")


def parametrization_of(parametrization: str, width: int, base_width: int, heads: int = 1) -> bool:
    """Whether a width-scalable task's options ask for μP; TaskError for a value that is not
    a parametrization, a width or base width that is not a positive multiple of ``heads``."""
    if parametrization not in PARAMETRIZATIONS:
        raise TaskError(
            f"task option parametrization: {parametrization!r} is not one of "
            f"{', '.join(PARAMETRIZATIONS)}"
        )
    for key, value in (("width", width), ("base_width", base_width)):
        if isinstance(value, bool) or not isinstance(value, int) or value < heads or value % heads:
            raise TaskError(
                f"task option {key}: must be a positive integer"
                + (f" divisible by heads ({heads})" if heads > 1 else "")
                + f"; got {value!r}"
            )
    return parametrization == "mup"


def register_task(name: str) -> Callable[[TaskFactory], TaskFactory]:
    """Decorator: make a factory ``f(*, seed=0, **options) -> Task`` available by name."""

    def add(factory: TaskFactory) -> TaskFactory:
        return TASKS.add(name, factory)

    return add


def available_tasks() -> list[str]:
    return TASKS.names()


def resolve_task(ref: str, options: Mapping[str, Any] | None = None, *, seed: int = 0) -> Task:
    """Build a task from a registry name or a ``package.module:function`` reference."""
    factory = _factory(ref)
    check_options("task", ref, options or {}, _option_names(factory), TaskError)
    try:
        task = factory(seed=seed, **dict(options or {}))
    except TaskError:
        raise
    except Exception as e:
        raise TaskError(f"task {ref!r} failed to build: {raised_at(e)}") from e
    if not isinstance(task, Task):
        raise TaskError(
            f"task {ref!r} returned {type(task).__name__}; a task function must return "
            "groupwise.tasks.Task"
        )
    return task


def _factory(ref: str) -> TaskFactory:
    if ":" not in ref:
        try:
            return TASKS.get(ref)
        except UnknownNameError as unknown:
            raise TaskError(
                f"{unknown}, or a 'package.module:function' or 'path/to/file.py:function' reference"
            ) from None
    return reference(ref)


def reference(ref: str, what: str = "task") -> Callable[..., Any]:
    """The callable a ``module:function`` or ``file.py:function`` reference names."""
    module_name, _, attr = ref.rpartition(":")
    module = _module(ref, module_name, what)
    found = getattr(module, attr, None)
    if not callable(found):
        raise TaskError(f"{what} {ref!r}: module {module_name!r} has no function {attr!r}")
    return found  # type: ignore[no-any-return]


FORMS = (
    "'package.module:function' (a module Python can import; the launch directory is on the "
    "path) or 'path/to/file.py:function'"
)


def _module(ref: str, name: str, what: str = "task") -> ModuleType:
    """The module a task reference names: by import name, or by its file's path."""
    if not name or (name.startswith(".") and not name.endswith(".py")):
        named = "no module" if not name else f"a relative module {name!r}"
        raise TaskError(f"{what} {ref!r} names {named}; write it as {FORMS}")
    if name.endswith(".py") or "/" in name or os.sep in name:
        return _from_file(ref, name, what)
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise TaskError(
            f"{what} {ref!r}: cannot import module {name!r} ({e}); is it installed or on "
            "PYTHONPATH?"
        ) from e
    except Exception as e:  # the module itself failed: its error, where it happened
        raise TaskError(f"{what} {ref!r}: importing {name!r} failed: {raised_at(e)}") from e


def _from_file(ref: str, name: str, what: str) -> ModuleType:
    """A task module given as a file: relative to the launch directory (a worker is told it
    in GROUPWISE_TASK_PATH), loaded once per process under a name of its own."""
    base = Path(os.environ.get("GROUPWISE_TASK_PATH") or os.getcwd())
    path = (base / name).resolve()
    if path.suffix != ".py" or not path.is_file():
        raise TaskError(
            f"{what} {ref!r}: no Python file {name!r} (looked at {path}); write it as {FORMS}"
        )
    module_name = f"groupwise_task_{path.stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise TaskError(f"{what} {ref!r}: cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[module_name]
        raise TaskError(f"{what} {ref!r}: importing {path} failed: {raised_at(e)}") from e
    return module


def user_frame(error: BaseException) -> traceback.FrameSummary | None:
    """The last frame of ``error``'s traceback outside groupwise: the user's line that raised
    (or that called ours, when ours raised), not ours."""
    frames = traceback.extract_tb(error.__traceback__)
    theirs = [f for f in frames if "groupwise" not in Path(f.filename).parts]
    return theirs[-1] if theirs else None


def raised_at(error: BaseException) -> str:
    """``Kind: message (file:line)``: the user's line that raised, not ours."""
    frame = user_frame(error)
    at = f" ({frame.filename}:{frame.lineno})" if frame else ""
    if isinstance(error, SyntaxError) and error.filename:
        at = f" ({error.filename}:{error.lineno})"
    return f"{type(error).__name__}: {error}{at}"


def _option_names(factory: TaskFactory) -> list[str] | None:
    """The options a task function takes besides ``seed`` (None: any, it takes ``**``)."""
    try:
        accepted = accepted_options(factory)
    except (TypeError, ValueError):  # a builtin or a class without a readable signature
        raise TaskError(
            f"{getattr(factory, '__qualname__', factory)!r} is not a task function: a task is "
            "def my_task(*, seed=0, **options) -> groupwise.tasks.Task"
        ) from None
    if accepted is not None and "seed" not in accepted:
        raise TaskError(
            f"task function {getattr(factory, '__name__', factory)!r} must take a keyword "
            "argument 'seed' (def my_task(*, seed=0, **options) -> Task)"
        )
    return None if accepted is None else [p for p in accepted if p != "seed"]
