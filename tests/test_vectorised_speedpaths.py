"""Every route of the vectorised implementation is correct, and the choice among them is
honest: the fused C loop, the oneDNN step GEMM with the fused C cell, and the torch-ops loop
(on oneDNN or torch's BLAS) each pass the tolerance policy against float64, float64 stays
strict and never touches oneDNN, a missing private op or compiler falls back with the
backend saying so, the cached oneDNN weights never go stale, and layers with a projection
or variable lengths take the torch-ops loop, in a stack whose plain layers keep their route."""
from __future__ import annotations

import pytest
import torch

from lstm_bench import agreement, get_impl, make_case
from lstm_bench.conformance.judge import judge_against_reference, sensitivity
from lstm_bench.impls import vectorised
from lstm_bench.impls.vectorised import decisions, fused, gemm, routes
from lstm_bench.machine.memory import saved_bytes

CPU = torch.device("cpu")


def choose(dtype, B, H):
    return routes.choose_route(CPU, dtype, B, H, vectorised.plain_step)


def routes_for(dtype):
    return routes.available_routes(CPU, dtype)


def route_id(r):
    return f"{r[0]}-gemm+{r[1]}"


@pytest.fixture(autouse=True)
def _own_decisions(tmp_path, monkeypatch):
    """Each test its own file of stored route decisions (never the user's cache)."""
    monkeypatch.setattr(decisions, "path", lambda: tmp_path / decisions.FILE)


@pytest.fixture
def fresh_choices():
    """Forget chosen routes, oneDNN status and the compiled library before and after a test."""
    def reset():
        routes.reset_routes()
        gemm._status.clear()
        gemm.clear_packs()
        fused.reset()
    reset()
    yield
    reset()


def test_this_machine_has_the_fast_routes():
    """Not a speed test: on this CPU wheel the C kernels build and oneDNN's ops exist, so the
    tests below exercise every route (else they would pass on the fallbacks alone)."""
    status = fused.status()
    assert status["available"], status["why"]
    assert gemm.onednn_status(torch.float32)[0], gemm.onednn_status(torch.float32)[1]
    blas = gemm.blas_name()
    assert routes_for(torch.float32) == [(blas, "fused-loop"), (blas, "torch-ops"), ("onednn", "fused-cell"),
                                         ("onednn", "torch-ops")]
    assert routes_for(torch.float64) == [(blas, "fused-loop"), (blas, "torch-ops")]


@pytest.mark.parametrize("route", routes_for(torch.float32), ids=route_id)
@pytest.mark.parametrize("sizes", [(1, 1, 3, 4), (7, 3, 5, 4), (40, 8, 16, 32), (5, 2, 9, 70)],
                         ids=lambda s: "T{}-B{}-I{}-H{}".format(*s))
def test_every_float32_route_passes_the_policy(route, sizes):
    case = make_case(*sizes, dtype=torch.float32, seed=3)
    with routes.using_route(*route):
        report = judge_against_reference("vectorised", case)
        backend = get_impl("vectorised")(case).backend
    assert report.passed, str(report)
    assert backend == f"vectorised[{route_id(route)}]"


@pytest.mark.parametrize("route", routes_for(torch.float64), ids=route_id)
@pytest.mark.parametrize("spec", [dict(sizes=(40, 8, 16, 32)), dict(sizes=(40, 4, 8, 16), weight_scale=10.0),
                                  dict(sizes=(200, 2, 6, 8))], ids=["normal", "saturated", "T200"])
def test_every_float64_route_is_strict(route, spec):
    """float64 against float64 autograd at the strict floor (3.6e-15 of scale), and never oneDNN."""
    spec = dict(spec)
    case = make_case(*spec.pop("sizes"), dtype=torch.float64, seed=4, **spec)
    with routes.using_route(*route):
        result = get_impl("vectorised")(case)
        report = judge_against_reference("vectorised", case)
    assert report.passed, str(report)
    assert "onednn" not in result.backend
    truth = get_impl("autograd")(case)
    assert agreement(result, truth, sensitivity=sensitivity(case)).passed


