"""The contract: nn.LSTM's names, shapes and semantics in every configuration, deterministic
cases, the registry, clear errors on bad input, and manual implementations that never
touch autograd."""
from __future__ import annotations

import dataclasses
import inspect
import itertools

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import lstm_bench
from lstm_bench import (Case, LSTMConfig, Result, agreement, available_impls, cli, get_impl, make_case, register_impl,
                        unregister_impl)
from lstm_bench.bench.grid import Point
from lstm_bench.conformance.cases import CaseSpec
from lstm_bench.core.contract import check_dtype

CONFIGS = [dict(num_layers=L, bidirectional=bi, proj_size=P, batch_first=bf)
           for L, bi, P, bf in itertools.product((1, 2), (False, True), (0, 2), (False, True))]
config_ids = [LSTMConfig(3, 5, **c).label or "plain" for c in CONFIGS]


def test_make_case_has_exactly_the_issues_signature():
    params = inspect.signature(make_case).parameters
    assert list(params)[:4] == ["seq_len", "batch", "input_size", "hidden_size"]
    for name, default in (("num_layers", 1), ("bidirectional", False), ("proj_size", 0), ("batch_first", False),
                          ("lengths", None), ("dtype", torch.float32), ("device", "cpu"), ("seed", 0)):
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY and params[name].default == default, name


@pytest.mark.parametrize("config", CONFIGS, ids=config_ids)
def test_weights_load_into_nn_lstm_and_shapes_are_nn_lstms(config):
    T, B, I, H = 4, 3, 3, 5
    case = make_case(T, B, I, H, **config, seed=1)
    c = case.config
    module = torch.nn.LSTM(I, H, **config)
    module.load_state_dict(case.weights)  # unchanged: nn.LSTM's own parameter names and shapes
    assert list(case.weights) == [n for n, _ in module.named_parameters()]
    D, H_out = 2 if c.bidirectional else 1, c.proj_size or H
    seq = (B, T) if c.batch_first else (T, B)
    assert case.x.shape == (*seq, I) and case.d_output.shape == (*seq, D * H_out)
    assert case.h0.shape == case.d_h_n.shape == (c.num_layers * D, B, H_out)
    assert case.c0.shape == case.d_c_n.shape == (c.num_layers * D, B, H)
    result = get_impl("vectorised")(case)
    output, (h_n, c_n) = module(case.x, (case.h0, case.c0))
    assert result.output.shape == output.shape and result.h_n.shape == h_n.shape and result.c_n.shape == c_n.shape
    assert list(result.grads) == ["x", "h0", "c0", *case.weights]


@pytest.mark.parametrize("config", CONFIGS, ids=config_ids)
def test_the_truth_has_nn_lstms_semantics_with_and_without_lengths(config):
    # The float64 truth every kernel is judged against (autograd over the stack composition)
    # against nn.LSTM itself, packed sequences through pack_padded_sequence as a user writes it.
    for lengths in (None, torch.tensor([4, 1, 3])):
        case = make_case(4, 3, 3, 5, **config, lengths=lengths, dtype=torch.float64, seed=2)
        module = case.config.module(dtype=torch.float64)
        module.load_state_dict(case.weights)
        with torch.enable_grad():
            x, h0, c0 = (t.clone().requires_grad_() for t in (case.x, case.h0, case.c0))
            if lengths is None:
                out, (h_n, c_n) = module(x, (h0, c0))
            else:
                packed = pack_padded_sequence(x, lengths, batch_first=case.config.batch_first, enforce_sorted=False)
                out, (h_n, c_n) = module(packed, (h0, c0))
                out, _ = pad_packed_sequence(out, batch_first=case.config.batch_first, total_length=4)
            params = [dict(module.named_parameters())[n] for n in case.weights]
            grads = torch.autograd.grad((out, h_n, c_n), (x, h0, c0, *params),
                                        (case.d_output, case.d_h_n, case.d_c_n))
        nn_result = Result(out.detach(), h_n.detach(), c_n.detach(), dict(zip(case.config.grad_names(), grads)))
        report = agreement(get_impl("autograd")(case), nn_result)
        assert report.passed, str(report)


