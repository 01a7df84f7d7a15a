"""PNG charts of a results file (`lstm-bench plot RESULTS`).

- time_vs_T.png       forward+backward time against sequence length, one line per implementation,
                      one panel per (device, dtype, B, H); log-log, since T spans decades
                      and the implementations differ by orders of magnitude. Bars: interquartile range.
- time_vs_H.png       the same against hidden size, one panel per (device, dtype, B, T).
- memory_vs_T.png     peak bytes (solid) and saved-activation bytes (dashed) against T.
- ratio_to_nn_lstm.png  each implementation's median time divided by nn_lstm's at the same point,
                      against T, log y, with the line at 1 marking parity.

A point measured while the machine was oversubscribed (`Measurement.oversubscribed`) is drawn
with a red cross over its marker, and the legend says so: its time reads high.

Charts are never written over an existing file: `occupied_charts` says which of `CHARTS` a
folder already holds (the command refuses it, or makes a new folder), and each PNG is
created exclusively.

matplotlib is optional (`pip install "lstm-bench[plot]"`) and imported only here.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

from ..machine.gpu import gpu_label
from .results import ResultsError, ResultsFile
from .spread import quartiles

BASELINE = "nn_lstm"
CHARTS = ("time_vs_T.png", "time_vs_H.png", "memory_vs_T.png", f"ratio_to_{BASELINE}.png")
OVERSUBSCRIBED = "oversubscribed: time reads high"
OVERSUBSCRIBED_STYLE = {"color": "red", "marker": "x", "markersize": 9, "linestyle": "none", "zorder": 5}


def occupied_charts(out_dir: str | Path) -> list[Path]:
    """The charts of `CHARTS` that already exist in `out_dir` (plots are never overwritten)."""
    return [Path(out_dir) / name for name in CHARTS if (Path(out_dir) / name).exists()]


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend, or an ImportError that says how to install it."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install \"lstm-bench[plot]\" (or pip install matplotlib)") \
            from None
    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    return plt


def rows_of(results: ResultsFile) -> list[dict]:
    """One flat row per successfully measured point: sizes, median and quartiles of the time, memory."""
    rows = []
    for rec in results.ok():
        m = rec.measurement
        q1, med, q3 = quartiles(m.forward_backward_s)
        over = m.oversubscribed or (m.load.oversubscribed_reason() if m.load is not None else None)
        rows.append({**rec.point.as_dict(), "config": rec.point.variant.label, "median": med, "q1": q1, "q3": q3,
                     "saved": m.saved_bytes, "peak": m.peak_bytes, "halves": m.has_halves,
                     "oversubscribed": bool(over)})
    return rows


def _facets(rows: list[dict], keys: tuple[str, ...]) -> list[tuple]:
    return sorted({tuple(r[k] for k in keys) for r in rows})


def _facet_title(keys: tuple[str, ...], values: tuple) -> str:
    parts = []
    for k, v in zip(keys, values):
        parts.append(str(v) if k in ("device", "dtype", "config") else f"{k}={v}")
    return ", ".join(parts)


def _impl_styles(impls: list[str]) -> dict[str, dict]:
    markers = "osD^vP*X"
    return {name: {"color": f"C{i % 10}", "marker": markers[i % len(markers)]} for i, name in enumerate(impls)}


def _panels(plt, n: int, title: str):
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols + 2.4, 3.6 * rows + 0.6), squeeze=False,
                             layout="constrained")
    fig.suptitle(title, fontsize=12, wrap=True)  # a one-panel figure is narrower than its title
    flat = [ax for row in axes for ax in row]
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _finish(fig, axes, path: Path) -> Path:
    """One legend for all panels (each implementation once), then the PNG."""
    seen: dict[str, Any] = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, h)
    fig.legend(list(seen.values()), list(seen.keys()), loc="outside right center", frameon=False, title="implementation")
    path.parent.mkdir(parents=True, exist_ok=True)  # only once there is a chart to put in it
    try:
        with open(path, "xb") as f:  # exclusive: an existing chart is never replaced
            fig.savefig(f, format="png", dpi=110)
    except FileExistsError:
        raise ResultsError(f"{path}: already exists (plots are never overwritten); choose another --out-dir") from None
    return path


# Mantissas of the labelled ticks on a log axis, finest first: the finest ladder that
# gives at most MAX_TICKS labels is used, so a panel spanning a factor of 2 is as
# readable as one spanning four decades.
LADDERS = ((1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9), (1, 1.5, 2, 3, 5, 7), (1, 2, 5), (1, 3), (1,))
MAX_TICKS = 9


def log_ticks(lo: float, hi: float) -> list[float]:
    """Labelled ticks for a log axis holding values in [lo, hi] (both > 0): from the last
    tick at or below `lo` to the first at or above `hi`, so every value lies between two labels."""
    if not (0 < lo <= hi and math.isfinite(hi)):
        raise ValueError(f"log_ticks needs 0 < lo <= hi < inf, got {lo!r}, {hi!r}")
    first, last = math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1
    for ladder in LADDERS:
        # round() so that 3 x 10^-1 is the tick 0.3, not 0.30000000000000004
        values = sorted({float(f"{m * 10.0 ** k:.6g}") for k in range(first, last + 1) for m in ladder})
        below = max(v for v in values if v <= lo * (1 + 1e-9))
        above = min(v for v in values if v >= hi * (1 - 1e-9))
        ticks = [v for v in values if below <= v <= above]
        if len(ticks) <= MAX_TICKS or ladder == LADDERS[-1]:
            return ticks
    raise AssertionError("unreachable: the last ladder always returns")


def _label_log_axis(ax, values: list[float]) -> None:
    """Log y axis whose labelled ticks (plain numbers: 0.5, 2, 10) bracket every plotted value."""
    from matplotlib.ticker import NullFormatter, NullLocator

    ticks = log_ticks(min(values), max(values))
    ax.set_yscale("log")
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
    ax.set_ylim(ticks[0] / 1.08, ticks[-1] * 1.08)  # a margin, so markers on the end ticks are whole


def _line_chart(plt, rows: list[dict], *, x: str, facet_keys: tuple[str, ...], title: str, ylabel: str,
                series: Callable[[list[dict]], list[tuple[str, list[float], list[float], dict]]],
                path: Path, log_y: bool = True, hline: float | None = None,
                notes: list[str] | None = None) -> Path | None:
    facets = _facets(rows, facet_keys)
    if not facets or len({r[x] for r in rows}) < 2:
        if notes is not None:
            notes.append(f"{path.name} not drawn: the results hold a single {x} value")
        return None  # one value on the x axis: nothing to draw a line through
    fig, axes = _panels(plt, len(facets), title)
    for ax, values in zip(axes, facets):
        sub = [r for r in rows if tuple(r[k] for k in facet_keys) == values]
        plotted: list[float] = [hline] if hline is not None else []
        for label, xs, ys, style in series(sub):
            style = dict(style)
            yerr = style.pop("yerr", None)
            if yerr is not None:
                ax.errorbar(xs, ys, yerr=yerr, label=label, capsize=3, **style)
                plotted += [y - lo for y, lo in zip(ys, yerr[0])] + [y + up for y, up in zip(ys, yerr[1])]
            else:
                ax.plot(xs, ys, label=label, **style)
            plotted += ys
        xs_all = sorted({r[x] for r in sub})
        if len(xs_all) > 1 and xs_all[-1] / xs_all[0] >= 8:
            ax.set_xscale("log")
        ax.set_xticks(xs_all)
        ax.set_xticklabels([str(v) for v in xs_all])
        ax.minorticks_off() if ax.get_xscale() == "log" else None
        positive = [v for v in plotted if v > 0]
        if log_y and positive:
            _label_log_axis(ax, positive)
        if hline is not None:
            ax.axhline(hline, color="black", linewidth=0.8, linestyle=":")
        ax.set_title(_facet_title(facet_keys, values), fontsize=10)
        ax.set_xlabel({"T": "sequence length T", "H": "hidden size H"}.get(x, x))
        ax.set_ylabel(ylabel)
        ax.grid(True, which="major", alpha=0.3)
    return _finish(fig, axes, path)


def _time_series(x: str, impls: list[str], styles: dict):
    def series(sub: list[dict]):
        out = []
        for name in impls:
            pts = sorted((r for r in sub if r["impl"] == name), key=lambda r: r[x])
            if not pts:
                continue
            xs = [r[x] for r in pts]
            ys = [r["median"] * 1e3 for r in pts]
            yerr = [[(r["median"] - r["q1"]) * 1e3 for r in pts], [(r["q3"] - r["median"]) * 1e3 for r in pts]]
            out.append((name, xs, ys, {**styles[name], "linewidth": 1.5, "yerr": yerr}))
        over = [r for r in sub if r["oversubscribed"]]
        if over:
            out.append((OVERSUBSCRIBED, [r[x] for r in over], [r["median"] * 1e3 for r in over], OVERSUBSCRIBED_STYLE))
        return out
    return series


def _case_of(row: dict) -> tuple:
    """What a row's time is divided by the baseline's at: everything of its point but the implementation."""
    return tuple(row[k] for k in ("T", "B", "I", "H", "device", "dtype", "config"))


def plot_results(results: ResultsFile, out_dir: str | Path, notes: list[str] | None = None) -> list[Path]:
    """Write the PNGs for `results` into `out_dir` (created); returns their paths, empty when
    nothing could be drawn.

    Charts that cannot be drawn (no measured point, a single value on their x axis, no
    memory figures, no nn_lstm baseline) are left out and, when `notes` is given, explained
    there. ResultsError, before anything is drawn, when `out_dir` already holds one of `CHARTS`.
    """
    occupied = occupied_charts(out_dir)
    if occupied:
        raise ResultsError(f"{occupied[0]}: already exists (plots are never overwritten); choose another --out-dir")
    rows = rows_of(results)
    if not rows:
        if notes is not None:
            notes.append(f"nothing drawn: {results.path} holds no successfully measured point")
        return []
    plt = pyplot()
    out = Path(out_dir)
    impls = list(dict.fromkeys(r["impl"] for r in rows))
    styles = _impl_styles(impls)
    env = results.env
    where = f"torch {env.get('torch')}, {env.get('threads')} threads, {gpu_label(env.get('gpu')) or env.get('cpu')}"
    written: list[Path] = []
    # I follows H in the grid's sweeps; a file with other input sizes gets a panel per I, so
    # that no line joins points of different I.
    split = () if all(r["I"] == r["H"] for r in rows) or len({r["I"] for r in rows}) == 1 else ("I",)
    # and a panel per nn.LSTM configuration (2 layers, bidirectional, ...) when there are several
    split += ("config",) if len({r["config"] for r in rows}) > 1 else ()
    per_T = ("device", "dtype", "B", "H") + split

    for x, facet_keys, name in (("T", per_T, "time_vs_T.png"),
                                ("H", ("device", "dtype", "B", "T") + split, "time_vs_H.png")):
        p = _line_chart(plt, rows, x=x, facet_keys=facet_keys, path=out / name,
                        title=f"forward+backward time (median, bars: IQR) vs {x} - {where}",
                        ylabel="ms per forward+backward of all T steps", series=_time_series(x, impls, styles),
                        notes=notes)
        if p is not None:
            written.append(p)
        plt.close("all")

    mem_rows = [r for r in rows if r["peak"] is not None]
    no_halves = sorted({r["impl"] for r in rows if not r["halves"]})
    if notes is not None:
        why = (f"{', '.join(no_halves)} registered without forward/backward halves, whose memory is not "
               f"measured" if no_halves else "")
        if not mem_rows:
            cause = "the sweep ran with --no-memory" if not results.settings.get("memory", True) else why
            notes.append(f"memory_vs_T.png not drawn: no memory figures in the results ({cause})")
        elif no_halves:
            notes.append(f"memory_vs_T.png leaves out {why}")
    if mem_rows:
        def mem_series(sub: list[dict]):
            out = []
            for name in impls:
                pts = sorted((r for r in sub if r["impl"] == name), key=lambda r: r["T"])
                if not pts:
                    continue
                xs = [r["T"] for r in pts]
                out.append((name, xs, [r["peak"] / 2 ** 20 for r in pts], {**styles[name], "linestyle": "-"}))
                out.append((f"{name} (saved)", xs, [(r["saved"] or 0) / 2 ** 20 for r in pts],
                            {**styles[name], "linestyle": "--", "markerfacecolor": "none"}))
            return out
        p = _line_chart(plt, mem_rows, x="T", facet_keys=per_T, path=out / "memory_vs_T.png",
                        title=f"memory of one forward+backward: peak (solid) and saved for backward (dashed) - {where}",
                        ylabel="MiB", series=mem_series, notes=notes)
        if p is not None:
            written.append(p)
        plt.close("all")

    base = {_case_of(r): r["median"] for r in rows if r["impl"] == BASELINE}
    if not base and notes is not None:
        notes.append(f"ratio_to_{BASELINE}.png not drawn: no {BASELINE} points in the results")
    if base:
        def ratio_series(sub: list[dict]):
            out = []
            for name in impls:
                pts = sorted((r for r in sub if r["impl"] == name and _case_of(r) in base), key=lambda r: r["T"])
                if not pts:
                    continue
                ys = [r["median"] / base[_case_of(r)] for r in pts]
                style = {**styles[name], "linewidth": 2.5 if name == BASELINE else 1.5}
                out.append((name, [r["T"] for r in pts], ys, style))
            return out
        p = _line_chart(plt, rows, x="T", facet_keys=per_T, path=out / f"ratio_to_{BASELINE}.png",
                        title=f"time relative to {BASELINE} at the same point (below 1: faster than {BASELINE}) "
                              f"- {where}",
                        ylabel=f"time / {BASELINE} time", series=ratio_series, hline=1.0, notes=notes)
        if p is not None:
            written.append(p)
        plt.close("all")
    return written
