"""Cases drawn at random on top of the fixed catalogue (hypothesis): sizes up to 300 in T,
I and H and 70 in B, weight scales, forget biases, seeds, in every dtype the kernel
declares. A failure is shrunk to the smallest failing case and printed with the
`lstm-bench check` command that reproduces it. --lstm-seed and --lstm-examples (or
--lstm-depth nightly) widen the search; the same seed draws the same cases."""
from __future__ import annotations

import math

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from lstm_bench.cases import CaseSpec
from lstm_bench.support import Support
from lstm_bench.testing import assert_agrees

# Work of one case, T*B*H*(I+H), kept under this so that a case costs milliseconds.
MAX_WORK = 4_000_000


@st.composite
def case_specs(draw, support: Support) -> CaseSpec:
    """A CaseSpec within what `support` declares, sizes drawn so that they shrink towards 1."""
    limit = lambda axis, top: min(top, support.max_sizes.get(axis, top))  # noqa: E731
    H = draw(st.integers(1, limit("H", 300)))
    I = draw(st.integers(1, limit("I", 300)))
    B = draw(st.integers(1, limit("B", 70)))
    T = draw(st.integers(1, max(1, min(limit("T", 300), math.floor(MAX_WORK / (B * H * (I + H)))))))
    forget_bias = draw(st.none() | st.sampled_from([-1.0, 1.0, 2.0, 3.0, 5.0]))
    weight_scale = draw(st.sampled_from([1.0, 0.5, 2.0, 4.0]))
    return CaseSpec(T, B, I, H, draw(st.sampled_from(support.dtypes)), seed=draw(st.integers(0, 2 ** 16)),
                    weight_scale=weight_scale, forget_bias=forget_bias, label="random")


def test_random_cases(lstm_kernel, lstm_settings):
    kernel = lstm_kernel

    @seed(lstm_settings.seed)
    @settings(max_examples=lstm_settings.examples, deadline=None, database=None, print_blob=False,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(spec=case_specs(kernel.impl.support))
    def agrees(spec: CaseSpec) -> None:
        assert_agrees(kernel.impl, spec, device=kernel.device, msg=f"random case {spec.id}")

    agrees()
