"""The `lstm-bench` command (also `python -m lstm_bench`).

    lstm-bench                      the main job: agreement check of every path, then a quick sweep
    lstm-bench check                agreement against a float64 reference, PASS/FAIL per tensor
    lstm-bench bench                a sweep, appended point by point to a JSON-lines file
    lstm-bench plot RESULTS         PNG charts of a sweep
    lstm-bench compare BASE NEW     per point NEW/BASE ratio, CI and verdict; exit 1 on a regression
    lstm-bench info                 the environment a result is recorded with
    lstm-bench flow ...             gradient flow through time (lstm_bench.flow)

Exit codes: 0 fine, 1 a check failed / a point failed / a regression, 2 bad input
(one line on stderr, never a traceback; set LSTM_BENCH_DEBUG=1 for one), 130 interrupted.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib
import importlib.util
import itertools
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_CHECK = {"T": 40, "B": 8, "I": 16, "H": 32}
# Repeats for `bench`: 7 per point keeps the exact Mann-Whitney test able to reach
# alpha = 0.05 after Holm's correction over up to 86 points (min p = 2 / C(14, 7)).
DEFAULT_REPEATS = 7


class UsageError(Exception):
    """Bad input on the command line: reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage block
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def _err(msg: str) -> None:
    print(f"lstm-bench: error: {msg}", file=sys.stderr)


def _warn(msg: str) -> None:
    print(f"lstm-bench: warning: {msg}", file=sys.stderr)


# --------------------------------------------------------------------------- arguments

def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def fraction(text: str) -> float:
    """0.1, or 10%."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction such as 0.1 or 10%, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a fraction >= 0, got {text!r}")
    return value


def probability(text: str) -> float:
    value = fraction(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a probability in (0, 1), got {text!r}")
    return value


def _flatten(values: Sequence[Sequence[Any]] | None) -> list | None:
    """`-T 10 100 -T 500` and `-T 10,100` both give [10, 100, 500]."""
    if not values:
        return None
    out: list = []
    for group in values:
        for v in group:
            if v not in out:
                out.append(v)
    return out


def _list_of(kind: Callable[[str], Any]) -> Callable[[str], list]:
    def parse(text: str) -> list:
        return [kind(part) for part in text.split(",") if part.strip()]
    parse.__name__ = getattr(kind, "__name__", "value")
    return parse


# --------------------------------------------------------------------------- --impl

def _import_target(module_name: str, spec: str) -> Any:
    if module_name.endswith(".py") or os.sep in module_name:
        path = Path(module_name).resolve()
        if not path.is_file():
            raise UsageError(f"--impl {spec}: no such file {module_name!r}")
        mod_name = "lstm_bench_user_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
        if mod_name in sys.modules:  # the same file twice in one process: the same functions
            return sys.modules[mod_name]
        loader_spec = importlib.util.spec_from_file_location(mod_name, path)
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[mod_name] = module
        try:
            loader_spec.loader.exec_module(module)
        except Exception as err:
            del sys.modules[mod_name]
            raise UsageError(f"--impl {spec}: importing {module_name} failed: {type(err).__name__}: {err}") from None
        return module
    # A console script's sys.path does not hold the working directory; the user's
    # module usually lives there.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(module_name)
    except ImportError as err:
        raise UsageError(f"--impl {spec}: cannot import module {module_name!r} ({err})") from None
    except Exception as err:
        raise UsageError(f"--impl {spec}: importing {module_name!r} failed: {type(err).__name__}: {err}") from None


def load_impl(spec: str) -> str:
    """Register the function named by `[NAME=]module:function` (or `path/file.py:function`); return its name.

    The function follows the contract `case -> Result`. Optional attributes on it:
    `devices` (default: every device), `forward` and `backward` (the two halves, so
    that the forward is timed alone and its saved activations measured).
    """
    from .devices import KNOWN_DEVICES
    from .registry import _REGISTRY, register_impl

    name, sep, target = spec.partition("=")
    if not sep:
        name, target = "", spec
    module_name, _, attr = target.rpartition(":")
    if not module_name or not attr:
        raise UsageError(f"--impl {spec!r}: expected a registered name or module:function")
    obj = _import_target(module_name, spec)
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UsageError(f"--impl {spec}: {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise UsageError(f"--impl {spec}: {attr!r} is not callable (it is a {type(obj).__name__})")
    name = name or attr.split(".")[-1]
    existing = _REGISTRY.get(name)
    if existing is not None:
        if existing.fn is obj:
            return name
        raise UsageError(f"--impl {spec}: the name {name!r} is taken by another implementation; "
                         f"name yours with --impl NAME={target}")
    devices = getattr(obj, "devices", KNOWN_DEVICES)
    forward, backward = getattr(obj, "forward", None), getattr(obj, "backward", None)
    if not (callable(forward) and callable(backward)):
        forward = backward = None
    try:
        register_impl(name, obj, devices, forward=forward, backward=backward, description=f"--impl {target}")
    except ValueError as err:
        raise UsageError(f"--impl {spec}: {err}") from None
    return name


def resolve_impls(specs: list[str] | None) -> list[str] | None:
    """Registered names for `--impl` values (names, or module:function to import and register)."""
    if not specs:
        return None
    from .registry import all_impls

    names = []
    for spec in specs:
        if spec in all_impls():
            name = spec
        elif ":" in spec:
            name = load_impl(spec)
        else:
            raise UsageError(f"unknown implementation {spec!r}; known: {', '.join(all_impls())} "
                             f"(or give module:function)")
        if name not in names:
            names.append(name)
    return names


# --------------------------------------------------------------------------- tables

def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, left: int = 1) -> str:
    """A plain-text table; the first `left` columns are left-aligned, the rest right-aligned."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def fmt(row: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

    lines = [fmt(cells[0]), "  ".join("-" * w for w in widths)]
    lines += [fmt(r) for r in cells[1:]]
    return "\n".join(line.rstrip() for line in lines)


