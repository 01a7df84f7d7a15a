"""Cases drawn at random on top of the fixed catalogue (hypothesis): sizes up to 300 in T,
I and H and 70 in B, weight scales, forget biases, seeds, and nn.LSTM's configuration
(1 to 3 layers, directions, a projection, batch_first, variable lengths), in float32 and
float64 as the kernel declares them, within the features it declares. A failure is shrunk
to the smallest failing case and printed with the `lstm-bench check` command that
reproduces it. --lstm-seed and --lstm-examples (or --lstm-depth nightly) widen the
search; the same seed draws the same cases.

bfloat16 and float16 are judged on the catalogue's fixed cases only: against the vendor's
error, a correct kernel exceeded the bound on 1 of 500 random low-precision cases
(saturated gates, float16), and a gate must not fail a correct kernel by chance."""
from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from lstm_bench.conformance.assertions import assert_agrees
from lstm_bench.conformance.cases import CaseSpec
from lstm_bench.core.support import Support

RANDOM_DTYPES = ("float32", "float64")

# Work of one case, T*B*H*(I+H), kept under this so that a case costs milliseconds.
MAX_WORK = 4_000_000


@st.composite
def case_specs(draw, support: Support) -> CaseSpec:
    """A CaseSpec within what `support` declares, sizes drawn so that they shrink towards 1."""
    limit = lambda axis, top: min(top, support.max_sizes.get(axis, top))  # noqa: E731
    has = lambda feature: feature in support.features  # noqa: E731
    layers = draw(st.integers(1, 3)) if has("layers") else 1
    bidirectional = draw(st.booleans()) if has("bidirectional") else False
    directions = 2 if bidirectional else 1
    H = draw(st.integers(1, limit("H", 300)))
    I = draw(st.integers(1, limit("I", 300)))
    B = draw(st.integers(1, limit("B", 70)))
    work = layers * directions * B * H * (max(I, directions * H) + H)
    T = draw(st.integers(1, max(1, min(limit("T", 300), math.floor(MAX_WORK / work)))))
    proj = draw(st.integers(0, H - 1)) if has("projection") and H > 1 else 0
    lengths = draw(st.none() | st.lists(st.integers(1, T), min_size=B, max_size=B)) if has("lengths") else None
    forget_bias = draw(st.none() | st.sampled_from([-1.0, 1.0, 2.0, 3.0, 5.0]))
    weight_scale = draw(st.sampled_from([1.0, 0.5, 2.0, 4.0]))
    dtypes = [d for d in RANDOM_DTYPES if d in support.dtypes]
    return CaseSpec(T, B, I, H, draw(st.sampled_from(dtypes)), seed=draw(st.integers(0, 2 ** 16)),
                    weight_scale=weight_scale, forget_bias=forget_bias, num_layers=layers,
                    bidirectional=bidirectional, proj_size=proj, lengths=lengths,
                    batch_first=draw(st.booleans()) if has("batch_first") else False, label="random")


def test_random_cases(lstm_kernel, lstm_settings):
    kernel = lstm_kernel
    if not any(d in kernel.impl.support.dtypes for d in RANDOM_DTYPES):
        pytest.skip(f"{kernel.name} declares neither float32 nor float64; its low-precision cases are the "
                    "catalogue's")

    @seed(lstm_settings.seed)
    @settings(max_examples=lstm_settings.examples, deadline=None, database=None, print_blob=False,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(spec=case_specs(kernel.impl.support))
    def agrees(spec: CaseSpec) -> None:
        assert_agrees(kernel.impl, spec, device=kernel.device, msg=f"random case {spec.id}")

    agrees()