def test_lengths_semantics():
    case = make_case(5, 3, 2, 4, bidirectional=True, lengths=torch.tensor([5, 2, 1]), dtype=torch.float64, seed=3)
    r = get_impl("reference")(case)
    assert torch.all(r.output[2:, 1] == 0) and torch.all(r.output[1:, 2] == 0)  # padded positions are zero
    assert torch.all(r.grads["x"][2:, 1] == 0)  # ... and get no gradient
    # d_output at padded positions is ignored: changing it changes nothing
    other = dataclasses.replace(case, d_output=case.d_output.clone())
    other.d_output[3:, 1] = 123.0
    assert torch.equal(get_impl("reference")(other).grads["weight_hh_l0"], r.grads["weight_hh_l0"])
    # h_n of a sequence of length 2 is its state after step 2, as the same sequence cut to 2 steps gives
    cut = make_case(2, 1, 2, 4, bidirectional=True, dtype=torch.float64, seed=3)
    cut = dataclasses.replace(cut, x=case.x[:2, 1:2].clone(), h0=case.h0[:, 1:2].clone(), c0=case.c0[:, 1:2].clone(),
                              weights=case.weights)
    alone = get_impl("reference")(cut)
    assert torch.allclose(r.h_n[:, 1], alone.h_n[:, 0]) and torch.allclose(r.c_n[:, 1], alone.c_n[:, 0])


def test_same_seed_same_numbers_across_dtypes_and_layouts():
    a = make_case(5, 2, 3, 4, num_layers=2, dtype=torch.float64, seed=3)
    b = make_case(5, 2, 3, 4, num_layers=2, dtype=torch.float32, seed=3)
    c = make_case(5, 2, 3, 4, num_layers=2, dtype=torch.float64, seed=4)
    for k, t in a.tensors().items():
        assert torch.equal(t.to(torch.float32), b.tensors()[k]), k
    assert not torch.equal(a.x, c.x)
    first = make_case(5, 2, 3, 4, num_layers=2, batch_first=True, dtype=torch.float64, seed=3)
    assert torch.equal(first.x, a.x.transpose(0, 1)) and torch.equal(first.d_output, a.d_output.transpose(0, 1))


def test_case_draws_follow_nn_lstm_init_and_nonzero_states():
    H = 16
    case = make_case(3, 2, 5, H, num_layers=2, proj_size=4, dtype=torch.float64)
    bound = 1 / H ** 0.5
    for t in case.weights.values():
        assert t.abs().max() <= bound
    assert case.h0.abs().min() > 0 and case.c0.abs().min() > 0
    for t in (case.d_output, case.d_h_n, case.d_c_n):
        assert t.abs().min() > 0


def test_forget_bias_and_weight_scale():
    H = 4
    case = make_case(2, 1, 3, H, num_layers=2, bidirectional=True, dtype=torch.float64, forget_bias=5.0)
    for layer, d in case.config.layers():
        n = case.config.names(layer, d)
        assert torch.all((case.weights[n.bias_ih] + case.weights[n.bias_hh])[H:2 * H] == 5.0)
    plain, scaled = make_case(2, 1, 3, H, dtype=torch.float64), make_case(2, 1, 3, H, dtype=torch.float64,
                                                                         weight_scale=10.0)
    assert torch.allclose(scaled.weights["weight_hh_l0"], 10 * plain.weights["weight_hh_l0"])


def test_nn_lstm_records_the_backend_that_ran(device):
    case = make_case(3, 2, 5, 4, device=device)
    native = get_impl("nn_lstm_native")(case)
    assert native.backend == "native"
    fast = get_impl("nn_lstm")(case).backend
    if device == "cuda":
        assert fast == "cudnn"
    elif torch.backends.mkldnn.is_available():
        assert fast == "onednn"
    # float64 has no oneDNN kernel, nor has a projection: ATen's runs, and the result says so
    assert get_impl("nn_lstm")(case.to(torch.float64)).backend in ("native", "cudnn")
    if device == "cpu":
        assert get_impl("nn_lstm")(make_case(3, 2, 5, 4, proj_size=2)).backend == "native"