def human_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable: GiB always returns")


def human_seconds(s: float | None) -> str:
    if s is None or not math.isfinite(s):
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.0f} us"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def spread(samples: Sequence[float]) -> float:
    """Half the interquartile range relative to the median (a robust +-)."""
    from .stats import quartiles

    q1, med, q3 = quartiles(samples)
    return (q3 - q1) / 2 / med if med > 0 else float("nan")


# --------------------------------------------------------------------------- check

def _check_one(name: str, case, reference: str):
    """(report or None, error text or None) for one implementation on one case."""
    from .registry import get_impl
    from .tolerance import check_against_reference

    try:
        return check_against_reference(get_impl(name), case, reference=reference), None
    except KeyboardInterrupt:
        raise
    except Exception as err:  # a broken implementation is a FAIL, not a crash of the harness
        return None, f"{type(err).__name__}: {err}"


def run_check(impls: list[str], sizes: list[tuple[int, int, int, int]], *, dtype: str, device: str, seed: int,
              reference: str, verbose: bool) -> bool:
    """Check every impl on every size; print the tables; True when everything passes."""
    import torch

    from .contract import make_case

    rows, ok = [], True
    for T, B, I, H in sizes:
        try:
            case = make_case(T, B, I, H, dtype=getattr(torch, dtype), device=device, seed=seed)
        except (RuntimeError, MemoryError) as err:  # e.g. a size too large to allocate
            raise UsageError(f"cannot make the case T={T} B={B} I={I} H={H} on {device}: "
                             f"{type(err).__name__}: {err}") from None
        for name in impls:
            report, error = _check_one(name, case, reference)
            if report is None:
                ok = False
                rows.append([name, "-", T, B, I, H, "-", "-", f"FAIL ({error})"])
                if verbose:
                    print(f"{name} | T={T} B={B} I={I} H={H}: FAIL, raised {error}\n")
                continue
            ok &= report.passed
            worst = max((r.worst for r in report.rows), default=0.0)
            notes = sorted({r.note for r in report.rows if r.note})
            status = "PASS" if report.passed else f"FAIL ({', '.join(r.name for r in report.failures)})"
            if notes:
                status += f" [{', '.join(notes)}]"
            rows.append([name, report.backend or "-", T, B, I, H, f"{report.max_rel:.2e}", f"{worst:.2e}", status])
            if verbose or not report.passed:
                print(report, end="\n\n")
    print(f"Agreement with {reference} in float64 ({dtype}, {device}, seed {seed}); "
          f"err/bound <= 1 passes (policy: lstm_bench/tolerance.py)")
    print(table(["impl", "backend", "T", "B", "I", "H", "max rel", "err/bound", "result"], rows, left=2))
    return ok


