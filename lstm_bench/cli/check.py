"""`lstm-bench check`: agreement of implementations with a float64 reference, PASS/FAIL per tensor.

Each implementation runs on each case and is judged against `--reference` run in float64
on the same numbers, under the tolerance policy (`lstm_bench.tolerance`). An
implementation that raises is a FAIL with its error, not a crash. Exit 1 on any FAIL.
"""
from __future__ import annotations

import argparse
import itertools

from ..contract import Case, check_dtype, make_case
from ..devices import check_device
from ..registry import available_impls, get_impl, resolve_impls
from ..tolerance import AgreementReport, check_against_reference
from .args import EXIT_FAIL, EXIT_OK, UsageError, add_impls, add_sizes, flatten
from .output import table

DEFAULT_SIZES = {"T": 40, "B": 8, "I": 16, "H": 32}


def _check_one(name: str, case: Case, reference: str) -> tuple[AgreementReport | None, str | None]:
    """(report, None), or (None, the error) when the implementation raised."""
    try:
        return check_against_reference(get_impl(name), case, reference=reference), None
    except KeyboardInterrupt:
        raise
    except Exception as err:  # a broken implementation is a FAIL, not a crash of the harness
        return None, f"{type(err).__name__}: {err}"


def run_check(impls: list[str], sizes: list[tuple[int, int, int, int]], *, dtype: str, device: str, seed: int,
              reference: str, verbose: bool) -> bool:
    """Check every implementation on every size (T, B, I, H); print the tables; True when everything passes."""
    rows, ok = [], True
    for T, B, I, H in sizes:
        try:
            case = make_case(T, B, I, H, dtype=check_dtype(dtype), device=device, seed=seed)
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
    print(table(["impl", "backend", "T", "B", "I", "H", "max rel", "err/bound", "result"], rows,
                left=(0, 1, -1)))
    return ok


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="agreement of every implementation against a float64 reference")
    add_impls(p, "all available on --device")
    add_sizes(p, "default " + ", ".join(f"{k}={v}" for k, v in DEFAULT_SIZES.items())
              + "; several values check every combination")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64", "float16", "bfloat16"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reference", default="autograd", help="implementation run in float64 as the truth "
                                                           "(default autograd)")
    p.add_argument("--summary", action="store_true", help="only the summary table, not each implementation's "
                                                          "tensors")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_dtype(args.dtype)
    check_device(args.device)
    get_impl(args.reference)  # an unknown reference is bad input (exit 2), not a FAIL of every implementation
    impls = resolve_impls(flatten(args.impl) or []) or available_impls(args.device)
    for name in impls:
        impl = get_impl(name)
        if args.device not in impl.devices:
            raise UsageError(f"implementation {name!r} does not run on {args.device} (runs on {list(impl.devices)})")
    axes = {k: flatten(getattr(args, k)) or [DEFAULT_SIZES[k]] for k in ("T", "B", "I", "H")}
    sizes = list(itertools.product(axes["T"], axes["B"], axes["I"], axes["H"]))
    ok = run_check(impls, sizes, dtype=args.dtype, device=args.device, seed=args.seed,
                   reference=args.reference, verbose=not args.summary)
    return EXIT_OK if ok else EXIT_FAIL
