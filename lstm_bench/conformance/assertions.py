"""Assertions for a kernel author's own tests, in the spirit of `torch.testing.assert_close`.

    from lstm_bench import make_case
    from lstm_bench.conformance.assertions import assert_agrees, assert_conforms

    assert_agrees(my_lstm, make_case(40, 8, 16, 32))   # one case, under the tolerance policy
    assert_conforms(my_lstm)                            # the suite's catalogue of cases (lstm_bench.conformance.cases)

`impl` is a registered name, an `Impl`, or a plain function `case -> Result` (its
attributes `devices`, `dtypes`, `max_sizes`, `deterministic` declare what it supports,
as for `--impl module:function`). A failure raises AssertionError whose message holds
the per-tensor table and the `lstm-bench check` command that reproduces the case. A case
outside what the implementation declares raises `lstm_bench.core.support.Unsupported`.

The conformance suite (`lstm_bench.conformance`) is these assertions, parametrised.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

import torch

from ..core.contract import Case, Result
from ..core.registry import Impl, declared_by, get_impl, source_of
from ..core.support import Support, Unsupported, dtype_name, needed_features
from .cases import CaseSpec, catalogue
from .judge import Reference, judge_against_reference, truth_of
from .policy import AgreementReport, judge_tensor

CaseLike = Case | CaseSpec


def as_impl(impl: str | Impl | Callable[[Case], Result]) -> Impl:
    """An Impl for a registered name, an Impl, or a plain function (not registered)."""
    if isinstance(impl, Impl):
        return impl
    if isinstance(impl, str):
        return get_impl(impl)
    if not callable(impl):
        raise ValueError(f"impl must be a registered name, an Impl or a function case -> Result, got {impl!r}")
    name = getattr(impl, "__name__", type(impl).__name__)
    declared, forward, backward = declared_by(impl)
    source = source_of(impl)
    qualname = getattr(impl, "__qualname__", "")
    # A module-level function is found again by `path/file.py:function` (the reproduce line);
    # a closure or a lambda is not, and its reproduce line names it alone.
    origin = f"{source['file']}:{qualname}" if source and qualname and "<" not in qualname else ""
    return Impl(name, impl, Support.declare(name=name, **declared), forward, backward, origin=origin, source=source)


def _case(case: CaseLike, device: str) -> tuple[Case, Reference | None, CaseSpec | None]:
    if isinstance(case, CaseSpec):
        return case.make(device), truth_of(case, device), case
    if isinstance(case, Case):
        return case, None, None
    raise ValueError(f"case must be an lstm_bench.Case or a CaseSpec, got {type(case).__name__}")


def judge(impl: Any, case: CaseLike, *, device: str = "cpu") -> AgreementReport:
    """`impl` on `case` against the float64 truth, under the tolerance policy (no assertion)."""
    impl = as_impl(impl)
    case, truth, _ = _case(case, device)
    return judge_against_reference(impl, case, truth=truth)


def _repro(impl: Impl, spec: CaseSpec | None, device: str) -> str:
    return f"\nreproduce: {spec.command(impl.spec, device)}" if spec is not None else ""


def raised_reason(impl: Impl, case: Case, err: Exception) -> str:
    """What to tell the author of a kernel that raised on a case: the error, and for a
    NotImplementedError the declaration that would have skipped the case instead."""
    why = f"{impl.name} raised {type(err).__name__}: {err}"
    if isinstance(err, NotImplementedError):
        needed = needed_features(case.config, case.lengths)
        why += (f"\nthis case needs the features {sorted(needed) or '(none: a single-layer plain LSTM)'}; a kernel "
                f"that does not implement some declares what it does, e.g. `{impl.name}.features = ()` for a "
                f"single-layer, one-direction LSTM, and those cases are skipped with the reason "
                f"(docs/conformance.md, 'The contract a kernel follows')")
    return why


def assert_agrees(impl: Any, case: CaseLike, *, device: str = "cpu", msg: str = "") -> AgreementReport:
    """Assert that `impl` agrees with the float64 truth on `case` (outputs, final states,
    every gradient), returns its result in the case's dtype and device, and leaves the
    case unchanged. Returns the report. A kernel that raises fails with its error and the
    reproduce line."""
    impl = as_impl(impl)
    case_, truth, spec = _case(case, device)
    try:
        report = judge_against_reference(impl, case_, truth=truth)
    except Unsupported:
        raise
    except Exception as err:
        raise AssertionError(f"{msg + chr(10) if msg else ''}{raised_reason(impl, case_, err)}"
                             f"{_repro(impl, spec, device)}") from err
    if not report.passed:
        raise AssertionError(f"{msg + chr(10) if msg else ''}{report}{_repro(impl, spec, device)}")
    return report


def assert_conforms(impl: Any, cases: Iterable[CaseLike] | None = None, *, device: str = "cpu",
                    depth: str = "default") -> list[AgreementReport]:
    """`assert_agrees` over `cases` (default: `lstm_bench.conformance.cases.catalogue(depth)`); one
    AssertionError listing every failing case, with the first failure's table. Cases the
    implementation does not support are skipped."""
    impl = as_impl(impl)
    reports, failed = [], []
    for case in (catalogue(depth) if cases is None else cases):
        if impl.unsupported_reason(case.make(device) if isinstance(case, CaseSpec) else case):
            continue
        try:
            case_, truth, spec = _case(case, device)
        except Unsupported:  # no yardstick for it (a low-precision case without a vendor result)
            continue
        report = judge_against_reference(impl, case_, truth=truth)
        reports.append(report)
        if not report.passed:
            failed.append((report, spec))
    if failed:
        lines = [f"{impl.name}: {len(failed)} of {len(reports)} cases disagree with the float64 truth"]
        for report, spec in failed:
            what = ", ".join([r.name for r in report.failures] + report.problems)
            lines.append(f"  {spec.id if spec else report.title}: err/bound {report.worst:.2g} ({what})"
                         + (f"  -> {spec.command(impl.spec, device)}" if spec else ""))
        raise AssertionError("\n".join(lines) + "\n\nfirst failure:\n" + str(failed[0][0]))
    return reports


def assert_inputs_unchanged(impl: Any, case: Case) -> None:
    """Assert that running `impl` leaves every tensor of `case` (inputs, states, weights,
    upstream gradients) bit for bit as it was, naming the tensors it modified."""
    impl = as_impl(impl)
    pristine = case.clone()
    impl(case)
    modified = case.modified(pristine)
    assert not modified, f"{impl.name} modified case.{', case.'.join(modified)} in place (inputs are read-only)"


def _differences(a: Result, b: Result) -> list[str]:
    return [k for k, v in a.tensors().items() if not torch.equal(v, b.tensors()[k])]


def assert_deterministic(impl: Any, case: Case) -> None:
    """Assert that the same case twice gives bitwise-identical results."""
    impl = as_impl(impl)
    first, second = impl(case.clone()), impl(case.clone())
    diff = _differences(first, second)
    assert not diff, f"{impl.name}: the same case twice gave different bits in {', '.join(diff)}"


def assert_stateless(impl: Any, case: Case, *others: Case) -> None:
    """Assert that no state is carried from one call to the next (a cache keyed by shape, a
    buffer sized by the first call): `case`, then each of `others`, then `case` again, every
    call judged against its own float64 truth, and `case` the same bits both times.

    `others` should include a case of the same shape with other numbers (a cache of
    converted weights keyed by shape hands it the first case's weights) and one that shares
    some sizes and not others (a cache keyed by H alone)."""
    impl = as_impl(impl)
    first = impl(case.clone())
    for previous, current in zip((case, *others), (*others, case)):
        report = judge_against_reference(impl, current)
        assert report.passed, (f"{impl.name}: state carried between calls: after a call with sizes "
                               f"{previous.sizes}, the case {current.sizes} disagrees with its truth\n{report}")
    again = impl(case.clone())
    if impl.support.deterministic:
        diff = _differences(first, again)
        assert not diff, (f"{impl.name}: after other cases ran, the same case gave different bits in "
                          f"{', '.join(diff)}: state carried between calls")


def assert_batch_independent(impl: Any, case: Case) -> None:
    """Assert that a batch of B sequences gives what B runs of one sequence give (weight
    gradients summed over them), under the policy's floor for the case's dtype."""
    impl = as_impl(impl)
    B = case.sizes[1]
    batched = impl(case).tensors()
    singles = [impl(case.narrow_batch(b, 1)).tensors() for b in range(B)]
    seq = 0 if case.config.batch_first else 1
    batch_dim = {"output": seq, "d_x": seq, "h_n": 1, "c_n": 1, "d_h0": 1, "d_c0": 1}
    expected = {k: torch.cat([s[k] for s in singles], dim=batch_dim[k]) if k in batch_dim
                else sum(s[k] for s in singles) for k in batched}  # weight gradients add up over the batch
    eps = torch.finfo(case.dtype).eps
    report = AgreementReport([judge_tensor(k, batched[k], expected[k], eps=eps) for k in batched],
                             dtype=dtype_name(case.dtype),
                             title=f"{impl.name}: one batch of {B} vs {B} single sequences")
    assert report.passed, str(report)


__all__ = ["as_impl", "truth_of", "judge", "assert_agrees", "assert_conforms", "assert_inputs_unchanged",
           "assert_deterministic", "assert_stateless", "assert_batch_independent", "Unsupported"]