def test_float64_cannot_be_forced_onto_onednn():
    case = make_case(3, 2, 4, 5, dtype=torch.float64)
    assert all(r[0] != "onednn" for r in routes_for(torch.float64))
    with routes.using_route("onednn", "fused-cell"), pytest.raises(ValueError, match="cannot run"):
        vectorised.run(case)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_routes_agree_on_state_grads_and_noncontiguous_inputs(dtype):
    """d_h, d_c (T, B, H) from every route, on a case whose batch is a narrowed view."""
    case = make_case(9, 5, 6, 7, dtype=dtype, seed=8).narrow_batch(1, 3)
    assert not case.x.is_contiguous()
    results = {}
    for route in routes_for(dtype):
        with routes.using_route(*route):
            results[route] = vectorised.run(case, state_grads=True)
    eps = torch.finfo(dtype).eps
    base = results[(gemm.blas_name(), "torch-ops")]  # the plain loop
    for route, r in results.items():
        for name in ("d_h", "d_c"):
            a, b = getattr(r, name), getattr(base, name)
            assert a.shape == (9, 3, 7)
            assert torch.allclose(a, b, rtol=0, atol=1e4 * eps * b.abs().max()), (route, name)
        report = agreement(r, base, sensitivity=sensitivity(case), title=route_id(route))
        assert report.passed, str(report)


@pytest.mark.parametrize("route", routes_for(torch.float32), ids=route_id)
def test_every_route_saves_exactly_the_documented_cache(route):
    """gates (T, B, 4H) + h and c (T+1, B, H): oneDNN's reordered weights are made at the
    first call and kept across calls, so they are not bytes a forward keeps for its backward."""
    T, B, I, H = 6, 3, 5, 7
    with routes.using_route(*route):
        got = saved_bytes("vectorised", make_case(T, B, I, H))
    assert got == (T * B * 4 * H + 2 * (T + 1) * B * H) * 4


@pytest.mark.parametrize("loop", ["fused-cell", "torch-ops"])
def test_cached_onednn_weight_follows_in_place_changes(loop):
    """The packed weight is keyed by the tensor and its version: changing the weights in place
    between calls must change the result exactly as a fresh case would."""
    case = make_case(6, 4, 5, 8, seed=1)
    with routes.using_route("onednn", loop):
        vectorised.run(case)  # packs weight_ih, weight_hh (and transposes)
        with torch.no_grad():
            case.weights["weight_hh_l0"].mul_(-0.5)
            case.weights["weight_ih_l0"].add_(0.25)
        report = judge_against_reference("vectorised", case)
    assert report.passed, str(report)


def test_packed_cache_is_not_fooled_by_a_new_tensor_at_a_reused_address():
    w = torch.randn(16, 4)
    p1 = gemm.packed(w, 2)
    assert gemm.packed(w, 2) is p1  # a hit while the tensor lives unchanged
    del w
    w2 = torch.randn(16, 4)  # may well reuse the freed storage and id
    x = torch.randn(2, 4)
    assert torch.allclose(gemm.linear(x, gemm.packed(w2, 2)), x @ w2.T, atol=1e-5)


def test_missing_private_op_falls_back_with_the_backend_saying_so(monkeypatch, fresh_choices):
    """A torch without torch.ops.mkldnn._linear_pointwise: no oneDNN route, the BLAS one runs."""
    def missing():
        raise AttributeError("'_OpNamespace' 'mkldnn' object has no attribute '_linear_pointwise'")
    monkeypatch.setattr(gemm, "_ops", missing)
    ok, why = gemm.onednn_status(torch.float32)
    assert not ok and "_linear_pointwise" in why
    assert all(r[0] != "onednn" for r in routes_for(torch.float32))
    case = make_case(5, 16, 8, 96, seed=2)  # above the probe size: would probe oneDNN if it existed
    result = get_impl("vectorised")(case)
    assert result.backend == f"vectorised[{gemm.blas_name()}-gemm+fused-loop]"
    assert judge_against_reference("vectorised", case).passed


def test_onednn_giving_wrong_numbers_is_not_used(monkeypatch, fresh_choices):
    real = gemm._ops

    def wrong():
        lin, lin_bin, reorder = real()
        return (lambda *a: lin(*a) * 1.01), lin_bin, reorder
    monkeypatch.setattr(gemm, "_ops", wrong)
    ok, why = gemm.onednn_status(torch.float32)
    assert not ok and "wrong numbers" in why