def cmd_check(args: argparse.Namespace) -> int:
    from .contract import check_dtype
    from .devices import check_device
    from .registry import available_impls, get_impl

    check_dtype(args.dtype)
    check_device(args.device)
    get_impl(args.reference)  # an unknown reference is bad input (exit 2), not a FAIL of every path
    impls = resolve_impls(_flatten(args.impl)) or available_impls(args.device)
    for name in impls:
        impl = get_impl(name)
        if args.device not in impl.devices:
            raise UsageError(f"implementation {name!r} does not run on {args.device} (runs on {list(impl.devices)})")
    axes = {k: _flatten(getattr(args, k)) or [DEFAULT_CHECK[k]] for k in ("T", "B", "I", "H")}
    sizes = list(itertools.product(axes["T"], axes["B"], axes["I"], axes["H"]))
    ok = run_check(impls, sizes, dtype=args.dtype, device=args.device, seed=args.seed,
                   reference=args.reference, verbose=not args.summary)
    return EXIT_OK if ok else EXIT_FAIL


# --------------------------------------------------------------------------- bench

def _grid_from_args(args: argparse.Namespace):
    from .grid import BENCH_GRID, QUICK_GRID

    base = QUICK_GRID if args.quick else BENCH_GRID
    axes: dict[str, Any] = {}
    impls = resolve_impls(_flatten(args.impl))
    if impls:
        axes["impls"] = tuple(impls)
    for flag, axis in (("T", "T"), ("H", "H"), ("B", "B"), ("I", "I"), ("device", "devices"), ("dtype", "dtypes")):
        values = _flatten(getattr(args, flag))
        if values:
            axes[axis] = tuple(values)
    return base.replace(**axes) if axes else base


def _grid_dict(grid) -> dict:
    return {k: (list(v) if v is not None else None) for k, v in dataclasses.asdict(grid).items()}


def _label(point) -> str:
    return f"{point.impl} T={point.T} B={point.B} I={point.I} H={point.H} {point.device} {point.dtype}"


def bench_table(records: list[dict], peaks: dict) -> str:
    """The sweep's table, one row per point record."""
    rows = []
    for rec in records:
        p = rec["point"]
        head = [p["impl"], p["T"], p["B"], p["H"], p["device"]]
        if rec["status"] != "ok":
            what = rec.get("error") or rec.get("reason") or ""
            rows.append(head + ["-"] * 7 + [f"{rec['status'].upper()}: {what[:70]}"])
            continue
        m = rec["measurement"]
        fb = m["forward_backward_s"]
        med = statistics.median(fb)
        fwd = statistics.median(m["forward_s"]) if m["forward_s"] else None
        peak = peaks.get(f"{p['device']}/{p['dtype']}")
        gflops = m.get("gflops")
        pct = f"{100 * gflops / peak:.0f}%" if gflops and peak else "-"
        err = m.get("max_rel_error")
        rows.append(head + [f"{human_seconds(med)} ±{100 * spread(fb):.0f}%", human_seconds(fwd),
                            f"{gflops:.1f}" if gflops else "-", pct, human_bytes(m.get("saved_bytes")),
                            human_bytes(m.get("peak_bytes")), f"{err:.1e}" if err is not None else "-", "ok"])
    return table(["impl", "T", "B", "H", "device", "fwd+bwd (median ±IQR/2)", "fwd", "GFLOP/s", "% peak",
                  "saved", "peak mem", "max rel err", "status"], rows)


def sweep(points: list, writer, *, repeats: int, warmup: int, seed: int, accuracy: bool, memory: bool,
          progress_enabled: bool = True) -> dict[str, int]:
    """Measure `points` not yet in `writer.done`, appending each as it finishes; counts per status."""
    from .flops import lstm_flops
    from .grid import skip_reason
    from .measure import measure_point
    from .progress import Progress

    todo = [p for p in points if p.key not in writer.done]
    counts = {"ok": 0, "failed": 0, "skipped": 0, "resumed": len(points) - len(todo)}
    reasons = [skip_reason(p) for p in todo]
    weights = [0.0 if r else lstm_flops(p.T, p.B, p.I, p.H, backward=True) * (repeats + warmup + 3)
               for p, r in zip(todo, reasons)]
    bar = Progress(weights, enabled=progress_enabled)
    for i, (point, reason) in enumerate(zip(todo, reasons)):
        if reason is not None:
            writer.point(point.as_dict(), point.key, "skipped", reason=reason)
            counts["skipped"] += 1
            bar.done(i)
            continue
        bar.start(i, _label(point))
        try:
            m = measure_point(point, repeats=repeats, warmup=warmup, seed=seed, accuracy=accuracy, memory=memory)
        except KeyboardInterrupt:
            bar.finish("interrupted")
            raise
        except Exception as err:  # OOM or a broken path: record it and go on
            writer.point(point.as_dict(), point.key, "failed", error=f"{type(err).__name__}: {err}".strip())
            counts["failed"] += 1
            _release_memory(point.device)
        else:
            writer.point(point.as_dict(), point.key, "ok", measurement=m.to_dict())
            counts["ok"] += 1
        bar.done(i)
    bar.finish("sweep done")
    return counts


