"""PNG plots of the flow studies (matplotlib is optional, "lstm-bench[plot]"; loaded by `lstm_bench.bench.plots.pyplot`).

Gradient curves are drawn against the distance from the loss, d = T - t (0 at the step
the loss is on), not against the absolute step as the seed did, in a linear and a log
panel side by side, with the 10-90% band over seeds x samples.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..bench.plots import pyplot
from .forget import simulate_gradient_decay
from .study import FlowSummary


def _xlabel(loss: str) -> str:
    return "distance from loss (steps)" if loss == "last" else "distance from the last step (steps)"


def plot_curves(summaries: Sequence[FlowSummary], path: str | Path, *, title: str, loss: str = "last",
                which: str = "x") -> Path:
    """Mean ||dL/d<which>_t|| with its 10-90% band against distance from the loss; linear and log panels.

    Models without `which` (no cell state) are skipped but keep their colour, so that one
    model has one colour in every plot. ValueError if `which` is not x, h or c, or no model has it."""
    if which not in ("x", "h", "c"):
        raise ValueError(f"which must be one of x, h, c, got {which!r}")
    if not any(which in s.norms for s in summaries):
        raise ValueError(f"no model has {which!r} norms to plot (models: {[s.name for s in summaries]}; "
                         f"only an LSTM has 'c')")
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    for ax, log in zip(axes, (False, True)):
        for n, s in enumerate(summaries):
            if which not in s.norms:
                continue
            curve = s.curve(which)
            d = list(range(len(curve["mean"])))
            line, = ax.plot(d, curve["mean"], label=f"{s.name} (decay {s.decay_ratio(which):.1e})", lw=1.8,
                            color=f"C{n}")
            ax.fill_between(d, curve["q10"], curve["q90"], color=line.get_color(), alpha=0.15, lw=0)
        if log:
            ax.set_yscale("log")
        ax.set_xlabel(_xlabel(loss))
        ax.set_ylabel(f"‖∂L/∂{which}_t‖" + (" (log scale)" if log else ""))
        ax.set_title(("log scale" if log else "linear scale") + ": mean, band = 10–90% of samples")
        ax.grid(True, which="major", alpha=0.4)
        ax.set_xlim(0, len(d) - 1)
    axes[0].set_ylim(bottom=0)
    axes[1].legend(fontsize=8, loc="lower left", title="model (decay = far/near ratio)", title_fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def plot_memory(summaries: Sequence[FlowSummary], path: str | Path, *, title: str) -> Path:
    """Effective memory (bars, whiskers = min..max over samples) and decay ratio (log scale) per model."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    names = [s.name for s in summaries]
    pos = list(range(len(names)))
    colors = [f"C{n}" for n in pos]
    mem = [s.memory.mean for s in summaries]
    spread = [[m - s.memory.min for m, s in zip(mem, summaries)], [s.memory.max - m for m, s in zip(mem, summaries)]]
    axes[0].bar(pos, mem, yerr=spread, color=colors, capsize=4)
    T = summaries[0].memory.seq_len
    axes[0].axhline(T - 1, color="grey", ls="--", lw=1)
    axes[0].text(-0.4, T - 1, f"T − 1 = {T - 1}: longest lag measurable", va="bottom", fontsize=8, color="grey")
    for p, s in zip(pos, summaries):
        label = f"{s.memory.mean:.1f}" + (f"\n({100 * s.memory.censored:.0f}% at T−1)" if s.memory.censored else "")
        axes[0].text(p, s.memory.mean / 2, label, ha="center", va="center", fontsize=8, color="white")
    axes[0].set_ylim(0, T * 1.12)
    axes[0].set_ylabel(f"effective memory (steps; threshold {summaries[0].memory.threshold:g} of peak)")
    axes[0].set_title("effective memory: mean, whiskers = min..max over samples", fontsize=10)
    ratios = [max(s.decay_ratio("x"), 1e-300) for s in summaries]
    axes[1].scatter(pos, ratios, c=colors, s=60, zorder=3)
    for p, r in zip(pos, ratios):
        axes[1].annotate(f"{r:.1e}", (p, r), textcoords="offset points", xytext=(0, 8), ha="center", fontsize=8)
    axes[1].set_yscale("log")
    lo, hi = min(ratios), max(ratios)
    axes[1].set_ylim(lo / 100, max(hi * 100, 10))
    axes[1].set_xlim(-0.5, len(names) - 0.5)
    axes[1].set_ylabel("‖∂L/∂x_1‖ / ‖∂L/∂x_T‖ (log scale)")
    axes[1].set_title("decay ratio: farthest step over the step at the loss (1 = no decay)", fontsize=10)
    for ax in axes:
        ax.set_xticks(pos, names, rotation=12, fontsize=8)
        ax.grid(True, axis="y", alpha=0.4)
    fig.suptitle(title)
    return _save(fig, path)


