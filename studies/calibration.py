"""Calibration studies behind the README's "Comparing on a noisy machine" (not a test: they take an hour).

    python -m studies.calibration ab [--trials-aa 20] [--trials 10] [--out DIR] [--neighbour]
        `lstm-bench ab` on the CI grid, BASE = NEW = this checkout, NEW with
        $LSTM_BENCH_INJECT_SLOWDOWN = 0 (A/A), 0.05 and 0.10; levels interleaved
        (A/A, 5 %, A/A, 10 %, ...) so that the machine's drift falls on all alike. Prints
        per level: trials, each trial's outcome (exit 0 passed, 1 failed, 3 inconclusive),
        the points' outcomes (regression, slower, faster, no change, inconclusive),
        measured ratios, wall time and load (and how many points were measured under
        load). `--neighbour` keeps one single-threaded busy loop running beside the
        trials. Every trial's `--json` is kept in DIR (re-read with `table DIR`).
    python -m studies.calibration table DIR [--threshold 0.05]
        the same table from the kept trials, verdicts recomputed from their pairs
    python -m studies.calibration asv [--trials 5] [--out DIR]
        the A/A false-alarm rate of `asv continuous --interleave-rounds` with the settings of
        asv.conf.json and benchmarks/bench_lstm.py (TimeStep: rounds 2, up to 5 samples a
        round), on the CI grid (LSTM_BENCH_GRID=ci, 1 thread), in a scratch clone whose two
        commits hold identical code
    python -m studies.calibration instructions [--runs 3]
        instruction counts (callgrind) of a few small CPU points, run to run
    python -m studies.calibration peak
        the matmul peak per library (MKL, oneDNN) and dtype, as `bench` measures it

Every study prints the CPU (`lstm-bench info --no-peak`'s cpu field), the load average
before and after, and the date; rerun it on the machine whose figures you want.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LEVELS = (0.0, 0.05, 0.10)


def header(what: str) -> None:
    sys.path.insert(0, str(ROOT))
    from lstm_bench.machine.environment import cpu_name

    print(f"# {what}: {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC, CPU {cpu_name()} "
          f"({os.cpu_count()} CPUs), load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}", flush=True)


def footer() -> None:
    print(f"# done {_dt.datetime.now(_dt.timezone.utc):%H:%M} UTC, load average {os.getloadavg()[0]:.2f} "
          f"{os.getloadavg()[1]:.2f}", flush=True)


# --- ab -----------------------------------------------------------------------------------------------------

def ab_schedule(trials_aa: int, trials: int) -> list[float]:
    """A/A, 5 %, A/A, 10 %, ... : the injected levels interleaved with the A/A trials."""
    order: list[float] = []
    counts = {0.0: trials_aa, 0.05: trials, 0.10: trials}
    while any(counts.values()):
        for level in (0.0, 0.05, 0.0, 0.10):
            if counts[level]:
                order.append(level)
                counts[level] -= 1
    return order


def ab_trial(level: float, out: Path, extra: list[str]) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    argv = [sys.executable, "-m", "lstm_bench", "ab", "--base", sys.executable, "--new", sys.executable,
            "--base-env", f"PYTHONPATH={ROOT}", "--new-env", f"PYTHONPATH={ROOT}",
            "--new-env", f"LSTM_BENCH_INJECT_SLOWDOWN={level}", "--json", str(out), "--no-progress", *extra]
    t0 = time.perf_counter()
    run = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    if run.returncode not in (0, 1, 3):
        raise SystemExit(f"ab exited {run.returncode}: {run.stderr.strip()[-500:]}")
    data = json.loads(out.read_text())
    data["calibration"] = {"level": level, "exit": run.returncode, "wall": wall, "argv": argv[3:]}
    out.write_text(json.dumps(data))
    return data


def reanalyse(data: dict, threshold: float | None, alpha: float | None) -> dict:
    """The trial's verdicts and exit recomputed from its stored pairs with this checkout's statistics."""
    sys.path.insert(0, str(ROOT))
    from lstm_bench.comparison.stats import compare_pairs

    threshold = data["threshold"] if threshold is None else threshold
    alpha = data["alpha"] if alpha is None else alpha
    measured = {Point_key(r["point"]): (r["base_s"], r["new_s"], r.get("batch") or None) for r in data["runs"]
                if len(r["base_s"]) >= 2 and not (r["base_error"] or r["new_error"] or r["skipped"])}
    verdicts = [v.to_dict() for v in compare_pairs(measured, threshold=threshold, alpha=alpha)]
    broken = any(r["new_error"] for r in data["runs"])
    out = dict(data, verdicts=verdicts)
    code = 1 if broken or any(v["outcome"] == "regression" for v in verdicts) else \
        3 if any(v["outcome"] == "inconclusive" for v in verdicts) else 0
    out["calibration"] = dict(data["calibration"], exit=code)
    return out


def _under_load(run: dict) -> bool:
    from lstm_bench.machine.load import Load

    return bool(run.get("load")) and Load.from_json(run["load"]).under_load


def Point_key(d: dict) -> str:
    from lstm_bench.bench.grid import Point

    return Point.from_dict(d).key


def ab_table(trials: list[dict], threshold: float | None = None, alpha: float | None = None) -> str:
    sys.path.insert(0, str(ROOT))
    from lstm_bench.cli.output import table

    trials = [reanalyse(t, threshold, alpha) for t in trials]
    rows = []
    for level in LEVELS:
        these = [t for t in trials if t["calibration"]["level"] == level]
        if not these:
            continue
        exits = {code: sum(t["calibration"]["exit"] == code for t in these) for code in (0, 1, 3)}
        verdicts = [v for t in these for v in t["verdicts"]]
        outcomes = {o: sum(v["outcome"] == o for v in verdicts)
                    for o in ("regression", "slower", "faster", "no change", "inconclusive")}
        loaded = sum(_under_load(r) for t in these for r in t["runs"] if not r["skipped"])
        ratios = sorted(statistics.median(v["ratio"] for v in t["verdicts"]) for t in these)
        walls = [t["calibration"]["wall"] for t in these]
        loads = [x for t in these for r in t["runs"] if r.get("load") for x in
                 (r["load"].get("load_start"), r["load"].get("load_peak")) if x is not None]
        detect = sorted(v["detectable"] for v in verdicts if v.get("detectable") is not None)
        rows.append([f"{100 * level:.0f}%", len(these), f"{exits[0]} / {exits[1]} / {exits[3]}",
                     f"{len(verdicts)}", " / ".join(str(outcomes[o]) for o in outcomes),
                     f"{ratios[0]:.3f} / {statistics.median(ratios):.3f} / {ratios[-1]:.3f}",
                     f"{100 * statistics.median(detect):.1f}%" if detect else "-",
                     f"{statistics.median(walls) / 60:.1f} / {max(walls) / 60:.1f}",
                     f"{min(loads):.1f}-{max(loads):.1f}" if loads else "-", f"{loaded} of {len(verdicts)}"])
    return table(["injected", "trials", "exit 0 / 1 / 3", "points",
                  "regression / slower / faster / no change / inconclusive", "median ratio: min / median / max",
                  "median detectable", "wall min: median / max", "load average", "points under load"], rows)


def study_ab(args: argparse.Namespace) -> None:
    header("lstm-bench ab calibration on the CI grid")
    out = Path(args.out or tempfile.mkdtemp(prefix="lstm-bench-calibration-"))
    out.mkdir(parents=True, exist_ok=True)
    extra = args.ab_args.split() if args.ab_args else []
    print(f"# trials kept in {out}; ab {' '.join(extra) or '(defaults)'}"
          + ("; one busy neighbour (a single-threaded busy loop) beside them" if args.neighbour else ""), flush=True)
    neighbour = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.neighbour else None
    try:
        trials = _ab_trials(args, out, extra)
    finally:
        if neighbour is not None:
            neighbour.kill()
            neighbour.wait()
    print(ab_table(trials))
    footer()


def _ab_trials(args: argparse.Namespace, out: Path, extra: list[str]) -> list[dict]:
    trials = []
    for i, level in enumerate(ab_schedule(args.trials_aa, args.trials)):
        path = out / f"trial{i:03d}-{int(round(1000 * level)):03d}.json"
        if path.exists():
            trials.append(json.loads(path.read_text()))
            continue
        data = ab_trial(level, path, extra)
        trials.append(data)
        c = data["calibration"]
        ratios = [v["ratio"] for v in data["verdicts"]]
        outcomes = [v["outcome"] for v in data["verdicts"]]
        print(f"trial {i + 1}: injected {100 * level:.0f}%, exit {c['exit']}, "
              + ", ".join(f"{outcomes.count(o)} {o}" for o in sorted(set(outcomes)))
              + f" of {len(ratios)} points, median ratio {statistics.median(ratios):.3f}, {c['wall'] / 60:.1f} min, "
                f"load average {os.getloadavg()[0]:.1f}", flush=True)
    return trials


def study_table(args: argparse.Namespace) -> None:
    trials = [json.loads(p.read_text()) for p in sorted(Path(args.dir).glob("trial*.json"))]
    print(ab_table(trials, args.threshold, args.alpha))


# --- asv ----------------------------------------------------------------------------------------------------

def study_asv(args: argparse.Namespace) -> None:
    """A/A of `asv continuous` in a scratch clone: commit B is commit A plus an empty commit."""
    header("asv continuous A/A on the CI grid")
    work = Path(args.out or tempfile.mkdtemp(prefix="lstm-bench-asv-"))
    clone = work / "clone"
    if not clone.exists():
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        # the working tree's files as commit A (so the study measures this code), an empty commit as B
        files = subprocess.run(["git", "-C", str(ROOT), "ls-files", "--cached", "--others", "--exclude-standard"],
                               capture_output=True, text=True, check=True).stdout.split()
        for name in files:
            src, dst = ROOT / name, clone / name
            if src.is_file():
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.write_bytes(src.read_bytes())
        git = ["git", "-C", str(clone), "-c", "user.name=calibration", "-c", "user.email=calibration@localhost"]
        subprocess.run(git + ["add", "-A"], check=True)
        subprocess.run(git + ["commit", "--quiet", "--allow-empty", "-m", "A: the code under study"], check=True)
        subprocess.run(git + ["commit", "--quiet", "--allow-empty", "-m", "B: identical code"], check=True)
        subprocess.run(["asv", "machine", "--yes"], cwd=clone, check=True, capture_output=True)
    env = dict(os.environ, LSTM_BENCH_GRID="ci", LSTM_BENCH_THREADS=str(args.threads))
    flagged = 0
    for i in range(args.trials):
        t0 = time.perf_counter()
        run = subprocess.run(["asv", "continuous", "--factor", str(args.factor), "--interleave-rounds", "-b",
                              "TimeStep.time_forward_backward", *args.asv_args.split(), "HEAD~1", "HEAD"],
                             cwd=clone, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        (work / f"trial{i:03d}.txt").write_text(run.stdout + run.stderr)
        # asv's table rows: "| +        | 1.00±0ms | 1.21±0ms | 1.21 | bench_lstm.TimeStep..." ("+" slower, "-" faster)
        changed = [line for line in run.stdout.splitlines()
                   if line.startswith("|") and line.split("|")[1].strip() in ("+", "-")]
        flagged += run.returncode != 0
        print(f"trial {i + 1}: exit {run.returncode}, {len(changed)} benchmark(s) marked changed, "
              f"{wall / 60:.1f} min, load average {os.getloadavg()[0]:.1f}", flush=True)
        for line in changed:
            print("   " + " ".join(line.split()), flush=True)
        if run.returncode not in (0, 1):
            print(run.stdout[-2000:], run.stderr[-2000:], flush=True)
    print(f"asv continuous A/A (factor {args.factor}, {args.asv_args or 'asv.conf.json / bench_lstm.py settings'}): "
          f"exit != 0 in {flagged} of {args.trials} trials")
    footer()


# --- instructions, peak ---------------------------------------------------------------------------------------

def study_instructions(args: argparse.Namespace) -> None:
    header("instruction counts (callgrind), run to run")
    sys.path.insert(0, str(ROOT))
    from lstm_bench.bench.grid import Point
    from lstm_bench.bench.instructions import count_instructions
    from lstm_bench.cli.output import table

    rows = []
    for impl in ("vectorised", "autograd", "nn_lstm"):
        point = Point(impl, 10, 1, 64, 64)
        counts = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            c = count_instructions(point)
            counts.append(c.per_call)
            print(f"{impl}: repeats {c.repeats} per call, {time.perf_counter() - t0:.0f} s", flush=True)
        spread = (max(counts) - min(counts)) / statistics.median(counts)
        rows.append([impl, point.key, ", ".join(f"{x:,}" for x in counts), f"{100 * spread:.3f}%"])
    print(table(["impl", "point", "instructions per call, one per run", "(max - min) / median"], rows))
    footer()


def study_peak(args: argparse.Namespace) -> None:
    header("matmul peak per library")
    sys.path.insert(0, str(ROOT))
    from lstm_bench.cli.output import table
    from lstm_bench.machine.peak import measure_peak
    from lstm_bench.machine.timing import set_threads

    threads = set_threads(args.threads)
    rows = []
    for dtype in ("float32", "bfloat16", "float16"):
        for _ in range(args.runs):
            p = measure_peak("cpu", dtype)
            libs = ", ".join(f"{k} {v:.1f}" for k, v in p.libraries.items())
            rows.append([dtype, threads, f"{p.gflops:.1f}" if p.gflops else "no peak", p.library or "-",
                         str(p.shape) if p.shape else "-", libs or "-", f"{p.seconds:.1f} s", p.reason])
    print(table(["dtype", "threads", "peak GFLOP/s", "library", "shape", "per library (GFLOP/s)", "took", "reason"],
                rows))
    footer()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m studies.calibration", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="study", required=True)
    p = sub.add_parser("ab")
    p.add_argument("--trials-aa", type=int, default=20)
    p.add_argument("--trials", type=int, default=10, help="trials at each injected slowdown")
    p.add_argument("--out", help="folder for the trials' JSON (resumes: trials already there are kept)")
    p.add_argument("--ab-args", default="", help="extra flags for `lstm-bench ab`, one string")
    p.add_argument("--neighbour", action="store_true", help="one single-threaded busy loop beside the trials")
    p.set_defaults(func=study_ab)
    p = sub.add_parser("table", help="the ab table again from kept trials, with this checkout's statistics")
    p.add_argument("dir")
    p.add_argument("--threshold", type=float, help="judge with this threshold instead of the trials' own")
    p.add_argument("--alpha", type=float)
    p.set_defaults(func=study_table)
    p = sub.add_parser("asv")
    p.add_argument("--trials", type=int, default=5)
    p.add_argument("--factor", type=float, default=1.1, help="asv's --factor (its default, 1.1)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--asv-args", default="", help="extra flags for `asv continuous`, one string")
    p.add_argument("--out")
    p.set_defaults(func=study_asv)
    p = sub.add_parser("instructions")
    p.add_argument("--runs", type=int, default=3)
    p.set_defaults(func=study_instructions)
    p = sub.add_parser("peak")
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=study_peak)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
