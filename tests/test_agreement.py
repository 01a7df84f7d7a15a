"""The correctness gate: every path agrees with every other, on outputs, final
states and all seven gradients, under the tolerance policy (lstm_bench.tolerance)."""
from __future__ import annotations

import functools
import itertools

import pytest
import torch

from lstm_bench import Case, available_impls, agreement, get_impl, make_case
from lstm_bench.tolerance import check_against_reference, compare_tensors, sensitivity

# The gate's grid: T x B x I x H, every combination.
T_AXIS, B_AXIS, I_AXIS, H_AXIS = (1, 2, 7, 40), (1, 3, 8), (1, 5, 16), (1, 4, 32)
GRID = list(itertools.product(T_AXIS, B_AXIS, I_AXIS, H_AXIS))
grid_ids = [f"T{T}-B{B}-I{I}-H{H}" for T, B, I, H in GRID]


def impls_on(device: str) -> list[str]:
    return available_impls(device)


@functools.lru_cache(maxsize=None)
def run_all(sizes: tuple, dtype: torch.dtype, device: str, seed: int = 0) -> tuple:
    """(case, {impl: result}) for every path available on `device`."""
    case = make_case(*sizes, dtype=dtype, device=device, seed=seed)
    return case, {name: get_impl(name)(case) for name in impls_on(device)}


@functools.lru_cache(maxsize=None)
def truth(sizes: tuple, dtype: torch.dtype, device: str, seed: int = 0) -> tuple:
    """float64 autograd result and the policy's sensitivity for the case drawn in `dtype`."""
    case = make_case(*sizes, dtype=dtype, device=device, seed=seed)
    return get_impl("autograd")(case.to(torch.float64)), sensitivity(case)


@pytest.mark.parametrize("sizes", GRID, ids=grid_ids)
def test_all_pairs_agree_float64(sizes, device):
    """float64: every path against every other, strictly."""
    _, results = run_all(sizes, torch.float64, device)
    _, sens = truth(sizes, torch.float64, device)
    failed = []
    for a, b in itertools.combinations(results, 2):
        report = agreement(results[a], results[b], sensitivity=sens, title=f"{a} vs {b}")
        if not report.passed:
            failed.append(str(report))
    assert not failed, "\n\n".join(failed)


@pytest.mark.parametrize("sizes", GRID, ids=grid_ids)
def test_every_path_matches_float64_truth_float32(sizes, device):
    """float32: every path against the float64 result of the same case."""
    _, results = run_all(sizes, torch.float32, device)
    ref, sens = truth(sizes, torch.float32, device)
    failed = []
    for name, result in results.items():
        assert result.output.dtype == torch.float32, f"{name} returned {result.output.dtype} for a float32 case"
        report = agreement(result, ref, sensitivity=sens, title=name)
        if not report.passed:
            failed.append(str(report))
    assert not failed, "\n\n".join(failed)


STRESS = {
    "saturated-gates-x10": dict(sizes=(40, 4, 8, 16), weight_scale=10.0),
    "forget-bias-1": dict(sizes=(40, 4, 8, 16), forget_bias=1.0),
    "forget-bias-5": dict(sizes=(40, 4, 8, 16), forget_bias=5.0),
    "I-ne-H": dict(sizes=(7, 3, 19, 6)),
    "T1-B1": dict(sizes=(1, 1, 5, 4)),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("stress", list(STRESS), ids=list(STRESS))
def test_stress_cases(stress, dtype, device):
    spec = dict(STRESS[stress])
    case = make_case(*spec.pop("sizes"), dtype=dtype, device=device, seed=5, **spec)
    failed = [str(r) for r in (check_against_reference(n, case) for n in impls_on(device)) if not r.passed]
    assert not failed, "\n\n".join(failed)


@pytest.mark.parametrize("weight_scale", [1.0, 10.0], ids=["normal", "saturated-x10"])
def test_long_sequence_float64(weight_scale, device):
    """T = 200 in float64, the reference per-gate path included."""
    case = make_case(200, 2, 6, 8, dtype=torch.float64, device=device, seed=7, weight_scale=weight_scale)
    failed = [str(r) for r in (check_against_reference(n, case) for n in impls_on(device)) if not r.passed]
    assert not failed, "\n\n".join(failed)


def sequence(case: Case, b: int) -> Case:
    """The b-th sequence of a batched case, as a case of batch 1."""
    batch_dim = {"x": 1, "d_output": 1, "h0": 0, "c0": 0, "d_h_n": 0, "d_c_n": 0}
    return Case.from_tensors({k: v.narrow(batch_dim[k], b, 1) if k in batch_dim else v
                              for k, v in case.tensors().items()})


@pytest.mark.parametrize("name", ["reference", "vectorised", "autograd", "nn_lstm", "nn_lstm_native"])
def test_batch_independence(name, device):
    """A batch of B sequences gives what B single-sequence runs give; weight gradients sum."""
    impl = get_impl(name)
    case = make_case(9, 4, 5, 6, dtype=torch.float64, device=device, seed=11)
    batched = impl(case).tensors()
    singles = [impl(sequence(case, b)).tensors() for b in range(4)]
    batch_dim = {"output": 1, "h_n": 0, "c_n": 0, "d_x": 1, "d_h0": 0, "d_c0": 0}
    expected = {k: torch.cat([s[k] for s in singles], dim=batch_dim[k]) if k in batch_dim
                else sum(s[k] for s in singles)  # weight gradients add up over the batch
                for k in batched}
    eps = torch.finfo(torch.float64).eps
    bad = [str(row) for row in (compare_tensors(k, batched[k], expected[k], eps=eps) for k in batched)
           if not row.passed]
    assert not bad, "\n".join(bad)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available: torch.cuda.is_available() is False "
                    "on this machine; the manual-vs-cuDNN check needs a GPU")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("manual", ["reference", "vectorised"])
def test_manual_paths_against_cudnn(manual, dtype):
    """On CUDA, with TF32 off (conftest), the manual paths agree with cuDNN."""
    case = make_case(40, 8, 16, 32, dtype=dtype, device="cuda", seed=3)
    cudnn = get_impl("nn_lstm")(case)
    assert cudnn.backend == "cudnn", f"nn_lstm ran {cudnn.backend!r} on CUDA, expected cuDNN"
    sens = sensitivity(case)
    if dtype == torch.float64:
        report = agreement(get_impl(manual)(case), cudnn, sensitivity=sens)
    else:  # both float32: judge each against float64 truth
        ref = get_impl("autograd")(case.to(torch.float64))
        report = agreement(get_impl(manual)(case), ref, sensitivity=sens)
        assert agreement(cudnn, ref, sensitivity=sens).passed
    assert report.passed, str(report)