def _release_memory(device: str) -> None:
    import gc

    gc.collect()
    if device == "cuda":
        import torch

        torch.cuda.empty_cache()


def _peaks(points: list, threads: int, measure: bool) -> dict:
    from .grid import skip_reason
    from .machine import matmul_peak_gflops

    if not measure:
        return {}
    pairs = sorted({(p.device, p.dtype) for p in points if skip_reason(p) is None})
    return {f"{d}/{t}": matmul_peak_gflops(d, t, threads=threads) for d, t in pairs}


def _threads(args: argparse.Namespace) -> int:
    from .timing import THREADS_ENV, default_threads, set_threads

    if getattr(args, "threads", None):
        # measure_point fixes the thread count from the environment: set it there.
        os.environ[THREADS_ENV] = str(args.threads)
    return set_threads(default_threads())


def cmd_bench(args: argparse.Namespace) -> int:
    from .grid import skip_reason
    from .machine import environment
    from .results import Writer, load, make_header

    if args.resume and not args.out:
        raise UsageError("--resume needs --out FILE, the results file of the sweep to continue")
    grid = _grid_from_args(args)
    points = grid.points()
    threads = _threads(args)
    out = Path(args.out or time.strftime("lstm-bench-%Y%m%d-%H%M%S.jsonl"))
    # Fail on the file before spending minutes on the matmul peak (Writer checks again, atomically).
    if args.resume:
        load(out)
    elif out.exists():
        raise UsageError(f"{out}: already exists; pass --resume to continue that sweep, or choose another "
                         f"--out (results are never overwritten)")
    env = environment(threads=threads, peak=False)
    env["matmul_peak_gflops"] = _peaks(points, threads, measure=not args.no_peak)
    settings = {"repeats": args.repeats, "warmup": args.warmup, "seed": args.seed,
                "accuracy": not args.no_accuracy, "memory": not args.no_memory}
    header = make_header(env, _grid_dict(grid), settings)
    writer = Writer(out, header, resume=args.resume)
    if writer.existing is not None:
        header = writer.existing.header  # the file's peaks, so the table stays consistent
    runnable = sum(skip_reason(p) is None for p in points)
    print(f"Sweep of {len(points)} points ({runnable} runnable here, {len(writer.done)} already in {out}); "
          f"{args.repeats} repeats, {threads} threads. Results: {out}", file=sys.stderr)
    try:
        counts = sweep(points, writer, repeats=args.repeats, warmup=args.warmup, seed=args.seed,
                       accuracy=not args.no_accuracy, memory=not args.no_memory,
                       progress_enabled=not args.no_progress)
    except KeyboardInterrupt:
        writer.close()
        done = len(load(out).records)
        how = "--resume" if args.out else f"--out {out} --resume"
        print(f"lstm-bench: interrupted; {done} finished points are safe in {out}. Resume with the same "
              f"command plus {how}", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        writer.close()
    results = load(out)
    records = [r for r in results.by_key().values() if r["status"] != "skipped"]
    peaks = header["env"].get("matmul_peak_gflops", {})
    print(bench_table(records, peaks))
    _print_skips(results.records)
    if peaks:
        print("% peak: GFLOP/s (GEMM FLOPs of forward+backward, lstm_bench/flops.py) over this machine's "
              "measured matmul peak: " + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in peaks.items()))
    print(f"{counts['ok']} measured, {counts['failed']} failed, {counts['skipped']} skipped"
          + (f", {counts['resumed']} already in the file" if counts["resumed"] else "") + f"; results in {out}")
    return EXIT_FAIL if any(r["status"] == "failed" for r in results.by_key().values()) else EXIT_OK


