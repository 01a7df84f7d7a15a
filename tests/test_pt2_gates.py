"""Kernels as they ship (lstm_bench.adapters) and the gates for them (test_pt2.py,
test_adversarial.py): the adapters judged eagerly; the adversarial gates seen failing on the
kernels they exist for; and (marker pt2: they compile, `python -m pytest -m pt2`) a correct
custom-op kernel and a module passing the whole suite, each broken variant failing exactly
the gates meant for it, and `compiled`'s compile time recorded by `bench`."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from lstm_bench import make_case
from lstm_bench.adapters import module_kernel, op_kernel
from lstm_bench.conformance.cases import CaseSpec
from lstm_bench.testing import judge

KERNELS = Path(__file__).parent / "kernels"
KEPT = {"torch", "sympy", "mpmath", "triton", "functorch", "filelock", "jinja2", "networkx",  # across in-process runs
        "numpy"}


@pytest.fixture
def keep_torch_modules(monkeypatch):
    """pytester restores sys.modules after each in-process run and at its teardown, dropping the
    modules imported meanwhile; torch's compiler modules register torch.library namespaces on
    import, which cannot be registered twice; and the compiler's sympy, re-imported after a restore,
    makes a second `Expr` class that the first run's symbols are not instances of ("Can only compare
    inequalities with Expr" in every later compile of the process). Keep torch's and the libraries
    it compiles with (set up before pytester); and numpy's submodules that a compile imports, which,
    dropped and imported again, fail every later numpy import of the process ("cannot load module
    more than once per process": `ab` in tests/test_report.py, run after these in one worker)."""
    from _pytest.pytester import SysModulesSnapshot

    init = SysModulesSnapshot.__init__
    monkeypatch.setattr(SysModulesSnapshot, "__init__", lambda self, preserve=None: init(
        self, preserve=lambda name: name.split(".")[0] in KEPT or bool(preserve and preserve(name))))


@pytest.fixture
def suite(keep_torch_modules, pytester, forget_loaded_kernels):
    def run(module: str, kernel: str, *args: str):
        return pytester.runpytest_inprocess(
            "--pyargs", "lstm_bench.conformance", "-p", "lstm_bench.conformance.plugin", "-p", "no:cacheprovider",
            "-p", "no:benchmark", "--lstm-impl", f"{KERNELS / (module + '.py')}:{kernel}", "--lstm-device", "cpu",
            "-q", "--tb=short", *args)
    return run


def failed_gates(result) -> set[str]:
    """The gates that failed: test function names, with opcheck's utility (test_opcheck[test_schema])."""
    gates = set()
    for rep in result.reprec.getreports("pytest_runtest_logreport"):
        if rep.failed:
            name = rep.nodeid.split("::")[-1].split("[")[0]
            util = re.search(r"-(test_\w+)\]$", rep.nodeid) if name == "test_opcheck" else None
            gates.add(f"{name}[{util.group(1)}]" if util else name)
    return gates


# --- the adapters, eagerly (no compiling) -----------------------------------------------------

def test_module_kernel_runs_nn_lstm_as_a_module_over_every_configuration_axis():
    kernel = module_kernel(lambda config: config.module(), name="nn_lstm_module")
    spec = CaseSpec(7, 4, 5, 6, "float64", seed=3, num_layers=2, bidirectional=True, proj_size=3, batch_first=True,
                    lengths=(7, 3, 1, 5))
    report = judge(kernel, spec)
    assert report.passed, str(report)
    assert kernel.traceable is not None and kernel.fullgraph is False


def test_module_kernel_loads_weights_and_names_a_missing_parameter():
    class Fused(torch.nn.Module):  # a fused weight: not nn.LSTM's names
        def __init__(self, config):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(4 * config.hidden_size, config.input_size + config.hidden_size))

    kernel = module_kernel(Fused, name="fused")
    with pytest.raises(ValueError, match="Fused has no parameter 'weight_ih_l0'.*it has \\['w'\\]"):
        kernel(make_case(3, 2, 4, 5, dtype=torch.float64))


def test_module_kernel_calls_a_custom_load():
    loaded = []

    def load(module, case):
        loaded.append(case.sizes)
        module.load_state_dict(case.weights)

    kernel = module_kernel(lambda config: config.module(), load=load, name="custom_load")
    assert judge(kernel, CaseSpec(4, 2, 3, 5, "float64", seed=1)).passed
    assert loaded == [(4, 2, 3, 5)] * len(loaded) and loaded


def test_op_kernel_judges_a_custom_op_and_its_registered_backward():
    from tests.kernels.custom_op_lstm import lstm_op

    report = judge(lstm_op, CaseSpec(9, 3, 5, 7, "float64", seed=2))
    assert report.passed, str(report)
    assert lstm_op.features == () and lstm_op.ops and lstm_op.fullgraph


def test_op_kernel_with_wrong_arguments_fails_agreement():
    from tests.kernels.custom_op_lstm import lstm_forward

    swapped = op_kernel(lstm_forward, args=lambda case, t: (t["x"], t["c0"], t["h0"], *(
        t[k] for k in case.config.weight_shapes())), name="swapped_states", features=())
    report = judge(swapped, CaseSpec(5, 2, 3, 4, "float64", seed=4))
    assert not report.passed and {"d_h0", "d_c0"} <= {r.name for r in report.failures}


