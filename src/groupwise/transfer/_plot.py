"""The coordinate check as a picture: each layer's scale against width, at init and after
the last step (log-log, one line per layer); flat lines transfer, rising ones do not."""

from __future__ import annotations

from pathlib import Path

from groupwise.errors import ConfigError
from groupwise.transfer._coord import CoordCheck

__all__ = ["plot_coord_check"]


def plot_coord_check(check: CoordCheck, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(path)
    if out.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise ConfigError(f"{out}: write the plot as .png, .svg or .pdf")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    colors = plt.get_cmap("tab20").colors  # type: ignore[attr-defined]
    for ax, step in zip(axes, (0, check.steps), strict=True):
        for i, layer in enumerate(check.layers):
            style = "-" if i < len(colors) else "--"
            ax.plot(
                check.widths,
                check.scales[layer][step],
                style,
                marker="o",
                color=colors[i % len(colors)],
                label=layer,
            )
        ax.set(xscale="log", yscale="log", xlabel="width", title=f"after step {step}")
        ax.minorticks_off()
        ax.set_xticks(check.widths, [str(w) for w in check.widths])
    axes[0].set_ylabel("mean |output coordinate|")
    layer, growth = check.worst
    verdict = "flat" if check.flat else "grows"
    fig.suptitle(
        f"coord-check {check.task}, rule {check.rule}: {verdict} "
        f"(largest growth {growth:.2f}x, {layer})"
    )
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    try:
        fig.savefig(out, dpi=110)
    finally:
        plt.close(fig)
    return out
