"""A study's config carried to its task at other options (``export --to-task``): the proxy
is the task the study searched, the target that task (or another) at the options given."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from groupwise.config import TrialConfig
from groupwise.errors import GroupwiseError, TaskError
from groupwise.tasks import raised_at, resolve_function, resolve_task
from groupwise.training import probe_model
from groupwise.transfer._transfer import Transferred, plan_transfer

__all__ = ["carried", "named", "target_task", "task_model", "transfer_to_task"]


def target_task(
    proxy: Mapping[str, Any], name: str | None, options: Mapping[str, Any]
) -> dict[str, Any]:
    """The target: the proxy's task with ``options`` over its own, or the task ``name`` with
    ``options`` alone (another task shares none of the proxy's options)."""
    same = name is None or name == proxy["name"]
    base = dict(proxy.get("options", {})) if same else {}
    return {
        "name": proxy["name"] if same else name,
        "options": {**base, **options},
        "train": proxy.get("train") if same else None,
        "data_seed": proxy.get("data_seed", 0),
    }


def task_model(task: Mapping[str, Any]) -> nn.Module:
    """The model a task trains (a function task's: its function run up to ``trial.build``).
    Only its names and shapes matter here, so a task's model is built on the meta device (no
    memory, however wide), or on the CPU where that fails (a lazy module's first forward)."""
    ref, options = str(task["name"]), dict(task.get("options", {}))
    try:
        if task.get("train"):
            return probe_model(resolve_function(ref), options, ref, None)
        built = resolve_task(ref, options, seed=int(task.get("data_seed", 0)))
        try:
            with torch.device("meta"):
                return built.make_model()
        except Exception:
            return built.make_model()
    except GroupwiseError:
        raise  # it names the task
    except Exception as e:
        raise TaskError(f"{named(task)}: building the model failed: {raised_at(e)}") from e


def transfer_to_task(
    config: TrialConfig,
    proxy: Mapping[str, Any],
    to_task: str | None = None,
    options: Mapping[str, Any] | None = None,
    rule: str = "sp-per-layer",
) -> tuple[Transferred, dict[str, Any]]:
    """``config``, searched on ``proxy``'s model (a task as a study records it: ``name``,
    ``options``, ``train`` for a function task), carried to the model of ``to_task`` (default:
    the proxy's task) at ``options``; with the target task it was carried to."""
    target = target_task(proxy, to_task, options or {})
    done = plan_transfer(config, task_model(proxy), task_model(target), rule)
    return done, target


def carried(study: str, trial: int, target: Mapping[str, Any], rule: str) -> str:
    """The line an exported transferred config starts with."""
    return f"trial {trial} of {study!r} carried to {named(target)} by {rule}"


def named(task: Mapping[str, Any]) -> str:
    """A task and its options as a line names them: ``tabular_mlp {width: 512}``."""
    options = ", ".join(f"{k}: {v}" for k, v in task.get("options", {}).items())
    return f"{task['name']} {{{options}}}"