def plot_jacobian(summaries: Sequence[FlowSummary], path: str | Path, *, title: str) -> Path:
    """Spectral norms of the direct and indirect terms of dc_t/dc_{t-1} along the sequence."""
    plt = pyplot()
    with_jac = [s for s in summaries if s.jacobian is not None]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    for n, s in enumerate(with_jac):
        j = s.jacobian
        axes[0].plot(j.steps, j.norms["direct"], color=f"C{n}", lw=1.8, label=s.name)
        axes[0].plot(j.steps, j.norms["indirect"], color=f"C{n}", lw=1.2, ls="--")
        axes[1].plot(j.steps, j.ratio, color=f"C{n}", lw=1.5, label=s.name)
    axes[0].set_ylabel("spectral norm of the term")
    axes[0].set_title("solid: direct diag(f_t); dashed: indirect, through h_{t−1}", fontsize=10)
    axes[0].set_ylim(0, 1.05)
    axes[1].set_ylabel("‖direct‖ / ‖indirect‖")
    axes[1].set_title("ratio (> 1: the forget-gate path dominates)", fontsize=10)
    axes[1].set_ylim(bottom=0)
    axes[1].axhline(1, color="grey", lw=1)
    for ax in axes:
        ax.set_xlabel("time step t (spectral norms, mean over samples)")
        ax.grid(True, alpha=0.4)
        ax.legend(fontsize=8, loc="lower right" if ax is axes[0] else "center right")
    fig.suptitle(title)
    return _save(fig, path)


def plot_forget(summaries: Sequence[FlowSummary], path: str | Path, *, title: str,
                fs: Sequence[float] = (0.5, 0.9, 0.95, 0.99, 0.999), length: int = 1000) -> Path:
    """Left: the highway's span products prod f over the k steps before the loss, per init (log).
    Right: the idealised decay f^k of `simulate_gradient_decay` for constant f (log)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    for n, s in enumerate(x for x in summaries if x.forget is not None):
        q = s.forget["quantiles"]
        logs = s.forget["span_product_log10_geomean"]
        axes[0].plot(range(len(logs)), [10 ** v for v in logs], color=f"C{n}", lw=1.8,
                     label=f"{s.name} (median f = {q['q50']:.2f})")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("distance from loss (steps)")
    axes[0].set_ylabel("∏ f over the span (geometric mean over units)")
    axes[0].set_title("measured forget-gate products (direct path only)")
    for f in fs:
        g = simulate_gradient_decay(f, length)
        axes[1].plot(range(length + 1), g.clamp_min(1e-300).tolist(), lw=1.5, label=f"f = {f}")
    axes[1].set_yscale("log")
    axes[1].set_ylim(1e-30, 2)
    axes[1].set_xlabel("steps k")
    axes[1].set_ylabel("f^k (log scale)")
    axes[1].set_title("constant forget gate: gradient left after k steps")
    for ax in axes:
        ax.grid(True, alpha=0.4)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path
