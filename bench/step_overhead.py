"""What one MultiOptimizer.step() costs against the alternatives, measured in one run.

    python bench/step_overhead.py [--repeats 40] [--steps 20]

Compared, on a 24-layer MLP partitioned with `depth` into 24 groups (one per layer):

1. MultiOptimizer (one inner AdamW, 24 groups) vs one hand-built torch AdamW holding the same
   24 param groups. The goal is a ratio of at most 1.05.
2. The naive design, one torch optimizer per group (24 AdamW), vs MultiOptimizer.
3. A mixed config (AdamW on biases, SGD+momentum on the first half, Muon on the rest) vs the
   three hand-built optimizers stepped one after another (what a careful user writes), and vs
   the naive one-optimizer-per-group design.

The mixed case runs only up to --mixed-max-width (64): torch's Muon runs Newton-Schulz in
bfloat16, which on a CPU without bf16 matrix units costs ~0.25 s per 256x256 matrix per
step, so at larger widths every variant measures the same Muon arithmetic, not overhead.

A fourth block times a step over two tiny tensors: the fixed cost MultiOptimizer adds per
step (torch's hook/profiler wrapper on the outer step, and the loop over inner optimizers).

Only step() is timed: gradients are set once and left in place. Each case is timed in
interleaved rounds (so drift hits every case alike); medians of the per-step time are
reported, with the ratio to the baseline of the same row. Run with foreach off (torch's CPU
default) and on.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

import groupwise


def deep_mlp(depth: int, width: int) -> nn.Sequential:
    return nn.Sequential(*[nn.Linear(width, width) for _ in range(depth)])


def with_grads(model: nn.Module) -> nn.Module:
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    return model


def steppers(
    depth: int, width: int, foreach: bool | None, mixed_max_width: int
) -> dict[str, dict[str, Callable[[], None]]]:
    flags = {} if foreach is None else {"foreach": foreach}
    cases: dict[str, dict[str, Callable[[], None]]] = {}

    # -- 1 & 2: all AdamW, one group per layer, each its own lr (layer-wise decay) --
    lrs = {f"block{i}": 1e-3 * 0.9**i for i in range(depth)}
    config = {
        "scheme": {"name": "depth", "blocks": depth},
        "groups": {label: {"optimizer": "adamw", "lr": lr, **flags} for label, lr in lrs.items()},
    }
    m1, m2, m3 = (with_grads(deep_mlp(depth, width)) for _ in range(3))
    multi = groupwise.build_optimizer(m1, config)
    one = torch.optim.AdamW(
        [
            {"params": list(layer.parameters()), "lr": lr}
            for layer, lr in zip(m2, lrs.values(), strict=True)
        ],
        **flags,
    )
    per_group = [
        torch.optim.AdamW(layer.parameters(), lr=lr, **flags)
        for layer, lr in zip(m3, lrs.values(), strict=True)
    ]
    cases["adamw, 24 groups"] = {
        "torch AdamW, same 24 groups": one.step,
        "MultiOptimizer": multi.step,
        "naive: 24 AdamW": lambda: [o.step() for o in per_group],
    }

    # -- fixed cost: one tiny tensor, so the step itself is almost free --
    tiny_a, tiny_b = with_grads(nn.Linear(1, 1)), with_grads(nn.Linear(1, 1))
    tiny_multi = groupwise.build_optimizer(
        tiny_a, {"scheme": "single", "groups": {"all": {"optimizer": "sgd", "lr": 0.0, **flags}}}
    )
    cases["fixed cost, 2 tensors"] = {
        "torch SGD": torch.optim.SGD(tiny_b.parameters(), lr=0.0, **flags).step,
        "MultiOptimizer": tiny_multi.step,
    }

    # -- 3: mixed AdamW (biases) + SGD (first half matrices) + Muon (second half matrices) --
    if width > mixed_max_width:
        return cases
    half = depth // 2
    patterns = {"bias": r"\.bias$", "sgd_half": rf"^({'|'.join(str(i) for i in range(half))})\."}
    mixed = {
        "scheme": {"name": "by_name", "patterns": patterns},
        "groups": {
            "bias": {"optimizer": "adamw", "lr": 1e-3, **flags},
            "sgd_half": {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, **flags},
            "rest": {"optimizer": "muon", "lr": 0.02},
        },
    }
    m4, m5, m6 = (with_grads(deep_mlp(depth, width)) for _ in range(3))
    multi_mixed = groupwise.build_optimizer(m4, mixed)
    biases = [m.bias for m in m5]
    first = [m5[i].weight for i in range(half)]
    rest = [m5[i].weight for i in range(half, depth)]
    by_hand = [
        torch.optim.AdamW(biases, lr=1e-3, **flags),
        torch.optim.SGD(first, lr=0.05, momentum=0.9, **flags),
        torch.optim.Muon(rest, lr=0.02),
    ]
    naive = []
    for i, layer in enumerate(m6):
        naive.append(torch.optim.AdamW([layer.bias], lr=1e-3, **flags))
        if i < half:
            naive.append(torch.optim.SGD([layer.weight], lr=0.05, momentum=0.9, **flags))
        else:
            naive.append(torch.optim.Muon([layer.weight], lr=0.02))
    cases["mixed adamw+sgd+muon"] = {
        "3 hand-built optimizers": lambda: [o.step() for o in by_hand],
        "MultiOptimizer": multi_mixed.step,
        f"naive: {len(naive)} optimizers": lambda: [o.step() for o in naive],
    }
    return cases


def measure(cases: dict[str, Callable[[], None]], repeats: int, steps: int) -> dict[str, float]:
    for fn in cases.values():  # warm up: state allocation, first-call dispatch
        for _ in range(3):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            start = time.perf_counter()
            for _ in range(steps):
                fn()
            samples[name].append((time.perf_counter() - start) / steps)
    return {name: statistics.median(values) for name, values in samples.items()}


def breakdown(depth: int, width: int, repeats: int, steps: int) -> None:
    """Where a mixed step goes: MultiOptimizer vs its inner optimizers stepped directly."""
    cases = steppers(depth, width, None, width)["mixed adamw+sgd+muon"]
    multi = cases["MultiOptimizer"].__self__  # type: ignore[attr-defined]
    fns = {
        "MultiOptimizer.step": multi.step,
        "its inner optimizers, directly": lambda: [o.step() for o in multi.optimizers.values()],
        **{f"  inner {kind}": o.step for kind, o in multi.optimizers.items()},
    }
    for name, t in measure(fns, repeats, steps).items():
        print(f"{name:<34} {t * 1e6:>9.1f} us/step")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--depth", type=int, default=24)
    parser.add_argument("--widths", type=int, nargs="+", default=[32, 256])
    parser.add_argument("--mixed-max-width", type=int, default=64)
    parser.add_argument(
        "--breakdown", action="store_true", help="profile the mixed case at the first width"
    )
    args = parser.parse_args()
    if args.breakdown:
        breakdown(args.depth, args.widths[0], args.repeats, args.steps)
        return
    torch.manual_seed(0)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, python {platform.python_version()}"
    )
    print(
        f"medians of {args.repeats} rounds x {args.steps} steps; "
        "ratio = time / first row of its block\n"
    )
    header = (
        f"{'width':>5}  {'foreach':>7}  {'case':<22}  {'variant':<30}  {'us/step':>9}  {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    for width in args.widths:
        for foreach in (None, True):
            for case, fns in steppers(args.depth, width, foreach, args.mixed_max_width).items():
                times = measure(fns, args.repeats, args.steps)
                base = next(iter(times.values()))
                for variant, t in times.items():
                    flag = "default" if foreach is None else "on"
                    cells = f"{width:>5}  {flag:>7}  {case:<22}  {variant:<30}"
                    print(f"{cells}  {t * 1e6:>9.1f}  {t / base:>6.3f}")
            print()


if __name__ == "__main__":
    main()
