"""Schemes that label each parameter by its own module and shape.

single, module_type, decay_split."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn
from torch.nn.modules.batchnorm import _NormBase
from torch.nn.modules.conv import _ConvNd

from groupwise.partition._base import ParamInfo, Scheme, assign_by, register_scheme

# _NormBase covers every BatchNorm, SyncBatchNorm and InstanceNorm (lazy ones too).
NORM_TYPES: tuple[type[nn.Module], ...] = (_NormBase, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm)

# First match wins; a parameter whose module is none of these (a custom nn.Parameter, the
# root module's own, MultiheadAttention's packed in_proj) is "other".
_MODULE_TYPES: tuple[tuple[str, tuple[type[nn.Module], ...]], ...] = (
    ("embedding", (nn.Embedding, nn.EmbeddingBag)),
    ("recurrent", (nn.RNNBase, nn.RNNCellBase)),
    ("conv", (_ConvNd,)),
    ("linear", (nn.Linear,)),
    ("norm", NORM_TYPES),
)


@register_scheme
class Single(Scheme):
    """Everything in one group: the baseline of a single tuned optimizer."""

    name = "single"
    labels = ("all",)

    def assign(self, model: nn.Module, params: Sequence[ParamInfo]) -> dict[str, list[str]]:
        return {"all": [p.name for p in params]}


@register_scheme
class ModuleType(Scheme):
    """By the kind of module that registers the parameter (the seeds' split)."""

    name = "module_type"
    labels = ("embedding", "recurrent", "conv", "linear", "norm", "other")

    def assign(self, model: nn.Module, params: Sequence[ParamInfo]) -> dict[str, list[str]]:
        return assign_by(params, module_type_of)


def module_type_of(info: ParamInfo) -> str:
    for label, types in _MODULE_TYPES:
        if isinstance(info.owner, types):
            return label
    return "other"


@register_scheme
class DecaySplit(Scheme):
    """Decay only where it regularises: matrices and kernels, not biases, norms, scalars."""

    name = "decay_split"
    labels = ("decay", "no_decay")

    def assign(self, model: nn.Module, params: Sequence[ParamInfo]) -> dict[str, list[str]]:
        return assign_by(params, _decay_label)


def _decay_label(info: ParamInfo) -> str:
    return "decay" if info.ndim >= 2 and not isinstance(info.owner, NORM_TYPES) else "no_decay"