def _print_skips(records: list[dict]) -> None:
    reasons: dict[str, int] = {}
    for r in records:
        if r["status"] == "skipped":
            reasons[r.get("reason", "?")] = reasons.get(r.get("reason", "?"), 0) + 1
    for reason, n in reasons.items():
        print(f"skipped {n} point(s): {reason}")


# --------------------------------------------------------------------------- main job

def cmd_default(args: argparse.Namespace) -> int:
    """Agreement of every available path, then a quick sweep of QUICK_GRID (no file unless --out)."""
    import tempfile

    from .devices import available_devices
    from .grid import QUICK_GRID
    from .registry import available_impls
    from .results import Writer, load, make_header

    threads = _threads(args)
    ok = True
    for device in available_devices():
        ok &= run_check(available_impls(device), [tuple(DEFAULT_CHECK[k] for k in "TBIH")], dtype="float32",
                        device=device, seed=0, reference="autograd", verbose=False)
        print()
    points = QUICK_GRID.points()
    from .machine import environment

    env = environment(threads=threads, peak=False)
    env["matmul_peak_gflops"] = _peaks(points, threads, measure=True)
    settings = {"repeats": args.repeats, "warmup": 1, "seed": 0, "accuracy": True, "memory": True}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out) if args.out else Path(tmp) / "quick.jsonl"
        with Writer(out, make_header(env, _grid_dict(QUICK_GRID), settings)) as writer:
            counts = sweep(points, writer, repeats=args.repeats, warmup=1, seed=0, accuracy=True, memory=True)
        results = load(out)
    print(f"Quick sweep (QUICK_GRID, {args.repeats} repeats, {threads} threads, torch {env['torch']}, "
          f"{env['cpu']}):")
    print(bench_table([r for r in results.records if r["status"] != "skipped"], env["matmul_peak_gflops"]))
    _print_skips(results.records)
    print(f"\nagreement: {'all PASS' if ok else 'FAILURES above'}; sweep: {counts['ok']} measured, "
          f"{counts['failed']} failed, {counts['skipped']} skipped."
          + (f" Results in {args.out}." if args.out else " Full sweeps: lstm-bench bench --help"))
    return EXIT_OK if ok and not counts["failed"] else EXIT_FAIL


# --------------------------------------------------------------------------- compare

