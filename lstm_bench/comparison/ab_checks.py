"""The accuracy gate of `lstm-bench ab`: both sides' results judged at every point, before and after the timing.

A speed comparison of a wrong kernel is no verdict: a NEW kernel that returns NaN, or
gradients rounded to bfloat16, or that caches its first result, may well be "faster".
So, per point, the coordinator makes two cases from the point's seed (`Point.case`):

    timing case  seed s       the one both sides time
    check case   seed s + 1   the same shapes, other numbers

and their float64 truth once (`conformance.judge.reference_of`: the float64 reference and
its sensitivity, or the vendor's result for a low-precision case), and judges under the
tolerance policy the `check` command applies (`conformance.judge.judge_result`):

    before the timing  the result of each worker's first timed call on the timing case
                       (each worker generation: a fresh process may choose another route)
    after the timing   the output of each worker's LAST timed call (a kernel that computes
                       less when called repeatedly), then one call after the check case's
                       numbers were copied into the same tensors (a kernel that returns a
                       cached result, by pointer, by shape or unkeyed, answers the old case)

The cases go to the workers as files (`torch.save` of {name: tensor}), so that both sides
compute on the coordinator's very numbers whatever their lstm-bench versions; the results
come back the same way (`ab_worker.py`). A point whose truth cannot be had (a
low-precision case too small to judge, `Unsupported`) is only checked for NaN and Inf.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from ..bench.grid import Point
from ..conformance.judge import Reference, judge_result, reference_of
from ..core.contract import FORWARD_TENSORS, Result
from ..core.support import Unsupported

CHECK_SEED_OFFSET = 1  # the check case's seed: the timing case's + 1


@dataclass
class Truth:
    """What one case of a point is judged against: the policy's reference, or why there is none."""

    reference: Reference | None
    names: dict[str, tuple[int, ...]]  # every tensor a result must hold, with its shape
    unjudged: str = ""  # why only NaN/Inf are checked


@dataclass
class PointCases:
    """One point's two cases as files for the workers, and their truths."""

    case_file: Path
    check_file: Path
    truth: Truth
    check_truth: Truth


def _truth(point: Point, seed: int, path: Path) -> Truth:
    case = point.case(seed)
    torch.save({k: v.detach().cpu() for k, v in case.tensors().items()}, path)
    try:
        ref = reference_of(case.clone())
    except Unsupported as why:
        return Truth(None, {}, f"accuracy not judged ({why}); NaN/Inf checked")
    return Truth(ref, {k: tuple(v.shape) for k, v in ref.truth.tensors().items()})


def prepare(point: Point, seed: int, folder: Path, index: int) -> PointCases:
    """Write the point's timing and check cases into `folder` and compute their truths (once per point)."""
    case_file, check_file = folder / f"case-{index}.pt", folder / f"check-{index}.pt"
    return PointCases(case_file, check_file, _truth(point, seed, case_file),
                      _truth(point, seed + CHECK_SEED_OFFSET, check_file))


def _result(tensors: dict[str, torch.Tensor], truth: Truth, gradients: bool = True) -> Result:
    """A Result in the coordinator's names and shapes from a worker's `Result.tensors()` (lstm-bench 0.1
    names single-layer weights without "_l0" and keeps states as (B, H): same numbers, reshaped); of a
    forward-only kernel (`gradients=False`), output, h_n and c_n."""
    got = {}
    for name, shape in truth.names.items():
        if not gradients and name not in FORWARD_TENSORS:
            continue
        t = tensors.get(name, tensors.get(name.removesuffix("_l0")))
        if t is None:
            raise ValueError(f"the result has no {name}")
        if t.numel() != math.prod(shape):
            raise ValueError(f"{name} has shape {tuple(t.shape)}, expected {shape}")
        got[name] = t.reshape(shape)
    grads = {k[2:]: v for k, v in got.items() if k.startswith("d_")}
    return Result(got["output"], got["h_n"], got["c_n"], grads)


def wrong_reason(path: str | Path, truth: Truth, dtype: torch.dtype, gradients: bool = True) -> str | None:
    """Why the result a worker saved in `path` is wrong under the tolerance policy, or None when it passes;
    `gradients=False`: a forward-only kernel's, judged on output, h_n and c_n."""
    try:
        tensors = torch.load(path)
        if truth.reference is None:
            bad = [k for k, v in tensors.items() if not bool(torch.isfinite(v).all())]
            return f"NaN/Inf in {', '.join(bad)}" if bad else None
        got = _result(tensors, truth, gradients)
    except (OSError, ValueError, RuntimeError, KeyError) as err:
        return f"result unreadable: {err}"
    report = judge_result(got, truth.reference, dtype, gradients=gradients)
    if report.passed:
        return None
    nonfinite = [r.name for r in report.failures if "NaN/Inf" in r.note]
    if nonfinite:
        return f"NaN/Inf in {', '.join(nonfinite)}"
    worst = sorted(report.failures, key=lambda r: -r.worst)
    shown = ", ".join(f"{r.name} (max rel {r.max_rel:.1e}, {r.worst:.3g}x the bound)" for r in worst[:3])
    more = f" and {len(worst) - 3} more" if len(worst) > 3 else ""
    return f"wrong beyond the tolerance policy in {shown}{more}"
