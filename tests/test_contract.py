"""The contract: deterministic cases, the registry, clear errors on bad input, and
manual paths that never touch autograd."""
from __future__ import annotations

import dataclasses

import pytest
import torch

import lstm_bench
from lstm_bench import (GRAD_NAMES, Case, Result, available_impls, get_impl, make_case, register_impl,
                        unregister_impl)


def test_same_seed_same_numbers_across_dtypes():
    a = make_case(5, 2, 3, 4, dtype=torch.float64, seed=3)
    b = make_case(5, 2, 3, 4, dtype=torch.float32, seed=3)
    c = make_case(5, 2, 3, 4, dtype=torch.float64, seed=4)
    for k, t in a.tensors().items():
        assert torch.equal(t.to(torch.float32), b.tensors()[k]), k
    assert not torch.equal(a.x, c.x)


def test_case_draws_follow_nn_lstm_init_and_nonzero_states():
    H = 16
    case = make_case(3, 2, 5, H, dtype=torch.float64)
    bound = 1 / H ** 0.5
    for t in case.weights.as_tuple():
        assert t.abs().max() <= bound
    assert case.h0.abs().min() > 0 and case.c0.abs().min() > 0
    for t in (case.d_output, case.d_h_n, case.d_c_n):
        assert t.abs().min() > 0


def test_forget_bias_and_weight_scale():
    H = 4
    case = make_case(2, 1, 3, H, dtype=torch.float64, forget_bias=5.0)
    b = case.weights.bias_ih + case.weights.bias_hh
    assert torch.all(b[H:2 * H] == 5.0)
    plain, scaled = make_case(2, 1, 3, H, dtype=torch.float64), make_case(2, 1, 3, H, dtype=torch.float64,
                                                                         weight_scale=10.0)
    assert torch.allclose(scaled.weights.weight_hh, 10 * plain.weights.weight_hh)


@pytest.mark.parametrize("name", ["reference", "vectorised", "autograd", "nn_lstm", "nn_lstm_native"])
def test_result_has_the_contracted_fields(name, device):
    case = make_case(3, 2, 5, 4, device=device)
    result = get_impl(name)(case)
    assert isinstance(result, Result)
    assert set(result.grads) == set(GRAD_NAMES)
    assert result.output.shape == (3, 2, 4) and result.h_n.shape == (2, 4) and result.c_n.shape == (2, 4)
    assert result.backend


def test_nn_lstm_records_the_backend_that_ran(device):
    case = make_case(3, 2, 5, 4, device=device)
    native = get_impl("nn_lstm_native")(case)
    assert native.backend == "native"
    fast = get_impl("nn_lstm")(case).backend
    if device == "cuda":
        assert fast == "cudnn"
    elif torch.backends.mkldnn.is_available():
        assert fast == "onednn"
    # float64 has no oneDNN kernel: PyTorch falls back to ATen's, and the result says so
    assert get_impl("nn_lstm")(case.to(torch.float64)).backend in ("native", "cudnn")


def test_native_kernels_restores_flags():
    from lstm_bench.impls.nn_lstm import native_kernels
    before = torch.backends.cudnn.enabled, torch._C._get_mkldnn_enabled()
    with pytest.raises(RuntimeError):
        with native_kernels():
            assert not torch._C._get_mkldnn_enabled()
            raise RuntimeError("boom")
    assert (torch.backends.cudnn.enabled, torch._C._get_mkldnn_enabled()) == before


@pytest.mark.parametrize("name", ["reference", "vectorised"])
def test_manual_paths_never_call_autograd(name, monkeypatch):
    case = make_case(4, 2, 3, 5, dtype=torch.float64)
    expected = get_impl(name)(case)

    def forbidden(*args, **kwargs):
        raise AssertionError("a manual path called autograd")

    monkeypatch.setattr(torch.autograd, "grad", forbidden)
    monkeypatch.setattr(torch.autograd, "backward", forbidden)
    monkeypatch.setattr(torch.Tensor, "backward", forbidden)
    leaves = Case.from_tensors({k: v.clone().requires_grad_() for k, v in case.tensors().items()})
    result = get_impl(name)(leaves)
    for k, t in result.tensors().items():
        assert t.grad_fn is None and not t.requires_grad, f"{name} built an autograd graph for {k}"
        assert torch.equal(t, expected.tensors()[k]), k
    with torch.no_grad():
        under_no_grad = get_impl(name)(case)
    for k, t in under_no_grad.tensors().items():
        assert torch.equal(t, expected.tensors()[k]), k


def test_autograd_paths_work_under_no_grad():
    case = make_case(3, 2, 3, 4, dtype=torch.float64)
    expected = get_impl("autograd")(case)
    with torch.no_grad():
        for name in ("autograd", "nn_lstm", "nn_lstm_native"):
            got = get_impl(name)(case)
            assert torch.allclose(got.grads["weight_hh"], expected.grads["weight_hh"]), name


