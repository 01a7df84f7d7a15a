"""The support matrix of the README, measured: every registered implementation on one case per
configuration feature, in every dtype, judged under the tolerance policy.

    python -m studies.support_matrix            # markdown, on the CPU (and CUDA where there is one)

A cell is "pass (err/bound)" when the implementation agrees with the float64 truth (in
bfloat16 and float16: relative to the vendor's error, `lstm_bench.conformance.policy`), "FAIL" when
it does not, "unsupported [n]" with the implementation's own reason n (listed under the
table) when it declares that it does not run the case, and "yardstick" for the vendor's
own low-precision cells (it is what the others are judged against). The cases: T = 20, B = 4, I = 12, H = 16 (a plain LSTM), then
each feature alone: 2 layers, bidirectional, a projection to 8, batch_first, lengths
(20, 7, 13, 1).
"""
from __future__ import annotations

import sys

import torch

from lstm_bench import available_devices, available_impls
from lstm_bench.conformance.assertions import judge
from lstm_bench.conformance.cases import CaseSpec
from lstm_bench.conformance.policy import LOW_PRECISION, VENDOR
from lstm_bench.core.support import Unsupported
from lstm_bench.machine.environment import cpu_name, gpu_name
from lstm_bench.machine.timing import set_threads

PLAIN = CaseSpec(20, 4, 12, 16, seed=3, label="support matrix")
FEATURES = {
    "plain": {},
    "layers (2)": {"num_layers": 2},
    "bidirectional": {"bidirectional": True},
    "projection (8)": {"proj_size": 8},
    "batch_first": {"batch_first": True},
    "lengths": {"lengths": (20, 7, 13, 1)},
}
DTYPES = ("float32", "float64", "bfloat16", "float16")


def cell(impl: str, spec: CaseSpec, device: str, reasons: list[str]) -> str:
    if impl == VENDOR and spec.torch_dtype in LOW_PRECISION:
        return "yardstick"
    try:
        report = judge(impl, spec, device=device)
    except Unsupported as why:
        reason = str(why).replace(f"implementation {impl!r} ", f"{impl} ")
        if reason not in reasons:
            reasons.append(reason)
        return f"unsupported [{reasons.index(reason) + 1}]"
    except Exception as err:  # a crash is a failure of the implementation, shown as such
        return f"FAIL ({type(err).__name__}: {err})"
    return f"pass ({report.worst:.2f})" if report.passed else f"FAIL ({report.worst:.2g})"


def main() -> None:
    set_threads(1)
    for device in available_devices():
        where = gpu_name() if device == "cuda" else cpu_name()
        print(f"\n{device} ({where}), torch {torch.__version__}; cell: pass (worst err/bound) | FAIL | unsupported\n")
        print("| implementation | feature | " + " | ".join(DTYPES) + " |")
        print("|---|---|" + "---|" * len(DTYPES))
        reasons: list[str] = []
        for impl in available_impls(device):
            for feature, changes in FEATURES.items():
                cells = [cell(impl, PLAIN.replace(dtype=dtype, **changes), device, reasons) for dtype in DTYPES]
                print(f"| {impl} | {feature} | " + " | ".join(cells) + " |", flush=True)
        print()
        for n, reason in enumerate(reasons, 1):
            print(f"[{n}] {reason}")


if __name__ == "__main__":
    sys.exit(main())
