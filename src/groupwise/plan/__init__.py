"""Planning, between spec and execution: a validated study file -> a frozen :class:`Plan`
(the task checked, the partition facts, the sampler and pruner, the study's fingerprint).
``groupwise validate`` runs only this far; it imports no Ray and opens no database."""

from groupwise.plan._components import (
    PRUNERS,
    SAMPLERS,
    Component,
    ComponentEntry,
    component,
    register_pruner,
    register_sampler,
)
from groupwise.plan._plan import Plan, Seed, dry_run, fingerprint, identity, make_plan, proxy_task
from groupwise.plan._show import show_partitions

__all__ = [
    "PRUNERS",
    "SAMPLERS",
    "Component",
    "ComponentEntry",
    "Plan",
    "Seed",
    "component",
    "dry_run",
    "fingerprint",
    "identity",
    "make_plan",
    "proxy_task",
    "register_pruner",
    "register_sampler",
    "show_partitions",
]