def test_available_impls_and_builtins():
    assert set(available_impls("cpu")) >= {"reference", "vectorised", "autograd", "nn_lstm", "nn_lstm_native"}


def test_register_a_user_impl_runs_under_the_same_checks():
    def mine(case: Case) -> Result:
        return get_impl("vectorised")(case)

    register_impl("test_user_kernel", mine, devices=["cpu"])
    try:
        assert "test_user_kernel" in available_impls("cpu")
        from lstm_bench.tolerance import check_against_reference
        assert check_against_reference("test_user_kernel", make_case(3, 2, 3, 4)).passed
        with pytest.raises(ValueError, match="already registered"):
            register_impl("test_user_kernel", mine)
    finally:
        unregister_impl("test_user_kernel")
    assert "test_user_kernel" not in available_impls("cpu")


# ---- bad input: a clear error naming the argument, never a deep torch error ----

@pytest.mark.parametrize("kwargs, match", [
    (dict(seq_len=0), "seq_len must be a positive int, got 0"),
    (dict(batch=-1), "batch must be a positive int, got -1"),
    (dict(input_size=2.5), "input_size must be a positive int, got 2.5"),
    (dict(hidden_size=True), "hidden_size must be a positive int"),
    (dict(dtype=torch.int64), "dtype must be a floating torch dtype"),
    (dict(dtype="float33"), "dtype must be a floating torch dtype"),
    (dict(device="tpu"), "device must be one of"),
    (dict(seed="x"), "seed must be an int"),
])
def test_make_case_rejects_bad_arguments(kwargs, match):
    args = dict(seq_len=2, batch=2, input_size=3, hidden_size=4)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        make_case(**args)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_missing_device_is_named():
    with pytest.raises(ValueError, match="device 'cuda' is not available here"):
        make_case(2, 2, 3, 4, device="cuda")


def test_unknown_impl_is_a_key_error_listing_known_names():
    with pytest.raises(KeyError, match="unknown implementation 'cudnn_v9'.*vectorised"):
        get_impl("cudnn_v9")
    with pytest.raises(ValueError, match="device must be one of"):
        available_impls("gpu")


def _broken(case: Case, **fields) -> Case:
    t = case.tensors()
    t.update(fields)
    return Case.from_tensors(t)


@pytest.mark.parametrize("name", ["reference", "vectorised", "autograd", "nn_lstm", "nn_lstm_native"])
@pytest.mark.parametrize("field, make, match", [
    ("weight_hh", lambda c: c.weights.weight_hh[:, :-1], r"case.weight_hh has shape \(16, 3\), expected \(16, 4\)"),
    ("weight_ih", lambda c: c.weights.weight_ih.T, r"case.weight_ih has shape \(3, 16\), expected \(16, 3\)"),
    ("d_output", lambda c: c.d_output[:-1], r"case.d_output has shape \(4, 2, 4\), expected \(5, 2, 4\)"),
    ("h0", lambda c: c.h0[None], r"case.h0 must be 2-D \(B, H\), got shape \(1, 2, 4\)"),
    ("x", lambda c: c.x[0], r"case.x must be 3-D \(T, B, I\), got shape \(2, 3\)"),
    ("c0", lambda c: c.c0.double(), r"case.c0 has dtype torch.float64, but case.x has torch.float32"),
    ("bias_ih", lambda c: c.weights.bias_ih.to("meta"), r"case.bias_ih is on meta, but case.x is on cpu"),
    ("x", lambda c: c.x[:, :, :0], r"case has I = 0"),
])
def test_paths_reject_inconsistent_cases(name, field, make, match):
    case = make_case(5, 2, 3, 4)
    with pytest.raises(ValueError, match=match):
        get_impl(name)(_broken(case, **{field: make(case)}))


def test_user_impl_returning_wrong_result_is_named():
    def bad(case):
        r = get_impl("vectorised")(case)
        del r.grads["bias_hh"]
        return r

    register_impl("test_bad_result", bad)
    try:
        with pytest.raises(ValueError, match=r"'test_bad_result' returned grads .* missing \['bias_hh'\]"):
            get_impl("test_bad_result")(make_case(2, 1, 2, 3))
    finally:
        unregister_impl("test_bad_result")


def test_register_rejects_bad_arguments():
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        register_impl("", lambda c: c)
    with pytest.raises(ValueError, match="fn must be callable"):
        register_impl("x", 3)
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        register_impl("x", lambda c: c, devices=["tpu"])


def test_public_api_names():
    for name in ("make_case", "Case", "LSTMWeights", "Result", "get_impl", "available_impls", "register_impl",
                 "agreement", "load_impl"):
        assert hasattr(lstm_bench, name), name
    assert [f.name for f in dataclasses.fields(Case)] == ["x", "h0", "c0", "weights", "d_output", "d_h_n", "d_c_n"]