def cmd_compare(args: argparse.Namespace) -> int:
    from .results import ResultsError, comparability, load_many, pooled_samples
    from .stats import compare_samples, min_p

    base_runs, new_runs = load_many(args.base), load_many(args.new)
    base, new = base_runs[0], new_runs[0]
    problems, notes = comparability(base, new)
    if problems and not args.force:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ResultsError(f"cannot compare {base.path} with {new.path}: {problems[0]}{more}; "
                           f"timings would not be comparable (pass --force to compare anyway)")
    for p in problems:
        _warn(p + " (compared anyway: --force)")
    field = f"{args.metric}_s"
    b_samples, points = pooled_samples(base_runs, field)
    n_samples, _ = pooled_samples(new_runs, field)
    pairs = {k: (b_samples[k], n_samples[k]) for k in b_samples if k in n_samples}
    statuses = {}
    for run in base_runs + new_runs:
        for key, rec in run.by_key().items():
            statuses.setdefault(key, set()).add(rec["status"])
    missing = sorted(k for k, st in statuses.items() if k not in pairs and st != {"skipped"})
    status_of = lambda runs: {k: r["status"] for run in runs for k, r in run.by_key().items()}  # noqa: E731
    base_status, new_status = status_of(base_runs), status_of(new_runs)
    broken = sorted(k for k in base_status if base_status[k] == "ok" and new_status.get(k) == "failed")
    if not pairs:
        raise ResultsError(f"no point has {args.metric} times in both {args.base} and {args.new}")
    verdicts = compare_samples(pairs, threshold=args.threshold, alpha=args.alpha, correction=args.correction)
    n = min(len(a) for a, _ in pairs.values())
    m = min(len(b) for _, b in pairs.values())
    k = len(pairs) if args.correction == "holm" else 1
    if min_p(n, m) * k >= args.alpha:
        _warn(f"with {n} vs {m} repeats and {len(pairs)} points, no point can be judged significant at "
              f"alpha={args.alpha} ({args.correction} correction); record more --repeats")
    rows = []
    for v in verdicts:
        p = points[v.key]
        verdict = v.verdict + ("  REGRESSION" if v.regression else "")
        rows.append([p["impl"], p["T"], p["B"], p["I"], p["H"], p["device"], p["dtype"],
                     human_seconds(v.base_median), human_seconds(v.new_median),
                     f"{v.ratio:.3f}", f"[{v.ci_low:.3f}, {v.ci_high:.3f}]", f"{v.p_adjusted:.2g}", verdict])
    runs = f" ({len(base_runs)} vs {len(new_runs)} runs pooled)" if len(base_runs) + len(new_runs) > 2 else ""
    print(f"{args.metric.replace('_', '+')} time, NEW {args.new} / BASE {args.base}{runs}")
    for note in notes:
        print(f"  {note}")
    print(table(["impl", "T", "B", "I", "H", "device", "dtype", "base", "new", "new/base", "95% CI",
                 "p (Holm)" if args.correction == "holm" else "p", "verdict"], rows))
    for key in missing:
        print(f"not compared (not measured in both): {key}" + ("  FAILED in NEW" if key in broken else ""))
    counts = {s: sum(v.verdict == s for v in verdicts) for s in ("faster", "slower", "no change")}
    regressions = [v for v in verdicts if v.regression]
    print(f"{len(verdicts)} points: {counts['faster']} faster, {counts['slower']} slower, "
          f"{counts['no change']} no change (Mann-Whitney U, alpha={args.alpha}); "
          f"{len(regressions)} significantly slower by more than {100 * args.threshold:.0f}%"
          + (f"; {len(broken)} measured in BASE but failed in NEW" if broken else ""))
    if args.json:
        Path(args.json).write_text(json.dumps([v.to_dict() for v in verdicts], indent=1))
    return EXIT_FAIL if regressions or broken else EXIT_OK


# --------------------------------------------------------------------------- plot, info, flow

def cmd_plot(args: argparse.Namespace) -> int:
    from .plots import plot_results
    from .results import load

    results = load(args.results)
    out_dir = Path(args.out_dir) if args.out_dir else results.path.with_name(results.path.stem + "-plots")
    notes: list[str] = []
    for path in plot_results(results, out_dir, notes):
        print(path)
    for note in notes:
        print(note, file=sys.stderr)
    return EXIT_OK


def cmd_info(args: argparse.Namespace) -> int:
    from .machine import environment

    threads = _threads(args)
    env = environment(threads=threads, peak=not args.no_peak, device=args.device, dtype=args.dtype)
    if args.json:
        print(json.dumps(env, indent=1))
        return EXIT_OK
    flat: list[tuple[str, Any]] = []

    def walk(prefix: str, obj: Any) -> None:
        if isinstance(obj, dict):
            for key, val in obj.items():
                walk(f"{prefix}.{key}" if prefix else key, val)
        else:
            flat.append((prefix, obj))

    walk("", env)
    width = max(len(k) for k, _ in flat)
    for key, val in flat:
        print(f"{key.ljust(width)}  {val}")
    return EXIT_OK


def _flow_module():
    try:
        return importlib.import_module("lstm_bench.flow.cli")
    except ModuleNotFoundError as err:
        if err.name and err.name.startswith("lstm_bench.flow"):
            raise UsageError("flow: the gradient-flow module lstm_bench.flow is not in this installation") from None
        raise


def cmd_flow(args: argparse.Namespace) -> int:
    flow = _flow_module()
    parser = _Parser(prog="lstm-bench flow", description="Gradient flow through time")
    flow.add_arguments(parser)
    return int(flow.run(parser.parse_args(args.flow_args)) or 0)


# --------------------------------------------------------------------------- parser