def test_native_kernels_restores_flags():
    from lstm_bench.impls.nn_lstm import native_kernels
    before = torch.backends.cudnn.enabled, torch._C._get_mkldnn_enabled()
    with pytest.raises(RuntimeError):
        with native_kernels():
            assert not torch._C._get_mkldnn_enabled()
            raise RuntimeError("boom")
    assert (torch.backends.cudnn.enabled, torch._C._get_mkldnn_enabled()) == before


@pytest.mark.parametrize("name", ["reference", "vectorised"])
def test_manual_implementations_never_call_autograd(name, monkeypatch):
    case = make_case(4, 3, 3, 5, num_layers=2, bidirectional=True, proj_size=2, lengths=torch.tensor([4, 1, 2]),
                     dtype=torch.float64)
    expected = get_impl(name)(case)

    def forbidden(*args, **kwargs):
        raise AssertionError("a manual implementation called autograd")

    monkeypatch.setattr(torch.autograd, "grad", forbidden)
    monkeypatch.setattr(torch.autograd, "backward", forbidden)
    monkeypatch.setattr(torch.Tensor, "backward", forbidden)
    leaves = case.with_tensors({k: v.clone().requires_grad_() for k, v in case.tensors().items()})
    result = get_impl(name)(leaves)
    for k, t in result.tensors().items():
        assert t.grad_fn is None and not t.requires_grad, f"{name} built an autograd graph for {k}"
        assert torch.equal(t, expected.tensors()[k]), k
    with torch.no_grad():
        under_no_grad = get_impl(name)(case)
    for k, t in under_no_grad.tensors().items():
        assert torch.equal(t, expected.tensors()[k]), k


def test_autograd_implementations_work_under_no_grad():
    case = make_case(3, 2, 3, 4, dtype=torch.float64)
    expected = get_impl("autograd")(case)
    with torch.no_grad():
        for name in ("autograd", "nn_lstm", "nn_lstm_native"):
            got = get_impl(name)(case)
            assert torch.allclose(got.grads["weight_hh_l0"], expected.grads["weight_hh_l0"]), name


def test_available_impls_and_builtins():
    assert set(available_impls("cpu")) >= {"reference", "vectorised", "autograd", "nn_lstm", "nn_lstm_native"}


def test_register_a_user_impl_runs_under_the_same_checks():
    def mine(case: Case) -> Result:
        return get_impl("vectorised")(case)

    register_impl("test_user_kernel", mine, devices=["cpu"])
    try:
        assert "test_user_kernel" in available_impls("cpu")
        from lstm_bench.conformance.judge import judge_against_reference
        assert judge_against_reference("test_user_kernel", make_case(3, 2, 3, 4)).passed
        with pytest.raises(ValueError, match="already registered"):
            register_impl("test_user_kernel", mine)
    finally:
        unregister_impl("test_user_kernel")
    assert "test_user_kernel" not in available_impls("cpu")


def test_a_feature_a_kernel_does_not_declare_is_skipped_with_the_reason():
    register_impl("test_single_layer_only", get_impl("vectorised").fn, devices=["cpu"], features=())
    try:
        impl = get_impl("test_single_layer_only")
        assert impl.unsupported_reason(make_case(3, 2, 3, 4)) is None
        reason = impl.unsupported_reason(make_case(3, 2, 3, 4, num_layers=2, lengths=torch.tensor([3, 1])))
        assert "does not implement layers, lengths" in reason
    finally:
        unregister_impl("test_single_layer_only")


# ---- bad input: a clear error naming the argument, never a deep torch error ----

