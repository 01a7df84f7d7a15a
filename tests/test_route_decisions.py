"""The vectorised path runs the same route in every process (issue 20): a route decided by the
probe is stored for the machine and shape and obeyed by every later process, two processes
deciding at once agree, an unwritable store falls back to the fixed rule, and `rule` never
probes. Fresh processes are subprocesses; nothing here asserts a timing."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lstm_bench.impls import vectorised
from lstm_bench.impls.vectorised import decisions, fused, routes

ROOT = Path(__file__).resolve().parent.parent
CPU = torch.device("cpu")
PROBED = [(8, 96), (8, 112)]  # B * H * 4H >= PROBE_MIN_MACS, below ONEDNN_MIN_MACS: probed, default fused loop

# A fresh interpreter: one thread, the routes of the given (B, H) and how many probes ran.
CHILD = """
import json, sys, torch
torch.set_num_threads(1)
from lstm_bench.impls import vectorised
from lstm_bench.impls.vectorised import routes
shapes = json.loads(sys.argv[1])
chosen = [routes.decisions.route_name(routes.choose_route(torch.device("cpu"), torch.float32, B, H,
                                                             vectorised.plain_step)) for B, H in shapes]
print(json.dumps({"routes": chosen, "probes": len(routes.probe_log())}))
"""


def _need_two_routes():
    if len(routes._candidates(routes.available_routes(CPU, torch.float32))) < 2:
        pytest.skip(f"one route only here (C kernels: {fused.status()['why'] or 'ok'}): nothing to decide")


def _env(cache: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != routes.ROUTE_ENV}
    env.update(PYTHONPATH=str(ROOT), LSTM_BENCH_CACHE_DIR=str(cache))
    return env


def _start(cache: Path, shapes) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(shapes)], env=_env(cache),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.slow  # run by .ci/run, not by the quick `python -m pytest`
def test_fresh_processes_pick_the_same_route(tmp_path):
    _need_two_routes()
    first = _result(_start(tmp_path, PROBED))
    assert first["probes"] == len(PROBED)  # a fresh cache: the first process decides by probing
    later = [_result(_start(tmp_path, PROBED)) for _ in range(2)]
    for r in later:
        assert r == {"routes": first["routes"], "probes": 0}  # every later one reads the decision


@pytest.mark.slow  # run by .ci/run, not by the quick `python -m pytest`
def test_two_processes_deciding_at_once_agree(tmp_path):
    _need_two_routes()
    a, b = _start(tmp_path, PROBED), _start(tmp_path, PROBED)
    ra, rb = _result(a), _result(b)
    assert ra["routes"] == rb["routes"]
    assert _result(_start(tmp_path, PROBED)) == {"routes": ra["routes"], "probes": 0}


def _plant(path: Path, plan: dict[tuple[int, int], tuple[str, str]]) -> None:
    """Write decisions for one thread, as a fresh process with one thread will look them up."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cands = routes._candidates(routes.available_routes(CPU, torch.float32))
        data = {decisions.key(CPU, torch.float32, B, H, cands): {"route": decisions.route_name(r), "probe": {}}
                for (B, H), r in plan.items()}
    finally:
        torch.set_num_threads(before)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


@pytest.mark.slow  # run by .ci/run, not by the quick `python -m pytest`
def test_a_planted_decision_is_obeyed_by_a_fresh_process(tmp_path):
    """Each of the two C routes planted for one shape: the fresh process runs it without a probe
    (whatever a probe would have said, one of the two plants differs from it)."""
    _need_two_routes()
    loop, cell = routes._candidates(routes.available_routes(CPU, torch.float32))[:2]
    _plant(tmp_path / decisions.FILE, {PROBED[0]: cell, PROBED[1]: loop})
    got = _result(_start(tmp_path, PROBED))
    assert got == {"routes": [decisions.route_name(cell), decisions.route_name(loop)], "probes": 0}


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    monkeypatch.setattr(decisions, "path", lambda: tmp_path / "store" / decisions.FILE)
    monkeypatch.delenv(routes.ROUTE_ENV, raising=False)
    routes.reset_routes()
    yield tmp_path
    routes.reset_routes()


def _choose(B, H):
    return routes.choose_route(CPU, torch.float32, B, H, vectorised.plain_step)


def test_a_decision_for_other_candidates_or_threads_is_not_used(fresh):
    """A decision is for the routes that could run and the thread count it was made with."""
    _need_two_routes()
    loop, cell = routes._candidates(routes.available_routes(CPU, torch.float32))[:2]
    B, H = PROBED[0]
    data = {decisions.key(CPU, torch.float32, B, H, [loop]): {"route": decisions.route_name(cell)}}
    torch.set_num_threads(2)
    data[decisions.key(CPU, torch.float32, B, H, [loop, cell])] = {"route": decisions.route_name(cell)}
    torch.set_num_threads(1)
    path = decisions.path()
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(data))
    before = len(routes.probe_log())
    _choose(B, H)
    assert len(routes.probe_log()) == before + 1  # neither planted key matched: probed


def test_an_unwritable_store_falls_back_to_the_fixed_rule(fresh, monkeypatch):
    _need_two_routes()
    blocker = fresh / "a-file"
    blocker.write_text("")
    monkeypatch.setattr(decisions, "path", lambda: blocker / decisions.FILE)  # its folder is a file
    B, H = PROBED[0]
    cands = routes._candidates(routes.available_routes(CPU, torch.float32))
    default = routes.default_route(cands, B, H)
    other = next(r for r in cands if r != default)
    real_probe = routes.probe

    def probe_picking_the_other(*args, **kwargs):  # whatever the timings say: the rule must win
        real_probe(*args, **kwargs)
        return other
    monkeypatch.setattr(routes, "probe", probe_picking_the_other)
    assert _choose(B, H) == default
    assert routes.probe_log()[-1]["kept"].startswith("not stored")


def test_rule_setting_never_probes(fresh, monkeypatch):
    _need_two_routes()
    monkeypatch.setenv(routes.ROUTE_ENV, routes.RULE)
    before = len(routes.probe_log())
    cands = routes._candidates(routes.available_routes(CPU, torch.float32))
    for B, H in PROBED + [(64, 512)]:
        assert _choose(B, H) == routes.default_route(cands, B, H)
    assert len(routes.probe_log()) == before and not decisions.path().exists()


def test_clear_forgets_the_stored_decisions(fresh):
    _need_two_routes()
    _choose(*PROBED[0])
    assert decisions.path().exists()
    decisions.clear()
    assert not decisions.path().exists()
    decisions.clear()  # nothing to clear: no error