@pytest.mark.parametrize("how", ["env", "no-compiler", "ilp64-or-unknown-blas", "build-fails"])
def test_without_the_c_kernels_the_torch_ops_loop_runs(how, monkeypatch, fresh_choices, tmp_path):
    if how == "env":
        monkeypatch.setenv(fused.DISABLE_ENV, "0")
    elif how == "no-compiler":
        monkeypatch.setattr(fused, "_compiler", lambda: None)
    elif how == "ilp64-or-unknown-blas":
        monkeypatch.setattr(fused, "_blas_info", lambda: "accelerate")
    else:
        monkeypatch.setenv("LSTM_BENCH_CACHE_DIR", str(tmp_path))
        monkeypatch.setattr(fused, "SOURCE", fused.SOURCE + "\n#error broken on purpose\n")
    status = fused.status()
    assert not status["available"] and status["why"]
    blas = gemm.blas_name()
    assert routes_for(torch.float32) == [(blas, "torch-ops"), ("onednn", "torch-ops")]
    assert routes_for(torch.float64) == [(blas, "torch-ops")]
    for dtype in (torch.float32, torch.float64):
        case = make_case(7, 3, 5, 4, dtype=dtype, seed=6)
        result = get_impl("vectorised")(case)
        assert result.backend == f"vectorised[{gemm.blas_name()}-gemm+torch-ops]"
        assert judge_against_reference("vectorised", case).passed


def test_the_library_is_cached_on_disk_and_rebuilt_elsewhere(tmp_path, monkeypatch, fresh_choices):
    monkeypatch.setenv("LSTM_BENCH_CACHE_DIR", str(tmp_path))
    first = fused.status()
    assert first["available"] and first["build_seconds"] > 0
    assert first["path"].startswith(str(tmp_path))
    fused.reset()
    again = fused.status()
    assert again["path"] == first["path"] and again["build_seconds"] == 0.0


def test_probe_runs_once_per_shape_and_picks_a_candidate(fresh_choices):
    B, H = 8, 96
    assert B * H * 4 * H >= routes.PROBE_MIN_MACS
    before = len(routes.probe_log())
    route = choose(torch.float32, B, H)
    log = routes.probe_log()
    assert len(log) == before + 1
    entry = log[-1]
    assert entry["chosen"] == route_id(route)
    assert entry["chosen"] in (entry["default"], min(entry["seconds"], key=entry["seconds"].get))
    assert set(entry["seconds"]) == {"mkl-gemm+fused-loop" if gemm.blas_name() == "mkl" else
                                     "blas-gemm+fused-loop", "onednn-gemm+fused-cell"}
    assert choose(torch.float32, B, H) == route
    assert len(routes.probe_log()) == before + 1  # cached: no second probe
    routes.reset_routes()  # as a fresh process: the stored decision, no probe
    assert choose(torch.float32, B, H) == route
    assert len(routes.probe_log()) == before + 1
    # below the probe size, and in float64, the fused loop is taken without a probe
    assert choose(torch.float32, 2, 8)[1] == "fused-loop"
    assert choose(torch.float64, B, H)[1] == "fused-loop"
    assert len(routes.probe_log()) == before + 1


def test_route_pinned_by_environment(monkeypatch, fresh_choices):
    monkeypatch.setenv(routes.ROUTE_ENV, "onednn-gemm+fused-cell")
    case = make_case(4, 2, 3, 5)
    assert get_impl("vectorised")(case).backend == "vectorised[onednn-gemm+fused-cell]"
    # where the pinned route cannot run (float64 on oneDNN), the usual choice holds
    assert "onednn" not in get_impl("vectorised")(case.to(torch.float64)).backend
    assert routes.probe_log() == [] or all(e["B"] != 2 for e in routes.probe_log())
    monkeypatch.setenv(routes.ROUTE_ENV, "fused-cell")
    with pytest.raises(ValueError, match="LSTM_BENCH_VECTORISED_ROUTE"):
        choose(torch.float32, 3, 3)


