"""A per-group table a user reads to trust a partition: tensors, parameter counts, shapes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn


@dataclass(frozen=True)
class GroupSummary:
    label: str
    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    params: int
    optimizer: str | None = None
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)

    @property
    def tensors(self) -> int:
        return len(self.names)

    def shape_text(self, limit: int = 4) -> str:
        """``3x(64, 64), (64,)``: distinct shapes with their counts, most common first."""
        counts = Counter(self.shapes).most_common()
        parts = [f"{n}x{tuple(s)}" if n > 1 else f"{tuple(s)}" for s, n in counts[:limit]]
        if len(counts) > limit:
            parts.append(f"+{len(counts) - limit} more")
        return ", ".join(parts)


@dataclass(frozen=True)
class PartitionSummary:
    rows: tuple[GroupSummary, ...]

    @property
    def total_params(self) -> int:
        return sum(r.params for r in self.rows)

    def __str__(self) -> str:
        with_opt = any(r.optimizer for r in self.rows)
        header = [
            "group",
            "tensors",
            "params",
            *(["optimizer", "settings"] if with_opt else []),
            "shapes",
        ]
        lines = [header]
        for r in self.rows:
            settings = ", ".join(f"{k}={_short(v)}" for k, v in r.hyperparameters.items())
            opt_cols = [r.optimizer or "-", settings] if with_opt else []
            lines.append([r.label, str(r.tensors), f"{r.params:,}", *opt_cols, r.shape_text()])
        lines.append(
            [
                "total",
                str(sum(r.tensors for r in self.rows)),
                f"{self.total_params:,}",
                *(["", ""] if with_opt else []),
                "",
            ]
        )
        widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
        numeric = {1, 2}
        return "\n".join(
            "  ".join(
                cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
                for i, cell in enumerate(row)
            ).rstrip()
            for row in lines
        )


def summarize(
    model: nn.Module,
    groups: Mapping[str, Sequence[str]],
    optimizers: Mapping[str, tuple[str, Mapping[str, Any]]] | None = None,
) -> PartitionSummary:
    """Summarise ``groups`` (as :func:`partition` returns them) for ``model``; ``optimizers``
    optionally maps label -> (optimizer name, hyperparameters) to show beside each group."""
    params = dict(model.named_parameters(remove_duplicate=False))
    rows = []
    for label, names in groups.items():
        opt, hyper = (optimizers or {}).get(label, (None, {}))
        rows.append(
            GroupSummary(
                label=label,
                names=tuple(names),
                shapes=tuple(tuple(params[n].shape) for n in names),
                params=sum(params[n].numel() for n in names),
                optimizer=opt,
                hyperparameters=dict(hyper),
            )
        )
    return PartitionSummary(tuple(rows))


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, tuple | list):
        return "(" + ", ".join(_short(v) for v in value) + ")"
    return str(value)
