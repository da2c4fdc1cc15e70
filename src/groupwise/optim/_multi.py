"""MultiOptimizer: several torch optimizers behind one ``torch.optim.Optimizer``.

Rules it keeps, and why:

- One inner torch optimizer per optimizer kind, one param group per label, never one per
  parameter: torch's foreach/fused kernels batch over all tensors of an optimizer, so the
  step costs what a hand-built optimizer costs.
- ``param_groups`` holds the inner optimizers' own group dicts (in label order). Changing
  ``group["lr"]`` changes what the inner optimizer uses, which is all torch's LR schedulers
  and ``torch.amp.GradScaler`` need.
- One ``step()`` steps every inner optimizer once, after one backward. The seeds' bugs (a
  backward per optimizer, zero_grad between optimizers) cannot be written against it.
- ``state_dict()`` is keyed by parameter name and carries a fingerprint of the partition, so
  a checkpoint survives a rebuilt model and is refused by a different partition.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from typing import Any

import torch
from torch import Tensor

from groupwise.config import TrialConfig
from groupwise.errors import CheckpointMismatchError, ConfigError, format_names
from groupwise.optim._checks import GroupPlan, check_group
from groupwise.optim._registry import OptimizerInfo, get_optimizer
from groupwise.partition import GroupSummary, PartitionSummary

__all__ = ["GroupPlan", "MultiOptimizer", "partition_fingerprint"]

STATE_FORMAT = "groupwise.MultiOptimizer/1"


def partition_fingerprint(partition: Mapping[str, Sequence[str]]) -> str:
    """A short hash of label -> names; equal partitions give equal fingerprints."""
    canonical = json.dumps(sorted((label, sorted(names)) for label, names in partition.items()))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class MultiOptimizer(torch.optim.Optimizer):
    """A ``torch.optim.Optimizer`` that routes each labelled group to its own optimizer kind.

    Build it with :func:`groupwise.build_optimizer`. Attributes:

    - ``param_groups``: the real group dicts of the inner optimizers, in label order; each
      has a ``"label"`` and an ``"optimizer"`` key besides torch's.
    - ``optimizers``: optimizer kind -> inner torch optimizer.
    - ``partition``: label -> parameter names.
    - ``config``: the :class:`~groupwise.TrialConfig` it was built from (None when built
      from plans directly).
    """

    def __init__(
        self,
        plans: Sequence[GroupPlan],
        *,
        names: Mapping[Tensor, str] | None = None,
        config: TrialConfig | None = None,
    ) -> None:
        if not plans:
            raise ConfigError("MultiOptimizer needs at least one group")
        self.config = config
        # Names of every parameter the model has (frozen ones too), for add_param_group.
        # Tensors key these maps as they key torch's own optimizer state: by identity.
        self._ready = False
        self._known_names: dict[Tensor, str] = dict(names or {})
        for plan in plans:
            self._known_names.update(zip(plan.params, plan.names, strict=True))
        self._names: dict[Tensor, str] = {}
        self._owner: dict[Tensor, torch.optim.Optimizer] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        # label order is the plan's (the partition's), whatever the optimizer kinds
        self.partition: dict[str, tuple[str, ...]] = {plan.label: plan.names for plan in plans}
        self._given: dict[str, Mapping[str, Any]] = {}

        by_kind: dict[str, list[GroupPlan]] = {}
        for plan in plans:
            by_kind.setdefault(plan.info.name, []).append(plan)
        for kind, kind_plans in by_kind.items():
            info = kind_plans[0].info
            inner = _construct(info, [_group_dict(p) for p in kind_plans])
            self._adopt(inner, kind_plans)
            self.optimizers[kind] = inner

        all_params = [p for plan in plans for p in plan.params]
        super().__init__(all_params, _common_defaults(self.optimizers.values()))
        self.param_groups = []
        self._sync_param_groups()
        self.state = _StateView(self._owner, self.optimizers)  # type: ignore[assignment]
        self._ready = True

    # -- the optimizer protocol --------------------------------------------------------------
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Evaluate ``closure`` once (if given), then step every inner optimizer once."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for inner in self.optimizers.values():
            inner.step()
        return loss

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a new labelled group, e.g. layers unfrozen part-way through training.

        ``param_group`` needs ``params``, a new ``label`` and an ``optimizer`` kind; other
        keys are that optimizer's hyperparameters.
        """
        if not self._ready:  # torch's own __init__ registering the groups
            super().add_param_group(param_group)
            return
        group = dict(param_group)
        label, kind = group.pop("label", None), group.pop("optimizer", None)
        if not isinstance(label, str) or label in self.partition:
            raise ConfigError(
                f"add_param_group needs a new 'label' (existing: {sorted(self.partition)}); "
                f"got {label!r}"
            )
        info = get_optimizer(str(kind), where=f"add_param_group label {label!r}")
        params = group.pop("params")
        params = [params] if isinstance(params, Tensor) else list(params)
        names: list[str] = []
        for p in params:
            if p in self._names:
                raise ConfigError(
                    f"add_param_group {label!r}: {self._names[p]} is already in group "
                    f"{self._label_of(p)!r}"
                )
            names.append(self._known_names.get(p, f"{label}.{len(names)}"))
        plan = check_group(label, info, names, params, group)
        if info.name in self.optimizers:
            self.optimizers[info.name].add_param_group(_group_dict(plan))
            self._adopt(self.optimizers[info.name], [plan])
        else:
            inner = _construct(info, [_group_dict(plan)])
            self._adopt(inner, [plan])
            self.optimizers[info.name] = inner
            self.defaults = _common_defaults(self.optimizers.values())
        self.param_groups.append(self.optimizers[info.name].param_groups[-1])

    def lrs(self) -> dict[str, float]:
        """Each group's lr now, by label (what a trial records with each epoch)."""
        return {g["label"]: float(g["lr"]) for g in self.param_groups}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for inner in self.optimizers.values():
            inner.zero_grad(set_to_none=set_to_none)

    # -- modes: schedule-free optimizers evaluate other weights than they step ----------------
    def train(self) -> None:
        """Put every inner optimizer that keeps modes (schedule-free) in training mode; call it
        with ``model.train()``, before stepping. Others have no modes: nothing happens."""
        for inner in self._with_modes():
            inner.train()

    def eval(self) -> None:
        """Put every inner optimizer that keeps modes in evaluation mode; call it with
        ``model.eval()``, before evaluating or saving the weights to use."""
        for inner in self._with_modes():
            inner.eval()

    def _with_modes(self) -> list[Any]:
        return [
            inner for inner in self.optimizers.values() if callable(getattr(inner, "eval", None))
        ]

    # -- checkpoints -----------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        return partition_fingerprint(self.partition)

    def state_dict(self) -> dict[str, Any]:
        """State keyed by parameter name, group settings keyed by label, plus the partition.

        Like torch's, the tensors are references to the live state; ``torch.save`` it.
        """
        state: dict[str, Any] = {}
        groups: dict[str, Any] = {}
        for inner in self.optimizers.values():
            inner_sd = inner.state_dict()
            for group in inner_sd["param_groups"]:
                names = self.partition[group["label"]]  # the group's tensors, in order
                for index, name in zip(group["params"], names, strict=True):
                    if index in inner_sd["state"]:
                        state[name] = inner_sd["state"][index]
                groups[group["label"]] = {k: v for k, v in group.items() if k != "params"}
        return {
            "format": STATE_FORMAT,
            "fingerprint": self.fingerprint,
            "partition": {label: list(names) for label, names in self.partition.items()},
            "optimizers": {g["label"]: g["optimizer"] for g in self.param_groups},
            "param_groups": groups,
            "state": state,
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Load a :meth:`state_dict`; refuse one saved for another partition or other kinds."""
        if not isinstance(state_dict, Mapping) or state_dict.get("format") != STATE_FORMAT:
            got = state_dict.get("format") if isinstance(state_dict, Mapping) else type(state_dict)
            raise CheckpointMismatchError(
                f"not a MultiOptimizer state dict (format {got!r}, expected {STATE_FORMAT!r}); "
                "save it with MultiOptimizer.state_dict()"
            )
        self._check_same_partition(state_dict)
        for inner in self.optimizers.values():
            index = 0
            state: dict[int, Any] = {}
            groups = []
            for group in inner.param_groups:
                label = group["label"]
                indices = []
                for name in self.partition[label]:
                    if name in state_dict["state"]:
                        state[index] = state_dict["state"][name]
                    indices.append(index)
                    index += 1
                groups.append({**state_dict["param_groups"][label], "params": indices})
            inner.load_state_dict({"state": state, "param_groups": groups})
        # torch's load_state_dict swaps in new group dicts; point ours at them again, in place,
        # or schedulers would keep writing lrs into dicts no optimizer reads.
        self._sync_param_groups()

    def _check_same_partition(self, saved: Mapping[str, Any]) -> None:
        if saved["fingerprint"] != self.fingerprint:
            raise CheckpointMismatchError(
                f"checkpoint partition {saved['fingerprint']} differs from this optimizer's "
                f"{self.fingerprint}: {_partition_diff(saved['partition'], self.partition)}; "
                "build the optimizer from the config the checkpoint was saved with"
            )
        mine = {g["label"]: g["optimizer"] for g in self.param_groups}
        theirs = dict(saved["optimizers"])
        if mine != theirs:
            diff = [
                f"{k}: {theirs.get(k)} vs {mine.get(k)}" for k in mine if mine[k] != theirs.get(k)
            ]
            raise CheckpointMismatchError(
                f"checkpoint optimizers differ from this optimizer's (checkpoint vs here): "
                f"{'; '.join(diff)}; optimizer state cannot move between kinds"
            )

    # -- reading it ------------------------------------------------------------------------
    def summary(self) -> PartitionSummary:
        """Groups with their tensors, parameter counts, optimizer and current settings."""
        rows = []
        for group in self.param_groups:
            label = group["label"]
            shown = {k: group[k] for k in self._given[label] if k in group}
            shown["lr"] = group["lr"]
            rows.append(
                GroupSummary(
                    label=label,
                    names=self.partition[label],
                    shapes=tuple(tuple(p.shape) for p in group["params"]),
                    params=sum(p.numel() for p in group["params"]),
                    optimizer=group["optimizer"],
                    hyperparameters=shown,
                )
            )
        return PartitionSummary(tuple(rows))

    def __getstate__(self) -> dict[str, Any]:
        # Everything but instance-level wrappers (an LR scheduler patches ``step`` on the
        # instance); torch's own __getstate__ likewise leaves them out.
        return {k: v for k, v in self.__dict__.items() if k != "step"}

    # -- internals -------------------------------------------------------------------------
    def _adopt(self, inner: torch.optim.Optimizer, plans: Sequence[GroupPlan]) -> None:
        for plan in plans:
            self.partition[plan.label] = plan.names
            self._given[plan.label] = dict(plan.hyperparameters)
            for p, name in zip(plan.params, plan.names, strict=True):
                self._names[p] = name
                self._owner[p] = inner

    def _sync_param_groups(self) -> None:
        """Make ``param_groups`` the inner optimizers' own dicts, in partition label order."""
        by_label = {g["label"]: g for inner in self.optimizers.values() for g in inner.param_groups}
        self.param_groups[:] = [by_label[label] for label in self.partition]

    def _label_of(self, p: Tensor) -> str:
        return next(label for label, names in self.partition.items() if self._names[p] in names)


def _group_dict(plan: GroupPlan) -> dict[str, Any]:
    return {
        "params": list(plan.params),
        **plan.hyperparameters,
        "label": plan.label,
        "optimizer": plan.info.name,
    }


def _construct(info: OptimizerInfo, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    try:
        return info.make(groups)
    except (ValueError, TypeError, RuntimeError) as e:
        labels = ", ".join(repr(g["label"]) for g in groups)
        raise ConfigError(
            f"groups {labels}: {info.cls.__name__} ({info.name}) rejected the settings: {e}"
        ) from e


def _common_defaults(inners: Any) -> dict[str, Any]:
    """The defaults keys every inner optimizer shares.

    torch's OneCycleLR/CyclicLR read ``optimizer.defaults`` to decide whether to cycle
    ``momentum`` or ``betas`` in every group. Exposing only shared keys makes a mixed SGD +
    Adam optimizer fail loudly there (pass ``cycle_momentum=False``) instead of silently
    cycling the wrong key.
    """
    dicts = [inner.defaults for inner in inners]
    shared = set(dicts[0]).intersection(*dicts[1:])
    return {k: v for k, v in dicts[0].items() if k in shared}


def _partition_diff(saved: Mapping[str, Sequence[str]], mine: Mapping[str, Sequence[str]]) -> str:
    parts = []
    only_saved = sorted(set(saved) - set(mine))
    only_mine = sorted(set(mine) - set(saved))
    if only_saved or only_mine:
        parts.append(f"labels only in checkpoint {only_saved}, only here {only_mine}")
    for label in sorted(set(saved) & set(mine)):
        a, b = set(saved[label]), set(mine[label])
        if a != b:
            parts.append(
                f"group {label!r}: only in checkpoint {format_names(sorted(a - b), 3)}, "
                f"only here {format_names(sorted(b - a), 3)}"
            )
    return "; ".join(parts) or "same groups, different parameter order"


class _StateView(MutableMapping[Tensor, Any]):
    """``optimizer.state`` as torch code expects it: parameter -> state, across inner optimizers."""

    def __init__(
        self,
        owner: Mapping[Tensor, torch.optim.Optimizer],
        inners: Mapping[str, torch.optim.Optimizer],
    ) -> None:
        self._owner = owner
        self._inners = inners

    def __getitem__(self, p: Tensor) -> Any:
        return self._owner[p].state[p]

    def __setitem__(self, p: Tensor, value: Any) -> None:
        self._owner[p].state[p] = value

    def __delitem__(self, p: Tensor) -> None:
        del self._owner[p].state[p]

    def __iter__(self) -> Iterator[Tensor]:
        for inner in self._inners.values():
            yield from inner.state

    def __len__(self) -> int:
        return sum(len(inner.state) for inner in self._inners.values())
