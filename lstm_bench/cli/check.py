"""`lstm-bench check`: agreement of implementations with the float64 truth, case by case.

With no sizes it runs the catalogue of `lstm_bench.conformance.cases` at `--depth quick` (a few
dozen cases across the tile boundaries of H, I and B, long-memory cases of 300 steps and
stress cases): enough to catch the size-threshold and truncation bugs real kernels have.
With -T/-B/-I/-H it runs every combination of the sizes given instead. Each result is
printed as it completes (the per-tensor table of every failure, with the command that
reproduces it); Ctrl-C prints the summary of what finished. A case outside what an
implementation declares is SKIP with the reason; one that raises is a FAIL with its
error. Exit 1 on any FAIL, 5 when nothing at all was checked (every case skipped).
"""
from __future__ import annotations

import argparse
import itertools
import math
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

from ..conformance.assertions import assert_stateless
from ..conformance.cases import DEPTHS, STRESS, CaseSpec, catalogue
from ..conformance.judge import judge_against_reference, truth_of
from ..conformance.policy import MEASURED_MAX_T, AgreementReport
from ..core.contract import check_dtype
from ..core.devices import check_device
from ..core.registry import available_impls, get_impl, resolve_impls
from ..core.support import FORWARD_ONLY, Unsupported, dtype_name
from ..impls import COMPILING
from ..machine.timing import set_threads
from .args import (EXIT_FAIL, EXIT_INTERRUPTED, EXIT_NOTHING, EXIT_OK, UsageError, add_impls, add_sizes, flatten,
                   list_of, positive_int)
from .output import table

DEFAULT_SIZES = {"T": 40, "B": 8, "I": 16, "H": 32}  # the main job's one case
LONG_T = 300  # --stress long-memory without -T


@dataclass
class Tally:
    """What one implementation did over the cases: counts, worst figures, failures to repeat."""

    backend: str = ""
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    max_rel: float = 0.0
    worst: float = 0.0
    failures: list[str] = field(default_factory=list)
    skip_reasons: dict[str, int] = field(default_factory=dict)  # reason -> cases skipped for it
    first: CaseSpec | None = None  # the first case it passed: run again at the end

    def add(self, report: AgreementReport) -> None:
        self.backend = self.backend or report.backend
        # NaN (a result holding NaN) must show, not be hidden by max()
        self.max_rel = math.nan if math.isnan(report.max_rel) else max(self.max_rel, report.max_rel)
        self.worst = max(self.worst, report.worst)


def specs_from_args(args: argparse.Namespace) -> list[CaseSpec]:
    """The cases to run: the catalogue at --depth, or every combination of the sizes given."""
    stress = dict(STRESS[args.stress]) if args.stress else {}
    if args.weight_scale is not None:
        stress["weight_scale"] = args.weight_scale
    if args.forget_bias is not None:
        stress["forget_bias"] = args.forget_bias
    dtypes = [dtype_name(check_dtype(d)) for d in (flatten(args.dtype) or [])]
    given = {k: flatten(getattr(args, k)) for k in "TBIH"}
    config = {"num_layers": args.layers, "bidirectional": args.bidirectional, "proj_size": args.proj,
              "batch_first": args.batch_first, "lengths": args.lengths}
    chosen = {k: v for k, v in config.items() if v}
    if not any(given.values()) and not stress and not chosen:
        specs = catalogue(args.depth)
        return [s.replace(dtype=d, seed=args.seed or s.seed) for s in specs for d in (dtypes or [s.dtype])]
    defaults = dict(DEFAULT_SIZES, T=LONG_T if args.stress == "long-memory" else DEFAULT_SIZES["T"])
    if args.lengths:  # one length a sequence: the batch follows, and T is at least the longest
        defaults.update(B=len(args.lengths), T=max(defaults["T"], max(args.lengths)))
    axes = [given[k] or [defaults[k]] for k in "TBIH"]
    return [CaseSpec(T, B, I, H, dtype, seed=args.seed, **stress, **chosen)
            for T, B, I, H in itertools.product(*axes) for dtype in (dtypes or ["float32"])]


def check_measured_lengths(specs: list[CaseSpec], beyond: bool) -> None:
    """UsageError when a case is longer than the tolerance policy was measured on
    (`policy.MEASURED_MAX_T`), unless `beyond` (--beyond-measured) asks to judge it anyway."""
    longest = max(s.T for s in specs)
    if longest > MEASURED_MAX_T and not beyond:
        raise UsageError(f"T={longest} is longer than the tolerance policy was measured on (T <= {MEASURED_MAX_T}): "
                         f"float32 sums over T steps can put a correct kernel above the bound there (nn.LSTM 2.4x at "
                         f"T=10000); add --beyond-measured to judge anyway")


