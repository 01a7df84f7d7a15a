"""summary.md of a GPU run (`studies.gpu_run`): from whatever files its steps left in the folder.

Sections: the GPU and versions, each step's exit status and seconds, pytest's counts and every
failing test with its first message line (from the junit file), the cuBLAS peaks and the empty
launch, the fastrnns anchor against its floors, the bench tables, and what was not verified.
"""
from __future__ import annotations

import json
import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def junit_summary(path: Path) -> tuple[dict[str, int], list[str]]:
    """({tests, failures, errors, skipped}, ["test id: first message line", ...]) of a junit file."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    failed = []
    for case in root.iter("testcase"):
        for kind in ("failure", "error"):
            node = case.find(kind)
            if node is not None:
                message = (node.get("message") or node.text or "").strip().splitlines()
                failed.append(f"{kind.upper()} {case.get('classname')}::{case.get('name')}: "
                              f"{message[0][:300] if message else ''}")
    return counts, failed


# pytest -v's outcome lines ("[gw3] [ 45%] FAILED tests/x.py::test[a]") and -rfE's summary ("FAILED tests/x.py::test - why")
_OUTCOME = re.compile(r"\b(FAILED|ERROR)\s+(\S+::\S+)")


def log_failures(text: str) -> list[str]:
    """"FAILED tests/x.py::test[a]" for each test pytest reported failed or errored in `text` (its -v log),
    in order, each once: what the summary names when the junit file was never written."""
    seen: dict[str, None] = {}
    for kind, test in _OUTCOME.findall(text):
        seen.setdefault(f"{kind} {test}", None)
    return list(seen)


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _machine_lines(machine: dict | None) -> list[str]:
    if not machine:
        return ["machine.json missing: the machine step did not finish"]
    if "skipped" in machine:
        return [f"machine: {machine['skipped']}"]
    lines = [f"Empty kernel launch from Python: {machine['launch_s'] * 1e6:.2f} us", "",
             "| mode | cuBLAS GFLOP/s | at (m, k, n) | libraries |", "|---|---|---|---|"]
    for mode, p in machine["peaks"].items():
        gf = f"{p['gflops']:.0f}" if p.get("gflops") else f"- ({p.get('reason')})"
        lines.append(f"| {mode} | {gf} | {p.get('shape')} | {p.get('libraries')} |")
    return lines


def _anchor_lines(anchor: dict | None, machine: dict | None) -> list[str]:
    if not anchor:
        return ["anchor.json missing: the anchor step did not finish"]
    if "skipped" in anchor:
        return [f"anchor: {anchor['skipped']}"]
    peaks = (machine or {}).get("peaks") or {}
    gflop = anchor["gflop"]
    lines = [f"T={anchor['point']['T']}, B={anchor['point']['B']}, I=H={anchor['point']['H']}: {gflop:.1f} GFLOP per "
             f"forward+backward. fastrnns (older GPU): forward {anchor['fastrnns_ms']['forward']} ms, backward "
             f"{anchor['fastrnns_ms']['backward']} ms. Floors: datasheet (H200) "
             + ", ".join(f"{k} {v:.3f} ms" for k, v in anchor["datasheet_floor_ms"].items())
             + "; measured = GFLOP / this GPU's cuBLAS peak of the mode.", "",
             "| mode | impl | backend | fwd ms | bwd ms | bwd-data ms | fwd+bwd ms | graph ms | measured floor ms | "
             "x floor | fastrnns / this (fwd, bwd) | max rel err | saved | peak |", "|---" * 14 + "|"]
    for r in anchor["rows"]:
        if r["status"] != "ok":
            lines.append(f"| {r['mode']} | {r['impl']} | FAILED: {r.get('error', '')[:200]} |" + " |" * 11)
            continue
        peak = (peaks.get(r["mode"]) or {}).get("gflops")
        floor = gflop / peak * 1e3 if peak else None
        ratio = f"{r['forward_backward_ms'] / floor:.1f}" if floor else "-"
        if floor and r["forward_backward_ms"] < floor:  # faster than the GEMMs alone allow: a timing error
            ratio += " IMPOSSIBLE"
        fast = anchor["fastrnns_ms"]
        versus = "-" if not (r["forward_ms"] and r["backward_ms"]) else \
            f"{fast['forward'] / r['forward_ms']:.1f}x, {fast['backward'] / r['backward_ms']:.1f}x"
        err = f"{r['max_rel_error']:.1e}" if r.get("max_rel_error") is not None else "-"
        graph = _ms(r.get("graph_ms")) if r.get("graph_ms") is not None else f"- ({r.get('graph_reason', '')[:80]})"
        lines.append(f"| {r['mode']} | {r['impl']} | {r['backend']} | {_ms(r['forward_ms'])} | {_ms(r['backward_ms'])} "
                     f"| {_ms(r.get('backward_data_ms'))} "
                     f"| {_ms(r['forward_backward_ms'])} | {graph} | {_ms(floor)} | {ratio} | {versus} | {err} | "
                     f"{r.get('saved_bytes')} | {r.get('peak_bytes')} |")
    return lines


def _bench_lines(path: Path) -> list[str]:
    if not path.exists():
        return ["bench-cuda.jsonl missing: the bench step did not run or wrote nothing"]
    from lstm_bench.bench.results import load
    from lstm_bench.cli.bench import gpu_table, skip_lines, sweep_table

    results = load(path)
    gpu = gpu_table(results)
    return ["```", sweep_table(results), *skip_lines(results.records), "```", "", "```",
            gpu or "no CUDA point measured", "```"]


def write_summary(out: Path, outcomes: list[dict], total_s: float) -> Path:
    """Write out/summary.md from the step outcomes and the files present; return its path."""
    info, machine, anchor = (_read_json(out / n) for n in ("info.json", "machine.json", "anchor.json"))
    gpu = (info or {}).get("gpu") or (machine or {}).get("gpu")
    lines = [f"# lstm-bench GPU run, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", ""]
    if gpu:
        lines.append(f"GPU {gpu.get('name')} ({gpu.get('sm_count')} SMs, L2 {gpu.get('l2_bytes')} B, capability "
                     f"{gpu.get('capability')}), driver {gpu.get('driver')}, CUDA {gpu.get('cuda')}, cuDNN "
                     f"{gpu.get('cudnn')}, power limit {gpu.get('power_limit_w')} W, max SM clock "
                     f"{gpu.get('max_sm_clock_mhz')} MHz; torch {(info or {}).get('torch')}; commit "
                     f"{(info or {}).get('commit')}")
    else:
        lines.append(f"No GPU: a dry run (torch {(info or {}).get('torch')}, CPU {(info or {}).get('cpu')}); "
                     f"the CUDA steps were skipped")
    lines += ["", f"Wall time {total_s:.0f} s.", "", "| step | exit | seconds | note |", "|---|---|---|---|"]
    for o in outcomes:
        note = o["skipped"] or ("TIMED OUT (interrupted)" if o["timed_out"] else "")
        lines.append(f"| {o['step']} | {o['rc'] if o['rc'] is not None else '-'} | {o['seconds']} | {note} |")
    lines += ["", "## pytest (CUDA subset)", ""]
    junit = out / "pytest-junit.xml"
    if junit.exists():
        try:
            counts, failed = junit_summary(junit)
            lines.append(", ".join(f"{k} {v}" for k, v in counts.items()))
            lines += [""] + [f"- {f}" for f in failed] if failed else ["", "no failures"]
        except ET.ParseError as err:
            lines.append(f"pytest-junit.xml unreadable: {err}")
    else:
        lines.append("pytest-junit.xml missing: pytest did not finish (see gpu_run.log)")
        log = out / "gpu_run.log"
        failed = log_failures(log.read_text(errors="replace")) if log.exists() else []
        lines += ["", "failed or errored before it was cut off (from gpu_run.log):"] + [f"- {f}" for f in failed] \
            if failed else ["", "no failure in gpu_run.log before it was cut off"]
    skipped = {o["step"]: f"{o['step']}: skipped: {o['skipped']}" for o in outcomes if o["skipped"]}
    lines += ["", "## cuBLAS peaks and launch latency", ""]
    lines += [skipped["machine"]] if "machine" in skipped else _machine_lines(machine)
    lines += ["", "## fastrnns anchor", ""]
    lines += [skipped["anchor"]] if "anchor" in skipped else _anchor_lines(anchor, machine)
    lines += ["", "## bench (CUDA grid)", ""]
    lines += [skipped["bench"]] if "bench" in skipped else _bench_lines(out / "bench-cuda.jsonl")
    unverified = [f"{o['step']}: {o['skipped'] or 'timed out'}" for o in outcomes if o["skipped"] or o["timed_out"]]
    lines += ["", "## Not verified in this run", ""] + ([f"- {u}" for u in unverified] or ["- nothing skipped"])
    path = out / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    return path
