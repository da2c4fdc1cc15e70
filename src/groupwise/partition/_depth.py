"""depth: contiguous blocks of layers, the unit of layer-wise lr decay."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from torch import nn

from groupwise.errors import PartitionError, format_names
from groupwise.partition._base import ParamInfo, Scheme, register_scheme

# Modules that only hold other modules: depth looks through them to the layers inside, as
# layer-wise lr decay numbers a transformer's layers (embeddings first, each block, the head).
CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def layer_units(model: nn.Module, prefix: str = "", *, in_stack: bool = False) -> list[str]:
    """The model's layers in registration order: its children, with containers
    (Sequential, ModuleList, ModuleDict) replaced by what they hold, recursively. A container
    holding parameters of its own is a layer itself (its parameters need a place).

    Above the first container, a module with no parameters of its own that wraps one (a
    ``nn.TransformerEncoder`` and its ``layers``, a Hugging Face model's ``transformer.h``, an
    ``encoder`` class holding a ModuleList) is seen through too: its layers are the model's
    layers. Inside a container its elements stay whole, whatever they hold (a transformer
    block whose feed-forward is a Sequential is one layer, not three)."""
    units = []
    for name, child in model.named_children():
        stack = isinstance(child, CONTAINERS)
        if not _holds_own(child) and (stack or (not in_stack and _wraps_stack(child))):
            units += layer_units(child, f"{prefix}{name}.", in_stack=in_stack or stack)
        else:
            units.append(f"{prefix}{name}")
    return units


def _wraps_stack(module: nn.Module) -> bool:
    """Whether a container is among ``module``'s children, or theirs through modules that
    hold no parameters of their own."""
    return any(
        not _holds_own(child) and (isinstance(child, CONTAINERS) or _wraps_stack(child))
        for child in module.children()
    )


def _holds_own(module: nn.Module) -> bool:
    """Whether parameters are registered on ``module`` itself (not only on its children)."""
    return next(module.parameters(recurse=False), None) is not None


@register_scheme
class Depth(Scheme):
    """``block0`` ... ``block{k-1}``: the model's layers that hold trainable parameters
    (:func:`layer_units`: top-level children, seen through containers and the modules that
    wrap them), in registration order, cut into ``blocks`` contiguous runs whose parameter
    counts are as equal as possible (least sum of squared block sizes). Parameters registered
    directly on the root module join ``block0``."""

    name = "depth"

    def __init__(self, *, blocks: int = 2) -> None:
        if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 1:
            raise PartitionError(
                f"depth option 'blocks': must be a whole number >= 1; got {blocks!r}"
            )
        self.blocks = blocks

    def label_order(self) -> tuple[str, ...]:
        return tuple(f"block{i}" for i in range(self.blocks))

    def assign(self, model: nn.Module, params: Sequence[ParamInfo]) -> dict[str, list[str]]:
        unit_of = {info.name: _unit(info.name, layer_units(model)) for info in params}
        sizes: dict[str, int] = {}
        for info in params:
            sizes[unit_of[info.name]] = sizes.get(unit_of[info.name], 0) + info.numel
        units = [u for u in layer_units(model) if u in sizes]
        if self.blocks > max(len(units), 1):
            raise PartitionError(
                f"depth option 'blocks': {self.blocks} blocks, but {type(model).__name__} has "
                f"only {len(units)} layers with trainable parameters (containers and their "
                f"wrappers seen through) {format_names(units)}; use blocks <= {max(len(units), 1)}"
            )
        cuts = balanced_cuts([sizes[u] for u in units], self.blocks, head=sizes.get("", 0))
        block_of = {"": 0}
        for block, (start, stop) in enumerate(itertools.pairwise(cuts)):
            block_of.update({unit: block for unit in units[start:stop]})
        groups: dict[str, list[str]] = {}
        for info in params:
            groups.setdefault(f"block{block_of[unit_of[info.name]]}", []).append(info.name)
        return groups


def _unit(name: str, units: list[str]) -> str:
    """The layer a parameter belongs to ("" for one registered on the root module)."""
    matches = [u for u in units if name.startswith(u + ".")]
    return max(matches, key=len) if matches else ""


def balanced_cuts(sizes: Sequence[int], k: int, head: int = 0) -> list[int]:
    """Boundaries ``[0, c1, ..., len(sizes)]`` of ``k`` non-empty contiguous runs minimising the
    sum of squared run totals (``head`` is added to the first run). With no sizes, one empty run."""
    n = len(sizes)
    if n == 0:
        return [0, 0]
    prefix = [0]
    for s in sizes:
        prefix.append(prefix[-1] + s)

    def cost(i: int, j: int) -> int:  # runs sizes[i:j]
        total = prefix[j] - prefix[i] + (head if i == 0 else 0)
        return total * total

    inf = float("inf")
    # best[b][j]: least cost of cutting sizes[:j] into b runs; back[b][j]: where run b starts.
    best = [[inf] * (n + 1) for _ in range(k + 1)]
    back = [[0] * (n + 1) for _ in range(k + 1)]
    best[0][0] = 0
    for b in range(1, k + 1):
        for j in range(b, n - (k - b) + 1):
            for i in range(b - 1, j):
                c = best[b - 1][i] + cost(i, j)
                if c < best[b][j]:
                    best[b][j], back[b][j] = c, i
    cuts = [n]
    for b in range(k, 0, -1):
        cuts.append(back[b][cuts[-1]])
    return cuts[::-1]