def test_an_unreliable_probe_keeps_the_default(monkeypatch, fresh_choices):
    """On a machine too busy for the figures to mean anything, the probe keeps the default."""
    ticks = iter(range(10**6))
    monkeypatch.setattr(routes, "_clock", lambda: next(ticks) ** 1.5)  # ever slower calls
    default = ("onednn", "fused-cell")
    got = routes.probe(CPU, torch.float32, 2, 8, [(gemm.blas_name(), "fused-loop"), default], vectorised.plain_step,
                       default=default)
    assert got == default and routes.probe_log()[-1]["reliable"] is False


def test_default_route_by_size():
    cands = routes.available_routes(CPU, torch.float32)[:1] + [("onednn", "fused-cell")]
    assert routes.default_route(cands, 1, 64) == cands[0]
    assert routes.default_route(cands, 32, 256) == ("onednn", "fused-cell")
    assert routes.default_route(cands[:1], 32, 256) == cands[0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_c_kernels_propagate_nan(dtype):
    case = make_case(4, 2, 3, 5, dtype=dtype)
    case.x[1, 0, 0] = float("nan")
    with routes.using_route(gemm.blas_name(), "fused-loop"):
        r = vectorised.run(case)
    assert r.output[1:, 0].isnan().all() and not r.output[:, 1].isnan().any()


def test_c_activations_match_torch_in_float32_across_the_range():
    """The vectorised exp/sigmoid/tanh of the C cell against torch's, from 0 to saturation."""
    lib = fused.library()
    H = 4096
    z = torch.linspace(-100, 100, 4 * H).reshape(1, 4 * H)
    z[0, :8] = torch.tensor([0.0, -0.0, 1e-30, -1e-30, 1e-4, -3e-3, 0.6249, 0.6251])
    gates, c_prev = z.clone(), torch.zeros(1, H)
    c, h = torch.empty(1, H), torch.empty(1, H)
    lib.fn[("fwd_cell", torch.float32)](1, H, gates.data_ptr(), None, c_prev.data_ptr(), c.data_ptr(),
                                        h.data_ptr())
    zi, zf, zg, zo = z.double().chunk(4, dim=1)
    want = torch.cat([zi.sigmoid(), zf.sigmoid(), zg.tanh(), zo.sigmoid()], dim=1)
    err = (gates.double() - want).abs()
    # relative to the value down to 1e-30 (sigmoid(-69)); below, where the exp is clamped
    # at e^-87, absolute (torch's own float32 sigmoid goes denormal there)
    rel = err / want.abs().clamp_min(1e-30)
    assert rel.max() < 4 * torch.finfo(torch.float32).eps, float(rel.max())
    assert err[want.abs() < 1e-30].max() < 1e-37


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available: torch.cuda.is_available() is "
                    "False on this machine; the CUDA route (torch ops on cuBLAS) is unverified here")
def test_cuda_route_is_torch_ops_on_cublas():
    case = make_case(20, 4, 8, 16, device="cuda")
    result = get_impl("vectorised")(case)
    assert result.backend.startswith("vectorised[") and result.backend.endswith("+torch-ops]")
    assert judge_against_reference("vectorised", case).passed


@pytest.mark.parametrize("route", routes_for(torch.float32), ids=route_id)
def test_layers_with_a_projection_or_lengths_take_the_torch_ops_loop_in_any_stack(route):
    """The C kernels do neither projections nor frozen steps: those layers run torch ops on torch's
    BLAS, the others keep the route, and the whole stack agrees with float64 autograd."""
    blas = gemm.blas_name()
    plain = make_case(6, 3, 5, 8, num_layers=2, bidirectional=True, seed=9)
    special = [make_case(6, 3, 5, 8, proj_size=3, seed=9), make_case(6, 3, 5, 8, lengths=torch.tensor([6, 2, 4]),
                                                                   seed=9)]
    with routes.using_route(*route):
        assert get_impl("vectorised")(plain).backend == f"vectorised[{route_id(route)}]"
        for case in special:
            assert get_impl("vectorised")(case).backend == f"vectorised[{blas}-gemm+torch-ops]"
            report = judge_against_reference("vectorised", case)
            assert report.passed, str(report)
        report = judge_against_reference("vectorised", plain)
    assert report.passed, str(report)
