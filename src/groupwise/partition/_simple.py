"""Schemes that label each parameter by its own module and shape.

single, module_type, decay_split."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn
from torch.nn.modules.batchnorm import _NormBase
from torch.nn.modules.conv import _ConvNd

from groupwise.errors import PartitionError
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
    """Decay only where it regularises: matrices and kernels, not biases, norms, scalars.

    ``embeddings``: ``decay`` (the default) keeps embedding tables with the matrices, as
    nanoGPT's ``configure_optimizers`` and the Hugging Face Trainer do (they exempt only biases
    and norm weights); ``no_decay`` exempts them too, as other codebases do (an embedding row
    is only updated when its token appears, so decay shrinks rare tokens' rows between their
    updates). Embeddings are ``nn.Embedding``/``EmbeddingBag`` tables and tensors of 2+
    dimensions registered on the model itself (a learned positional table), as ``role`` tells
    them; a head tied to an embedding is that embedding.
    """

    name = "decay_split"
    labels = ("decay", "no_decay")

    def __init__(self, *, embeddings: str = "decay") -> None:
        if embeddings not in ("decay", "no_decay"):
            raise PartitionError(
                f"decay_split option embeddings must be one of [decay, no_decay]; got "
                f"{embeddings!r}"
            )
        self.embeddings = embeddings

    def assign(self, model: nn.Module, params: Sequence[ParamInfo]) -> dict[str, list[str]]:
        exempt = self.embeddings == "no_decay"
        return assign_by(params, lambda info: _decay_label(info, exempt))


def _decay_label(info: ParamInfo, exempt_embeddings: bool) -> str:
    if exempt_embeddings and is_embedding(info):
        return "no_decay"
    return "decay" if info.ndim >= 2 and not isinstance(info.owner, NORM_TYPES) else "no_decay"


def is_embedding(info: ParamInfo) -> bool:
    """A lookup table, or a tensor of 2+ dimensions on the model itself (no layer to say what
    it is: most often a learned positional embedding)."""
    owned = isinstance(info.owner, nn.Embedding | nn.EmbeddingBag)
    return owned or (info.owner_name == "" and info.ndim >= 2)