def _add_sizes(p: argparse.ArgumentParser, what: str) -> None:
    for flag, name in (("T", "sequence length"), ("B", "batch size"), ("I", "input size"), ("H", "hidden size")):
        p.add_argument(f"-{flag}", dest=flag, type=_list_of(positive_int), action="append", metavar="N[,N...]",
                       help=f"{name} ({what})")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lstm-bench", description=__doc__.split("\n\n")[0],
                     formatter_class=argparse.RawDescriptionHelpFormatter,
                     epilog="With no subcommand: agreement check of every path, then a quick sweep.")
    parser.add_argument("--repeats", type=positive_int, default=3, help="repeats per point of the quick sweep")
    parser.add_argument("--threads", type=positive_int, help="CPU threads (default: min(4, CPUs))")
    parser.add_argument("--out", help="also keep the quick sweep's results in this new file")
    parser.set_defaults(func=cmd_default)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("check", help="agreement of every path against a float64 reference")
    p.add_argument("--impl", type=_list_of(str), action="append", metavar="NAME|module:function",
                   help="paths to check (default: all available on --device); repeatable")
    _add_sizes(p, "default " + ", ".join(f"{k}={v}" for k, v in DEFAULT_CHECK.items())
               + "; several values check every combination")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64", "float16", "bfloat16"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reference", default="autograd", help="path run in float64 as the truth (default autograd)")
    p.add_argument("--summary", action="store_true", help="only the summary table, not each path's tensors")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("bench", help="sweep the grid; results appended to a JSON-lines file point by point")
    p.add_argument("--impl", type=_list_of(str), action="append", metavar="NAME|module:function",
                   help="paths to sweep (default: the grid's); repeatable")
    _add_sizes(p, "default: the grid's axis; I defaults to H")
    p.add_argument("--device", type=_list_of(str), action="append", help="devices (default cpu,cuda)")
    p.add_argument("--dtype", type=_list_of(str), action="append", help="dtypes (default float32)")
    p.add_argument("--quick", action="store_true", help="start from QUICK_GRID instead of BENCH_GRID")
    p.add_argument("--out", help="results file (default lstm-bench-YYYYmmdd-HHMMSS.jsonl; never overwritten)")
    p.add_argument("--resume", action="store_true", help="continue --out, skipping the points already in it")
    p.add_argument("--repeats", type=positive_int, default=DEFAULT_REPEATS)
    p.add_argument("--warmup", type=non_negative_int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=positive_int, help="CPU threads (default: min(4, CPUs))")
    p.add_argument("--no-accuracy", action="store_true", help="skip the max-rel-error measurement")
    p.add_argument("--no-memory", action="store_true", help="skip the saved/peak memory measurement")
    p.add_argument("--no-peak", action="store_true", help="do not measure the matmul peak")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("plot", help="PNG charts of a results file")
    p.add_argument("results")
    p.add_argument("--out-dir", help="where the PNGs go (default: RESULTS-plots/ next to the file)")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("compare", help="NEW/BASE per point with CI and verdict; exit 1 on a regression")
    p.add_argument("base", help="results file, a directory of them, or a comma-separated list (runs pooled)")
    p.add_argument("new", help="the same for the change under test")
    p.add_argument("--threshold", type=fraction, default=0.10,
                   help="a significant slowdown larger than this fails (default 0.10 = 10%%)")
    p.add_argument("--alpha", type=probability, default=0.05, help="significance level (default 0.05)")
    p.add_argument("--correction", choices=["holm", "none"], default="holm",
                   help="multiple-comparison correction over the points (default holm)")
    p.add_argument("--metric", choices=["forward_backward", "forward"], default="forward_backward")
    p.add_argument("--force", action="store_true",
                   help="compare even across torch versions, thread counts, machines or grids (warns)")
    p.add_argument("--json", help="also write the verdicts to this JSON file")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("info", help="the environment a result is recorded with")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-peak", action="store_true", help="do not measure (or read) the matmul peak")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--threads", type=positive_int)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("flow", help="gradient flow through time (see lstm-bench flow --help)", add_help=False)
    p.add_argument("flow_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_flow)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script passes it to sys.exit)."""
    from .results import ResultsError

    debug = bool(os.environ.get("LSTM_BENCH_DEBUG"))
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["flow"]:  # everything after `flow` belongs to the flow module's own parser
            return cmd_flow(argparse.Namespace(flow_args=argv[1:]))
        args = build_parser().parse_args(argv)
        return int(args.func(args))
    except KeyboardInterrupt:
        print("lstm-bench: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`lstm-bench check | head`): not an error of ours. Point
        # stdout at devnull so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (UsageError, ResultsError, ValueError, KeyError, OSError, ImportError) as err:
        if debug:
            raise
        msg = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        _err(" ".join(str(msg).split()) or type(err).__name__)
        return EXIT_USAGE
