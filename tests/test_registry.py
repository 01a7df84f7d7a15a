"""Loading a user's implementation by name: a public function of the registry, with plain errors."""
from __future__ import annotations

import pathlib
import textwrap

import pytest
import torch

import lstm_bench
from lstm_bench import get_impl, load_impl, unregister_impl
from lstm_bench.core.registry import resolve_impls

KERNELS = """
from lstm_bench import get_impl

def mine(case):
    return get_impl("vectorised")(case)

def halves(case):
    return get_impl("vectorised")(case)

halves.forward = get_impl("vectorised").forward
halves.backward = get_impl("vectorised").backward
halves.devices = ("cpu",)
"""


@pytest.fixture
def kernels(tmp_path, monkeypatch):
    (tmp_path / "regkernels.py").write_text(textwrap.dedent(KERNELS))
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    for name in ("mine", "halves", "renamed"):
        try:
            unregister_impl(name)
        except KeyError:
            pass


def test_module_function_and_file_function_load_and_register(kernels):
    impl = load_impl("regkernels:mine")
    assert impl is get_impl("mine") and impl.forward is None
    assert load_impl("regkernels:mine") is impl  # the same function again: the same Impl
    halves = load_impl(f"{kernels / 'regkernels.py'}:halves")
    assert halves.devices == ("cpu",) and halves.forward is not None
    assert load_impl("renamed=regkernels:mine").name == "renamed"
    assert resolve_impls(["vectorised", "regkernels:mine", "vectorised"]) == ["vectorised", "mine"]


@pytest.mark.parametrize("spec, error, message", [
    ("regkernels:nope", ValueError, "has no attribute 'nope'"),
    ("no_such_module_abc:f", ValueError, "cannot import module 'no_such_module_abc'"),
    ("missing_dir/k.py:f", ValueError, "no such file"),
    ("nocolon", ValueError, "expected module:function"),
])
def test_bad_specs_are_value_errors_naming_what_was_wrong(kernels, spec, error, message):
    with pytest.raises(error, match=message):
        load_impl(spec)


def test_a_taken_name_and_an_unknown_name(kernels):
    with pytest.raises(ValueError, match="the name 'vectorised' is taken"):
        load_impl("vectorised=regkernels:mine")
    with pytest.raises(KeyError, match="unknown implementation 'nothing'"):
        resolve_impls(["nothing"])


def test_only_the_registry_touches_its_table():
    package = pathlib.Path(lstm_bench.__file__).parent
    users = [p.relative_to(package).as_posix() for p in package.rglob("*.py") if "_REGISTRY" in p.read_text()]
    assert users == ["core/registry.py"]


@pytest.fixture
def shipped(monkeypatch):
    """Two shipped adapters for the test: one whose library is installed (a stand-in in another layout),
    one whose library is not."""
    from lstm_bench.core.registry import SHIPPED_ADAPTERS, Shipped
    monkeypatch.setitem(SHIPPED_ADAPTERS, "stand_in", Shipped("tests.kernels.foreign_lstm:foreign_lstm", "stand",
                                                              ("torch",)))
    monkeypatch.setitem(SHIPPED_ADAPTERS, "absent", Shipped("no_such_library_for_lstm_bench.lstm:lstm", "absent",
                                                            ("no_such_library_for_lstm_bench",)))
    yield
    for name in ("stand_in", "absent"):
        try:
            unregister_impl(name)
        except KeyError:
            pass


def test_a_shipped_adapter_loads_by_its_short_name_and_reproduces_by_it(shipped):
    from tests.kernels.foreign_lstm import foreign_lstm
    assert resolve_impls(["stand_in", "vectorised"]) == ["stand_in", "vectorised"]
    impl = get_impl("stand_in")
    assert impl.fn is foreign_lstm and impl.spec == "stand_in" and not impl.missing
    assert impl.source["file"].endswith("foreign_lstm.py")


def test_a_shipped_adapter_whose_library_is_missing_skips_with_the_extra_to_install(shipped, capsys):
    from lstm_bench.core.support import Unsupported
    from tests.clirun import run
    impl = get_impl("absent")
    case = lstm_bench.make_case(3, 2, 3, 4)
    assert 'pip install "lstm-bench[absent]"' in impl.unsupported_reason(case)
    with pytest.raises(Unsupported, match="no_such_library_for_lstm_bench, not installed"):
        impl(case)
    code, out, err = run(capsys, "check", "--impl", "absent", "--summary")
    assert code == 5, out + err  # nothing was judged: not a pass, not a failure
    assert 'lstm-bench[absent]' in out + err


def test_info_says_which_shipped_adapters_can_run_here(shipped, capsys):
    import json

    from tests.clirun import run
    code, out, _ = run(capsys, "info", "--json", "--no-peak")
    status = json.loads(out)["shipped_adapters"]
    assert code == 0 and status["stand_in"] == f"torch {torch.__version__}"
    assert status["absent"] == ('not installed (no_such_library_for_lstm_bench): '
                                'pip install "lstm-bench[absent]"')