@pytest.mark.parametrize("kwargs, match", [
    (dict(seq_len=0), "seq_len must be a positive int, got 0"),
    (dict(batch=-1), "batch must be a positive int, got -1"),
    (dict(input_size=2.5), "input_size must be a positive int, got 2.5"),
    (dict(hidden_size=True), "hidden_size must be a positive int"),
    (dict(num_layers=0), "num_layers must be a positive int, got 0"),
    (dict(proj_size=4), "proj_size must be smaller than hidden_size"),
    (dict(bidirectional=1), "bidirectional must be True or False"),
    (dict(lengths=torch.tensor([1, 3])), r"lengths must lie in \[1, T=2\]"),
    (dict(lengths=torch.tensor([1.0, 2.0])), "lengths must be an int64 CPU tensor of shape"),
    (dict(lengths=torch.tensor([1])), r"lengths must be an int64 CPU tensor of shape \(2,\)"),
    (dict(dtype=torch.int64), "dtype must be one of torch.float32"),
    (dict(dtype="float33"), "dtype .float33. is not one an LSTM case can be made in"),
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
    return case.with_tensors({**case.tensors(), **fields})


@pytest.mark.parametrize("name", ["reference", "vectorised", "autograd", "nn_lstm", "nn_lstm_native"])
@pytest.mark.parametrize("field, make, match", [
    ("weight_hh_l0", lambda c: c.weights["weight_hh_l0"][:, :-1],
     r"case.weight_hh_l0 has shape \(16, 3\), expected \(16, 4\)"),
    ("weight_ih_l0", lambda c: c.weights["weight_ih_l0"].T, r"case.weight_ih_l0 has shape \(3, 16\), expected \(16, 3\)"),
    ("d_output", lambda c: c.d_output[:-1], r"case.d_output has shape \(4, 2, 4\), expected \(5, 2, 4\)"),
    ("h0", lambda c: c.h0[0], r"case.h0 has shape \(2, 4\), expected \(1, 2, 4\)"),
    ("x", lambda c: c.x[0], r"case.x must be 3-D \(T, B, I\), got shape \(2, 3\)"),
    ("c0", lambda c: c.c0.double(), r"case.c0 has dtype torch.float64, but case.x has torch.float32"),
    ("bias_ih_l0", lambda c: c.weights["bias_ih_l0"].to("meta"), r"case.bias_ih_l0 is on meta, but case.x is on cpu"),
    ("x", lambda c: c.x[:, :, :0], r"case.x has shape \(5, 2, 0\), expected \(5, 2, 3\)"),
])
def test_implementations_reject_inconsistent_cases(name, field, make, match):
    case = make_case(5, 2, 3, 4)
    with pytest.raises(ValueError, match=match):
        get_impl(name)(_broken(case, **{field: make(case)}))


def test_user_impl_returning_wrong_result_is_named():
    def bad(case):
        r = get_impl("vectorised")(case)
        del r.grads["bias_hh_l0"]
        return r

    register_impl("test_bad_result", bad)
    try:
        with pytest.raises(ValueError, match=r"'test_bad_result' returned grads .* missing \['bias_hh_l0'\]"):
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
    with pytest.raises(ValueError, match="unknown feature 'peepholes'"):
        register_impl("x", lambda c: c, features=["peepholes"])


def test_public_api_names():
    for name in ("make_case", "Case", "LSTMConfig", "Result", "get_impl", "available_impls", "register_impl",
                 "agreement", "load_impl"):
        assert hasattr(lstm_bench, name), name
    assert [f.name for f in dataclasses.fields(Case)] == ["x", "h0", "c0", "weights", "d_output", "d_h_n", "d_c_n",
                                                          "config", "lengths"]


@pytest.mark.parametrize("typed, name", [("float32", "float32"), ("torch.float32", "float32"), ("fp32", "float32"),
                                         ("half", "float16"), ("bf16", "bfloat16"), ("Double", "float64")])
def test_one_dtype_parser_for_every_command(typed, name):
    assert check_dtype(typed) == getattr(torch, name)
    assert CaseSpec(2, 1, 1, 1, dtype=typed).dtype == name  # what check and the suite make cases from
    assert Point("vectorised", 2, 1, 1, 1, dtype=typed).dtype == name  # what bench sweeps


@pytest.mark.parametrize("typed", ["float8", "int32", "torch.int64", ""])
def test_a_dtype_no_case_can_be_made_in_is_refused_naming_the_accepted_ones(typed):
    with pytest.raises(ValueError, match="use one of float32, float64, bfloat16, float16"):
        check_dtype(typed)


def test_an_absurd_size_is_one_line_of_bad_input_not_a_crash(capsys):
    assert cli.main(["check", "--impl", "vectorised", "-H", "99999999999999999999", "--summary"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "GiB for its tensors alone" in err and "Traceback" not in err
    with pytest.raises(ValueError, match="GiB for its tensors alone"):
        make_case(10**8, 8, 16, 1000)