def _make(spec: CaseSpec, device: str):
    try:
        return spec.make(device)
    except (RuntimeError, MemoryError) as err:  # e.g. a size too large to allocate: bad input, not a FAIL
        raise UsageError(f"cannot make the case T={spec.T} B={spec.B} I={spec.I} H={spec.H} on {device}: "
                         f"{type(err).__name__}: {err}") from None


def _again(name: str, tally: Tally, device: str, width: int, summary: bool) -> None:
    """After every case: the first passed case again, with a case of the same shape and other
    numbers between (`assert_stateless`): the same bits both times (unless the kernel declares
    itself non-deterministic) and each judged. No case of the catalogue repeats a shape, so a
    cache keyed by shape or a kernel that drifts by an ulp from call to call shows only here."""
    spec = tally.first
    other = spec.replace(seed=spec.seed + 1)
    impl = get_impl(name)
    try:
        assert_stateless(impl, spec.make(device), other.make(device))
        tally.passed += 1
        result = "PASS"
    except AssertionError as err:
        tally.failed += 1
        what = str(err).splitlines()[0]
        result = f"FAIL ({what})"
        tally.failures.append(f"{spec.id} again: {what}\n    reproduce: {spec.command(impl.spec, device)}")
    if not summary:
        print(f"{spec.id + ' again':<{width}}  {name:<16} {'-':>9} {'-':>9}  {result}", flush=True)


def run_check(impls: list[str], specs: list[CaseSpec], *, device: str, verbose: bool, summary: bool,
              reference: str = "autograd") -> CheckOutcome:
    """Check every implementation on every case, printing as it goes."""
    tallies = {name: Tally() for name in impls}
    width = max(len(s.id) for s in specs)
    head = f"{'case':<{width}}  {'implementation':<16} {'max rel':>9} {'err/bound':>9}  result"
    if not summary:
        print(f"Agreement with {reference} in float64 under the tolerance policy (lstm_bench/conformance/policy.py): "
              f"err/bound <= 1 passes. {len(specs)} cases x {len(impls)} implementations on {device}.")
        print(head + "\n" + "-" * len(head))
    interrupted = False
    try:
        for spec in specs:
            case = _make(spec, device)
            truth, no_yardstick = None, None
            for name in impls:
                impl, tally = get_impl(name), tallies[name]
                reason = impl.unsupported_reason(case)
                if reason is None and truth is None and no_yardstick is None:
                    try:
                        truth = truth_of(spec, device, reference)
                    except Unsupported as why:  # e.g. a low-precision case the vendor cannot run
                        no_yardstick = str(why)
                reason = reason or no_yardstick
                report, error = None, None
                if reason is not None:
                    tally.skipped += 1
                    tally.skip_reasons[reason] = tally.skip_reasons.get(reason, 0) + 1
                    result = f"SKIP ({reason})"
                else:
                    try:
                        report = judge_against_reference(impl, case, reference=reference, truth=truth)
                    except KeyboardInterrupt:
                        raise
                    except Exception as err:  # a broken implementation is a FAIL, not a crash of the harness
                        error = f"{type(err).__name__}: {err}"
                    case = _make(spec, device)  # afresh: an implementation may have modified it
                    if report is not None and report.passed:
                        tally.passed += 1
                        tally.first = tally.first or spec
                        result = "PASS"
                    else:
                        tally.failed += 1
                        what = error or ", ".join([r.name for r in report.failures] + report.problems)
                        result = f"FAIL ({what})"
                        tally.failures.append(f"{spec.id}: {what}\n    reproduce: {spec.command(get_impl(name).spec, device)}")
                    if report is not None:
                        tally.add(report)
                        notes = sorted({r.note for r in report.rows if r.note})
                        result += f" [{', '.join(notes)}]" if notes else ""
                if not summary:
                    rel = f"{report.max_rel:9.2e}" if report else f"{'-':>9}"
                    worst = f"{report.worst:9.2e}" if report else f"{'-':>9}"
                    print(f"{spec.id:<{width}}  {name:<16} {rel} {worst}  {result}", flush=True)
                    if report is not None and (verbose or not report.passed):
                        print(f"{report}\n    reproduce: {spec.command(get_impl(name).spec, device)}\n")
        for name, tally in tallies.items():
            if tally.first is not None:
                _again(name, tally, device, width, summary)
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: the summary of the cases that finished", file=sys.stderr)
    forward_only = [name for name in tallies if not get_impl(name).support.gradients]
    rows = [[name, t.backend or "-", t.passed + t.failed + t.skipped, t.passed, t.failed, t.skipped,
             f"{t.max_rel:.2e}", f"{t.worst:.2e}", ("FAIL" if t.failed else ("PASS" if t.passed else "SKIP"))
             + (" (forward only)" if name in forward_only else "")]
            for name, t in tallies.items()]
    print("\n" + table(["implementation", "backend", "cases", "passed", "failed", "skipped", "max rel",
                        "worst err/bound", "result"], rows, left=(0, 1, -1)))
    for name in forward_only:
        print(f"{name}: judged on output, h_n and c_n: {FORWARD_ONLY}")
    failures = [f"  {name} {line}" for name, t in tallies.items() for line in t.failures]
    if failures:
        print("failed:\n" + "\n".join(failures))
    total = {k: sum(getattr(t, k) for t in tallies.values()) for k in ("passed", "failed", "skipped")}
    print(f"{total['passed']} passed, {total['failed']} failed, {total['skipped']} skipped")
    if not total["passed"] and not total["failed"]:
        reasons = Counter()
        for t in tallies.values():
            reasons.update(t.skip_reasons)
        why = "".join(f"\n  {n} cases: {reason}" for reason, n in reasons.most_common(3))
        print(f"nothing was checked: every case is outside what the implementations declare{why}", file=sys.stderr)
    code = EXIT_FAIL if total["failed"] else (EXIT_OK if total["passed"] else EXIT_NOTHING)
    return CheckOutcome(code == EXIT_OK, interrupted, code)


