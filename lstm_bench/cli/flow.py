"""`lstm-bench flow` (also `python -m lstm_bench flow`): both gradient-flow studies, tables, JSON, PNGs.

The studies are `lstm_bench.flow`'s; this module parses the flags, prints the tables
and writes flow.json and the plots. Its flags are its own (everything after `flow` on
the command line): `add_arguments(parser)` adds them, `run(args)` runs.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from ..core import strict_json
from ..flow import plots
from ..flow.forget import decay_table
from ..flow.memory_length import check_threshold
from ..flow.study import FlowSettings, compare_models, fmt, init_study
from .args import Parser, new_output_dir, positive_int
from .output import table as text_table

DISTANCES = (0, 1, 2, 5, 10, 20, 50)


def _threshold(text: str) -> float:
    try:
        return check_threshold(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the flow flags to `parser` (the `flow` subcommand's, or a standalone one)."""
    d = FlowSettings()
    parser.epilog = ("Runs the RNN/GRU/LSTM comparison and the forget-gate initialisation study (bias 0, 1, 2, "
                     "chrono), prints the tables, and writes flow.json and PNG plots into the folder it names. "
                     "The measures and the seed document's claims, measured: docs/flow.md.")
    parser.add_argument("--out-dir", help="folder for flow.json and the PNGs "
                        "(default: lstm-bench-flow-YYYYmmdd-HHMMSS in the current folder)")
    parser.add_argument("-T", "--seq-len", type=positive_int, default=d.seq_len, help=f"sequence length (default {d.seq_len})")
    parser.add_argument("-H", "--hidden-size", type=positive_int, default=d.hidden_size, help=f"hidden size (default {d.hidden_size})")
    parser.add_argument("-I", "--input-size", type=positive_int, default=d.input_size, help=f"input size (default {d.input_size})")
    parser.add_argument("--samples", type=positive_int, default=d.samples,
                        help=f"input sequences per model draw (default {d.samples})")
    parser.add_argument("--seeds", type=positive_int, default=d.seeds, help=f"model draws, seeds seed..seed+N-1 (default {d.seeds})")
    parser.add_argument("--seed", type=int, default=d.seed, help="first seed (default 0)")
    parser.add_argument("--threshold", type=_threshold, default=d.threshold,
                        help=f"effective memory: fraction of the peak gradient still counted, in (0, 1] (default {d.threshold})")
    parser.add_argument("--loss", choices=["last", "every"], default=d.loss,
                        help="loss on the last step's output (default, as the seed) or on every step")
    parser.add_argument("--device", default=d.device, help="cpu or cuda (default cpu)")
    parser.add_argument("--dtype", default=d.dtype, choices=["float64", "float32"],
                        help="default float64: ratios down to 1e-30 stay representable")
    parser.add_argument("--jacobian-samples", type=positive_int, default=d.jacobian_samples,
                        help=f"samples in the Jacobian decomposition (default {d.jacobian_samples})")
    parser.add_argument("--jacobian-steps", type=positive_int, default=d.jacobian_steps,
                        help=f"steps, spread over the sequence, of the Jacobian decomposition (default {d.jacobian_steps})")
    parser.add_argument("--threads", type=positive_int, default=1,
                        help="torch CPU threads (default 1: the steps are small ops, which extra threads slow down)")
    parser.add_argument("--json", action="store_true", help="print the JSON document instead of the tables")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")


def settings_of(args: argparse.Namespace) -> FlowSettings:
    return FlowSettings(seq_len=args.seq_len, hidden_size=args.hidden_size, input_size=args.input_size,
                    samples=args.samples, seeds=args.seeds, seed=args.seed, threshold=args.threshold,
                    loss=args.loss, dtype=args.dtype, device=args.device,
                    jacobian_samples=args.jacobian_samples, jacobian_steps=args.jacobian_steps).check()


def table(headers: list[str], rows: list[list]) -> str:
    """`output.table` of the cells formatted by `study.fmt` (first column left-aligned)."""
    return text_table(headers, [[fmt(v) for v in row] for row in rows])


def summary_table(summaries) -> str:
    rows, underflow = [], False
    for s in summaries:
        r = s.row()
        for key in ("decay x", "decay h", "decay c"):
            if r[key] == 0.0:  # the farthest step's gradient underflowed to 0 in some seed
                r[key], underflow = "0 (underflow)", True
        mem = f"{r['memory']:.1f} ± {r['memory sd']:.1f}" + (f" ({100 * r['censored']:.0f}% cens.)" if r["censored"] else "")
        rows.append([r["model"], r["decay x"], r["decay h"], r["decay c"], mem, r.get("f median"),
                     r.get("direct/indirect")])
    out = table(["model", "decay x", "decay h", "decay c", "eff. memory (steps)", "median f",
                 "‖direct‖/‖indirect‖"], rows)
    return out + ("\n(underflow: a gradient fell below the dtype's smallest number; use --dtype float64)"
                  if underflow else "")


def curve_table(summaries, T: int) -> str:
    ds = [d for d in DISTANCES if d < T] + [T - 1]
    rows = [[s.name, *(s.curve("x")["mean"][d] for d in ds)] for s in summaries]  # (T,) by distance
    return table(["mean ‖dL/dx‖ at distance", *(str(d) for d in ds)], rows)


