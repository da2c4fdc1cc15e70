"""depth: contiguous blocks of top-level children, the unit of layer-wise lr decay."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from torch import nn

from groupwise.errors import PartitionError
from groupwise.partition._base import ParamInfo, Scheme, register_scheme


@register_scheme
class Depth(Scheme):
    """``block0`` ... ``block{k-1}``: the top-level children that hold trainable parameters,
    in registration order, cut into ``blocks`` contiguous runs whose parameter counts are as
    equal as possible (least sum of squared block sizes). Parameters registered directly on
    the root module join ``block0``."""

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
        sizes: dict[str, int] = {}
        for info in params:
            sizes[info.top] = sizes.get(info.top, 0) + info.numel
        units = [name for name, _ in model.named_children() if name in sizes]
        if self.blocks > max(len(units), 1):
            raise PartitionError(
                f"depth option 'blocks': {self.blocks} blocks, but {type(model).__name__} has "
                f"only {len(units)} top-level children with trainable parameters "
                f"{units}; use blocks <= {max(len(units), 1)}"
            )
        cuts = balanced_cuts([sizes[u] for u in units], self.blocks, head=sizes.get("", 0))
        block_of = {"": 0}
        for block, (start, stop) in enumerate(itertools.pairwise(cuts)):
            block_of.update({unit: block for unit in units[start:stop]})
        groups: dict[str, list[str]] = {}
        for info in params:
            groups.setdefault(f"block{block_of[info.top]}", []).append(info.name)
        return groups


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