class CheckOutcome(NamedTuple):
    """What `run_check` found: all passed (something was judged, nothing failed), whether it was
    interrupted, and the exit code of the contract (cli/args.py: 1 any failure, 5 nothing judged)."""

    ok: bool
    interrupted: bool
    code: int


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="agreement of implementations with the float64 truth, case by case")
    add_impls(p, "all available on --device")
    add_sizes(p, "several values check every combination; without any, the catalogue of cases at --depth")
    p.add_argument("--dtype", type=list_of(str), action="append", help="dtypes (default: float32, or the "
                                                                       "catalogue's own)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--depth", choices=DEPTHS, default="quick", help="the catalogue run without sizes "
                                                                    "(default quick)")
    p.add_argument("--stress", choices=sorted(STRESS), help="a stress preset: " + "; ".join(
        f"{k}: {', '.join(f'{a}={v}' for a, v in kw.items())}" for k, kw in STRESS.items())
        + f" (long-memory: T={LONG_T} unless -T)")
    p.add_argument("--layers", type=positive_int, help="num_layers (default 1)")
    p.add_argument("--bidirectional", action="store_true", help="two directions")
    p.add_argument("--proj", type=positive_int, help="proj_size: a projection of h to this size (< H)")
    p.add_argument("--batch-first", action="store_true", help="x and output as (B, T, ·)")
    p.add_argument("--lengths", type=list_of(positive_int), metavar="L1,L2,...",
                   help="one sequence length per batch entry, each in [1, T] (packed sequences)")
    p.add_argument("--weight-scale", type=float, help="multiply every weight and bias (10 saturates the gates)")
    p.add_argument("--forget-bias", type=float, help="set the forget gate's bias (5: f ~ 0.993, long memory)")
    p.add_argument("--beyond-measured", action="store_true",
                   help=f"judge cases longer than the tolerance policy was measured on (T > {MEASURED_MAX_T}), where a "
                        f"correct float32 kernel can exceed the bound")
    p.add_argument("--reference", default="autograd", help="implementation run in float64 as the truth "
                                                           "(default autograd)")
    p.add_argument("--threads", type=positive_int, default=1,
                   help="torch's CPU threads (default 1: the cases are small, and idle threads of a loaded "
                        "machine cost more than they give)")
    output = p.add_mutually_exclusive_group()
    output.add_argument("--summary", action="store_true", help="only the summary table")
    output.add_argument("--verbose", "-v", action="store_true", help="every per-tensor table, not only failures'")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_device(args.device)
    get_impl(args.reference)  # an unknown reference is bad input (exit 2), not a FAIL of every implementation
    impls = resolve_impls(flatten(args.impl) or []) or [n for n in available_impls(args.device) if n not in COMPILING]
    specs = specs_from_args(args)
    check_measured_lengths(specs, args.beyond_measured)
    set_threads(args.threads)
    outcome = run_check(impls, specs, device=args.device, verbose=args.verbose, summary=args.summary,
                        reference=args.reference)
    return EXIT_INTERRUPTED if outcome.interrupted else outcome.code
