"""What the correctness gates can see: studies behind the figures in the README ("The conformance suite").

    python -m studies.gate_study smallest    # smallest relative gradient error caught, float32 and float64
    python -m studies.gate_study windows     # truncated BPTT (a window of K steps) against the catalogue
    python -m studies.gate_study low_precision   # the low-precision factor F, measured

`smallest`: a kernel that is autograd's result with ONE gradient tensor scaled by (1 + e),
for each of the seven gradients and both signs of e (14 trials per e). A run catches a
trial when at least one of its cases fails (that is its verdict: exit 1). Reported per
dtype: the smallest e caught in all 14 trials ("reliably"), and the largest e missed in
any. Runs: `check`'s default cases (`catalogue("quick")`) and the suite's fixed cases
(`catalogue("default")`), each restricted to the cases of that dtype.

`low_precision`: on bfloat16 and float16 cases (the catalogue's and more: T up to 300,
layers, directions, lengths), each implementation's error against the float64 truth
divided by the vendor's (nn.LSTM at the same dtype), per tensor, worst over tensors; next
to a kernel that sums its weight gradients over the T steps in bfloat16 (the reference
with its float32 accumulation turned off), the bug the factor must catch.

`windows`: the share of the catalogue's long-memory cases that fail for a BPTT whose
every step's gradient reaches back only K steps, next to the same kernel on cases of
PyTorch's default initialisation (f ~ 0.5).
"""
from __future__ import annotations

import dataclasses
import sys
import time

import torch

from lstm_bench import LSTMConfig, get_impl
from lstm_bench.conformance.assertions import judge
from lstm_bench.conformance.cases import CaseSpec, catalogue
from lstm_bench.machine.timing import set_threads

GRAD_NAMES = LSTMConfig(1, 1).grad_names()  # x, h0, c0 and layer 0's four weights: in every configuration
EPSILONS = [10.0 ** -k for k in range(1, 16)] + [3 * 10.0 ** -k for k in range(2, 16)]


def scaled(gradient: str, e: float):
    def kernel(case):
        r = get_impl("autograd").fn(case)
        return dataclasses.replace(r, grads={**r.grads, gradient: r.grads[gradient] * (1 + e)})
    kernel.__name__ = f"scaled_{gradient}"
    return kernel


def caught(kernel, specs: list[CaseSpec]) -> bool:
    return any(not judge(kernel, spec).passed for spec in specs)


def smallest() -> None:
    set_threads(1)
    print(f"torch {torch.__version__}; one gradient tensor scaled by (1 + e), 7 gradients x 2 signs per e")
    print("| run | dtype | cases | smallest e caught in 14 of 14 | largest e missed in some trial |")
    print("|---|---|---|---|---|")
    for run, depth in (("lstm-bench check (default)", "quick"), ("the suite's fixed cases", "default")):
        for dtype in ("float32", "float64"):
            specs = [s for s in catalogue(depth) if s.dtype == dtype]
            if not specs:
                specs = [s.replace(dtype=dtype) for s in catalogue(depth)]
            t0 = time.perf_counter()
            always, missed = None, None
            for e in sorted(EPSILONS, reverse=True):
                hits = sum(caught(scaled(g, sign * e), specs) for g in GRAD_NAMES for sign in (1, -1))
                if hits == 14 and missed is None:
                    always = e
                if hits < 14 and missed is None:
                    missed = e
                if hits == 0:
                    break
            print(f"| {run} | {dtype} | {len(specs)} | {always:.0e} | {missed:.0e} |  ({time.perf_counter() - t0:.0f} s)",
                  flush=True)


def windows() -> None:
    sys.path.insert(0, "tests")
    from kernels.broken import _windowed  # noqa: E402 (the suite's own broken kernel, tests/kernels)

    set_threads(1)
    long_memory = [s for s in catalogue("default") if s.label == "long memory" and s.T >= 250]
    default_init = [s.replace(forget_bias=None) for s in long_memory]
    print("| window K | long-memory cases caught (T >= 250, forget bias 3 or 5) | same cases at default init |")
    print("|---|---|---|")
    for K in (16, 40, 100, 200):
        def kernel(case, K=K):
            return _windowed(case, K)
        kernel.__name__ = f"window_{K}"
        lm = sum(not judge(kernel, s).passed for s in long_memory)
        di = sum(not judge(kernel, s).passed for s in default_init)
        print(f"| {K} | {lm} of {len(long_memory)} | {di} of {len(default_init)} |", flush=True)


def low_precision() -> None:
    from lstm_bench.conformance.judge import reference_of
    from lstm_bench.conformance.policy import LOWP_FLOOR_ULPS, VENDOR, vendor_relative
    from lstm_bench.impls import reference, stack

    set_threads(1)
    specs = [s for s in catalogue("default") if s.dtype in ("bfloat16", "float16")]
    specs += [CaseSpec(T, 8, 32, 64, dtype, seed=50 + T) for T in (10, 300) for dtype in ("bfloat16", "float16")]
    specs += [CaseSpec(60, 4, 16, 24, dtype, seed=60, num_layers=3, proj_size=12) for dtype in ("bfloat16", "float16")]

    def summed_in_low_precision(case):
        saved = dict(stack.ACCUMULATE)
        stack.ACCUMULATE.clear()  # the reference then keeps its weight-gradient sums in the case's dtype
        try:
            return reference.run(case)
        finally:
            stack.ACCUMULATE.update(saved)

    impls = ["reference", "vectorised", "autograd", "nn_lstm_native"]
    factors = (2.0, 3.0, 4.0)
    print(f"err/bound = e(impl) / (F * e({VENDOR}) + {LOWP_FLOOR_ULPS:g} eps) (policy.vendor_relative), worst "
          f"over tensors (> 1 fails), for F = "
          f"{', '.join(f'{f:g}' for f in factors)}; e = max|x - truth| / max|truth|. CPU: "
          f"{__import__('lstm_bench.machine.environment', fromlist=['cpu_name']).cpu_name()}, torch {torch.__version__}")
    print("| case | vendor | " + " | ".join(impls) + " | summed in low precision |")
    print("|---|---|" + "---|" * (len(impls) + 1))
    worst_correct = {f: 0.0 for f in factors}
    for spec in specs:
        case = spec.make()
        ref = reference_of(case.clone())

        def margins(result) -> list[float]:
            return [vendor_relative(result, ref.vendor, ref.truth, dtype=case.dtype, factor=f).worst for f in factors]

        cells = []
        for name in impls:
            m = margins(get_impl(name).fn(case.clone()))
            if name in ("reference", "vectorised"):
                worst_correct = {f: max(worst_correct[f], x) for f, x in zip(factors, m)}
            cells.append("/".join(f"{x:.2f}" for x in m))
        cells.append("/".join(f"{x:.2f}" for x in margins(summed_in_low_precision(case.clone()))))
        print(f"| {spec.id} | {ref.vendor.backend} | " + " | ".join(cells) + " |", flush=True)
    print("worst err/bound of the float32-accumulating kernels (reference, vectorised): "
          + ", ".join(f"F={f:g}: {x:.2f}" for f, x in worst_correct.items()))


if __name__ == "__main__":
    study = sys.argv[1] if len(sys.argv) > 1 else "smallest"
    {"smallest": smallest, "windows": windows, "low_precision": low_precision}.get(study, lambda: sys.exit(f"unknown study {study!r}"))()
