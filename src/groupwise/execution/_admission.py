"""Memory-aware admission: will a trial fit in the memory its worker may use?

A trial holds its parameters, their gradients and its optimizers' state, and the state
differs by kind (SGD with momentum keeps one buffer per parameter, Adam two, Adafactor only
row and column factors); each OptimizerInfo says how much. Activations depend on the batch
and are not estimated: what the estimate misses shows up as an out-of-memory during
training, which is recorded the same way (an infeasible ``memory`` constraint).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from groupwise.config import TrialConfig
from groupwise.optim import get_optimizer
from groupwise.sampling import PartitionFacts, groups_of

__all__ = ["MemoryEstimate", "estimate_memory"]


@dataclass(frozen=True)
class MemoryEstimate:
    parameters: int  # bytes
    gradients: int
    optimizer_state: int

    @property
    def total(self) -> int:
        return self.parameters + self.gradients + self.optimizer_state


def estimate_memory(config: TrialConfig, facts: PartitionFacts) -> MemoryEstimate:
    params = state = 0
    for label, names in groups_of(config, facts).items():
        group = config.groups[label]
        info = get_optimizer(group.optimizer)
        for name in names:
            shape, itemsize = facts.tensors[name]
            params += math.prod(shape) * itemsize
            state += info.state_elements(group.hyperparameters, shape) * itemsize
    return MemoryEstimate(parameters=params, gradients=params, optimizer_state=state)
