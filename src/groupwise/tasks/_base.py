"""The Task record and the task registry: name or "package.module:function" -> Task."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from torch.nn.parameter import is_lazy

from groupwise.errors import TaskError, UnknownNameError
from groupwise.registry import Registry, accepted_options, check_options

__all__ = ["Batches", "Task", "TaskFactory", "available_tasks", "register_task", "resolve_task"]


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
        raise TaskError(f"task {ref!r} failed to build: {type(e).__name__}: {e}") from e
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
            raise TaskError(f"{unknown}, or a 'package.module:function' reference") from None
    module_name, _, attr = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise TaskError(
            f"task {ref!r}: cannot import module {module_name!r} ({e}); is it installed or on "
            "PYTHONPATH?"
        ) from e
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise TaskError(f"task {ref!r}: module {module_name!r} has no function {attr!r}")
    return factory  # type: ignore[no-any-return]


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