def jacobian_table(summaries) -> str:
    rows, seen = [], set()
    for s in summaries:
        if s.jacobian is None or id(s.jacobian) in seen:  # one model shared by both studies: once
            continue
        seen.add(id(s.jacobian))
        m = s.jacobian.summary()
        rows.append([s.name, *(m[f"{k} (median)"] for k in ("direct", "i", "f", "g", "indirect", "total")),
                     m["direct/indirect (median)"], m["direct/indirect (min)"]])
    return table(["median over steps of ‖·‖₂", "direct", "via i", "via f", "via g", "indirect", "total",
                  "ratio", "min ratio"], rows)


def decay_rows() -> tuple[list[str], list[list]]:
    rows = decay_table()
    headers = list(rows[0])
    return headers, [[r[h] for h in headers] for r in rows]


def run(args: argparse.Namespace) -> int:
    """Run both studies with `args` from `add_arguments`; write JSON and PNGs; return 0."""
    settings = settings_of(args)
    out_dir = new_output_dir(args.out_dir or time.strftime("lstm-bench-flow-%Y%m%d-%H%M%S"), "--out-dir")
    say = (lambda *a, **k: print(*a, file=sys.stderr, **k)) if args.json else print
    say(f"gradient flow: T={settings.seq_len} H={settings.hidden_size} I={settings.input_size}, "
        f"{settings.samples} samples x {settings.seeds} seeds from seed {settings.seed}, loss on "
        f"{'the last step' if settings.loss == 'last' else 'every step'}, {settings.dtype} on {settings.device}")
    started, threads = time.perf_counter(), torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        memo: dict = {}
        models = compare_models(settings, memo=memo)
        inits = init_study(settings, memo=memo)
    except BaseException:
        out_dir.rmdir()  # made empty before the work (so that a bad --out-dir fails first); leave nothing
        raise
    finally:
        torch.set_num_threads(threads)
    elapsed = time.perf_counter() - started
    decay_headers, decay_cells = decay_rows()
    doc = {
        "settings": settings.to_dict(), "torch": torch.__version__, "seconds": elapsed,
        "comparison": [s.to_dict() for s in models], "init_study": [s.to_dict() for s in inits],
        "decay_table": decay_table(),
    }
    (out_dir / "flow.json").write_text(strict_json.dumps(doc, indent=1))

    if args.json:
        print(strict_json.dumps(doc))
    else:
        dist = "distance from loss" if settings.loss == "last" else "distance from the last step"
        print(f"\nRNN vs GRU vs LSTM (decay = ‖∂L/∂·_1‖ / ‖∂L/∂·_T‖, geometric mean over seeds; "
              f"effective memory at threshold {settings.threshold:g}, mean ± sd over samples)")
        print(summary_table(models))
        print(f"\nmean ‖∂L/∂x‖ by {dist} (steps)")
        print(curve_table(models, settings.seq_len))
        print("\nforget-gate initialisation study (chrono: t_max = T)")
        print(summary_table(inits))
        print(f"\nterms of ∂c_t/∂c_(t-1), spectral norms, first seed, {settings.jacobian_samples} samples, "
              f"{settings.jacobian_steps} steps")
        print(jacobian_table(models + inits))
        print("\nconstant forget gate f: gradient left after T steps, f^T (simulate_gradient_decay)")
        print(table(decay_headers, decay_cells))
    written = [out_dir / "flow.json"]
    if not args.no_plots:
        written += _plots(models, inits, out_dir, settings, say)
    say(f"\n{len(written)} files in {out_dir}/ ({elapsed:.1f} s of measurement):")
    for path in written:
        say(f"  {path}")
    return 0


def _plots(models, inits, out_dir: Path, settings: FlowSettings, say) -> list[Path]:
    try:
        plots.pyplot()  # matplotlib, an optional dependency, loaded here
    except ImportError as err:
        print(f"lstm-bench flow: warning: no PNG plots: {err}", file=sys.stderr)
        return []
    size = f"T={settings.seq_len}, H={settings.hidden_size}, I={settings.input_size}, " \
           f"{settings.samples} samples x {settings.seeds} seeds"
    return [
        plots.plot_curves(models, out_dir / "models_dx.png", loss=settings.loss,
                          title=f"Gradient reaching each input step: RNN vs GRU vs LSTM ({size})"),
        plots.plot_curves(models, out_dir / "models_dc.png", loss=settings.loss,
                          which="c", title=f"Gradient on the LSTM cell state ({size})"),
        plots.plot_memory(models, out_dir / "models_memory.png", title=f"Effective memory and decay ratio ({size})"),
        plots.plot_curves(inits, out_dir / "init_dx.png", loss=settings.loss,
                          title=f"Forget-gate initialisation: gradient reaching each input step ({size})"),
        plots.plot_memory(inits, out_dir / "init_memory.png",
                          title=f"Forget-gate initialisation: effective memory and decay ratio ({size})"),
        plots.plot_jacobian(inits, out_dir / "init_jacobian.png",
                            title="Direct (forget gate) vs indirect (through h_{t−1}) terms of ∂c_t/∂c_{t−1}"),
        plots.plot_forget(inits, out_dir / "init_forget.png", title="The forget-gate highway"),
    ]


def add_parser(sub: argparse._SubParsersAction) -> None:
    # Everything after `flow` goes to the flow parser (`main` hands it over before argparse
    # sees it); this entry only lists the command in `lstm-bench --help`.
    sub.add_parser("flow", help="gradient flow through time (see lstm-bench flow --help)", add_help=False)


def main(argv: list[str]) -> int:
    """`lstm-bench flow ARGV...`: parse with the flow flags and run."""
    parser = Parser(prog="lstm-bench flow", description="Gradient flow through time")
    add_arguments(parser)
    return int(run(parser.parse_args(argv)) or 0)
