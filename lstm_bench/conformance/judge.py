"""The procedure that judges: run the float64 truth, measure the case's sensitivity, run an
implementation and judge it under the policy (`policy.py`). The float64 truth of a case spec
is computed once per process (`truth_of`), the one cache of it in the package.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import torch

from ..core.contract import Case, Result
from ..core.devices import tf32_active
from ..core.registry import get_impl
from ..core.support import Unsupported
from .cases import CaseSpec
from .policy import (FAST_MATH_FLOOR, FLOOR, LOW_PRECISION, LOWP_MIN_HIDDEN, PERTURBATIONS, TF32_EPS, VENDOR,
                     VENDOR_FACTOR, AgreementReport, agreement, describe, vendor_relative)


def sensitivity(case: Case, reference: str = "autograd", *, eps: float | None = None,
                perturbations: int = PERTURBATIONS, seed: int = 0,
                base: dict[str, torch.Tensor] | None = None) -> dict[str, float]:
    """Per tensor, max |b' - b| where b is `reference` run on the case in float64 and b'
    the same on the case with every tensor scaled elementwise by (1 + eps * U(-1, 1)).

    `eps` defaults to the case dtype's machine epsilon; `base` is b, when already computed
    (`Result.tensors()` of that float64 run).
    """

    eps = torch.finfo(case.dtype).eps if eps is None else eps
    impl = get_impl(reference)
    case64 = case.to(dtype=torch.float64)
    base = impl(case64).tensors() if base is None else base
    gen = torch.Generator().manual_seed(seed)
    sens = {k: 0.0 for k in base}
    for _ in range(perturbations):
        noisy = {k: v * (1 + eps * (torch.rand(v.shape, generator=gen, dtype=v.dtype) * 2 - 1).to(v.device))
                 for k, v in case64.tensors().items()}
        moved = impl(case64.with_tensors(noisy)).tensors()
        for k in base:
            sens[k] = max(sens[k], (moved[k] - base[k]).abs().max().item())
    return sens


@dataclass
class Reference:
    """What a result on a case is judged against: the float64 truth and the policy's
    sensitivity, or for a low-precision case the vendor's result at the case's dtype."""

    truth: Result
    sensitivity: dict[str, float] = field(default_factory=dict)
    vendor: Result | None = None


def float64_result(case: Case, reference: str = "autograd") -> Result:
    """`reference`'s result on `case` computed in float64: the truth without its sensitivity."""
    return get_impl(reference)(case.to(dtype=torch.float64))


def reference_of(case: Case, reference: str = "autograd") -> Reference:
    """The float64 truth of `case` from `reference`, and its sensitivity, or (low precision)
    `VENDOR`'s result on the case itself. A vendor that cannot run the case makes it
    `Unsupported` (no yardstick, no verdict)."""

    if case.dtype in LOW_PRECISION and case.sizes[3] < LOWP_MIN_HIDDEN:
        raise Unsupported(f"a {case.dtype} case is judged against the vendor's error only from H = "
                          f"{LOWP_MIN_HIDDEN} up (a tensor of fewer elements has a noisy max error); H = {case.sizes[3]}")
    truth = float64_result(case, reference)
    if case.dtype not in LOW_PRECISION:
        return Reference(truth, sensitivity(case, reference, base=truth.tensors()))
    try:
        vendor = get_impl(VENDOR)(case.clone())
    except Exception as err:
        raise Unsupported(f"no {VENDOR} result to judge a {case.dtype} case against: {type(err).__name__}: "
                          f"{err}") from None
    return Reference(truth, vendor=vendor)


def judge_against_reference(impl, case: Case, *, reference: str = "autograd",
                            truth: Reference | None = None) -> AgreementReport:
    """Run `impl` (a name or Impl) on `case` and judge it against `reference` in float64
    (for a low-precision case, relative to the vendor's own error: `vendor_relative`).

    The truth is computed from a copy taken before `impl` runs (or given, as
    `reference_of(case)`), and the case is compared with that copy afterwards: an
    implementation that modifies its inputs fails, naming the tensor. A result in
    another dtype or on another device than the case raises ValueError (the contract). A kernel
    declared forward-only (`gradients=False`) is judged on output, h_n and c_n.
    """

    impl = get_impl(impl) if isinstance(impl, str) else impl
    pristine = case.clone()
    ref = reference_of(pristine, reference) if truth is None else truth
    got = impl(case)
    report = judge_result(got, ref, case.dtype, approximate=case.device.type in impl.support.approximate_on,
                          tf32=tf32_active(case.device), gradients=impl.support.gradients,
                          title=f"{impl.name} [{got.backend or '?'}] vs {reference} float64 | {describe(case)}")
    report.problems += [f"{impl.name} modified case.{name} in place (inputs are read-only)"
                        for name in case.modified(pristine)]
    return report


def judge_result(got: Result, ref: Reference, dtype: torch.dtype, *, approximate: bool = False,
                 tf32: bool = False, title: str = "", gradients: bool = True) -> AgreementReport:
    """Judge a result already computed (e.g. in another process: `lstm-bench ab`) against `ref`, the
    case's `reference_of`, under the policy: float64 agreement (with the fast-math floor when the
    kernel declares `approximate` activations on the case's device), or the vendor-relative rule in
    low precision. `tf32`: a float32 result computed with TF32 allowed (CUDA) is judged with TF32's
    eps (2^-10, 10 mantissa bits), as its own mode: measured on an H200, cuDNN and the vectorised
    path in TF32 were 5e-4 off in relative terms, 25-98x float32's bound (`python -m studies.gpu_run`,
    2026-12-04). `gradients=False`: a forward-only kernel's result, judged on output, h_n and c_n
    (`policy.judged_names`)."""
    if ref.vendor is not None:
        title += f" | low precision: vs {VENDOR} [{ref.vendor.backend}]'s error x {VENDOR_FACTOR:g} + eps"
        return vendor_relative(got, ref.vendor, ref.truth, dtype=dtype, title=title, gradients=gradients)
    floor = FAST_MATH_FLOOR if approximate else FLOOR
    if approximate:
        title += f" | approximate activations declared: floor {FAST_MATH_FLOOR:g} eps"
    eps = None
    if tf32 and dtype == torch.float32:
        eps = TF32_EPS
        title += " | TF32 allowed: judged with TF32's eps"
    return agreement(got, ref.truth, dtype=dtype, sensitivity=ref.sensitivity, title=title, floor=floor, eps=eps,
                     gradients=gradients)


@functools.lru_cache(maxsize=256)
def truth_of(spec: CaseSpec, device: str = "cpu", reference: str = "autograd") -> Reference:
    """What `spec` on `device` is judged against (`reference_of` with the registered
    implementation `reference`), computed once per process: a case is made afresh from its
    spec, so the truth never sees what a kernel under test did to its inputs."""
    return reference_of(spec.make(device), reference)