# --- the adversarial gates: cheap, in the default run -----------------------------------------

@pytest.mark.parametrize("kernel, gates", [
    ("caches_by_pointer", {"test_result_after_timing_loop"}),
    ("shares_bias_grads", {"test_results_do_not_alias"}),
])
def test_each_adversarial_kernel_fails_its_gate(suite, kernel, gates):
    result = suite("adversarial", kernel, "-k", "test_adversarial")
    assert failed_gates(result) == gates, result.stdout.str()[-3000:]


def test_the_adversarial_gates_pass_a_correct_kernel(suite):
    result = suite("broken", "correct", "-k", "test_adversarial")
    assert result.parseoutcomes().get("failed", 0) == 0 and result.parseoutcomes()["passed"] == 2


# --- the PT2 family: compiles (marker pt2) ------------------------------------------------------

@pytest.mark.pt2
def test_a_correct_custom_op_kernel_passes_the_whole_suite_with_the_pt2_family(suite):
    result = suite("custom_op_lstm", "lstm_op")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes.get("error", 0) == 0, result.stdout.str()[-3000:]
    ran = {rep.nodeid.split("::")[-1].split("[")[0] for rep in result.reprec.getreports("pytest_runtest_logreport")
           if rep.passed and rep.when == "call"}
    assert {"test_opcheck", "test_compiled_agrees_with_float64_truth", "test_no_graph_breaks",
            "test_result_after_timing_loop", "test_results_do_not_alias", "test_agrees_with_float64_truth"} <= ran


@pytest.mark.pt2
def test_a_correct_module_kernel_passes_the_whole_suite_with_the_pt2_family(suite):
    result = suite("custom_op_lstm", "lstm_module", "--lstm-depth", "quick")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes.get("error", 0) == 0, result.stdout.str()[-3000:]


FAKE_GATES = {"test_opcheck[test_faketensor]", "test_opcheck[test_aot_dispatch_dynamic]",
              "test_compiled_agrees_with_float64_truth", "test_no_graph_breaks"}


@pytest.mark.pt2
@pytest.mark.parametrize("module, kernel, must, may", [
    # no fake kernel, or one of the wrong shape: opcheck's fake-tensor test, and what compiling
    # through the fake kernel meets (aot dispatch, the compiled graph, a graph break)
    ("custom_op_lstm", "lstm_op_no_fake", {"test_opcheck[test_faketensor]", "test_no_graph_breaks"}, FAKE_GATES),
    ("custom_op_lstm", "lstm_op_wrong_fake", {"test_opcheck[test_faketensor]"}, FAKE_GATES),
    ("custom_op_lstm", "module_graph_break", {"test_no_graph_breaks"}, {"test_no_graph_breaks"}),
    ("custom_op_lstm", "module_compiled_differs", {"test_compiled_agrees_with_float64_truth"},
     {"test_compiled_agrees_with_float64_truth"}),
    # gradcheck perturbs its inputs in place too, so a cache keyed by pointer may fail there as well
    # (whether a fresh case's buffers reuse the cached pointers is the allocator's choice)
    ("adversarial", "caches_by_pointer", {"test_result_after_timing_loop"},
     {"test_result_after_timing_loop", "test_gradcheck_float64"}),
])
def test_each_broken_variant_fails_exactly_the_gates_meant_for_it(suite, module, kernel, must, may):
    result = suite(module, kernel, "--lstm-depth", "quick", "--lstm-examples", "3", "--tb=line")
    failed = failed_gates(result)
    assert must <= failed <= may, result.stdout.str()[-3000:]


@pytest.mark.pt2
def test_an_undeclared_mutation_fails_opchecks_schema_test(suite):
    # The write is visible in the case too, so the eager input gate fails as well.
    result = suite("custom_op_lstm", "lstm_op_mutates", "-k", "test_opcheck or test_inputs_are_left_unchanged")
    failed = failed_gates(result)
    assert {"test_opcheck[test_schema]", "test_inputs_are_left_unchanged"} <= failed
    assert failed <= {"test_opcheck[test_schema]", "test_inputs_are_left_unchanged",
                      "test_opcheck[test_aot_dispatch_dynamic]"}  # the write breaks functionalization too
    assert "Argument c0 is not defined as mutable but was mutated" in result.stdout.str()


@pytest.mark.pt2
def test_bench_records_the_compiled_implementations_compile_time_apart(tmp_path):
    from lstm_bench.bench.grid import Point
    from lstm_bench.bench.measure import measure_point
    from lstm_bench.bench.records import Measurement

    m = measure_point(Point("compiled", 4, 2, 8, 8), repeats=2, warmup=1, memory=False)
    assert m.compile_s is not None and m.compile_s >= 0 and m.max_rel_error < 1e-5
    assert Measurement.from_json(m.to_json()).compile_s == m.compile_s
    assert measure_point(Point("vectorised", 4, 2, 8, 8), repeats=1, warmup=0, memory=False).compile_s is None
