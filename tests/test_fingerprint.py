"""The hardware fingerprint: in every results header, stable across commits, and two machines never pooled."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from clirun import run

from lstm_bench.bench.results import Writer, load, make_header
from lstm_bench.machine.fingerprint import (UNKNOWN, check_same_machine, cpu_flags, fingerprint,
                                            fingerprint_mismatch_reason, from_header, memory_gib, side_fingerprints)

ENV = {"torch": "2.13.0+cpu", "threads": 2, "cpu": "Test CPU", "cpu_count": 2, "gpu": None, "commit": "abc"}
GRID = {"impls": ["vectorised"], "T": [10], "H": [64], "B": [1], "devices": ["cpu"], "dtypes": ["float32"], "I": None}
TIMES = [1e-3, 1.1e-3, 0.9e-3, 1e-3, 1.05e-3]
H100 = {"name": "NVIDIA H100 80GB HBM3", "sm_count": 132, "l2_bytes": 52428800, "memory_bytes": 85520809984,
        "capability": "9.0", "power_limit_w": 700, "sm_clock_max_mhz": 1980, "driver": "550.54", "cuda": "12.4",
        "cudnn": 90100}


def write(path: Path, env: dict = ENV, *, header: dict | None = None) -> Path:
    rec = {"kind": "point", "point": {"impl": "vectorised", "T": 10, "B": 1, "I": 64, "H": 64, "device": "cpu",
                                      "dtype": "float32"}, "status": "ok",
           "measurement": {"forward_s": [t / 3 for t in TIMES], "forward_backward_s": TIMES}}
    header = header or make_header(env, GRID, {"repeats": 5})
    path.write_text(json.dumps(header) + "\n" + json.dumps(rec) + "\n")
    return path


def test_flags_and_memory_are_read_from_proc_text():
    x86 = "processor\t: 0\nflags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512_bf16 amx_tile amx_bf16 xsave\n"
    assert cpu_flags(x86) == ["sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"]
    arm = "processor\t: 0\nFeatures\t: fp asimd evtstrm sve sve2 bf16 i8mm\n"
    assert cpu_flags(arm) == ["asimd", "sve", "sve2", "bf16", "i8mm"]
    assert cpu_flags("model name: x\n") == UNKNOWN
    assert memory_gib("MemTotal:       24683784 kB\n") == 24  # 23.5 GiB, rounded
    assert memory_gib("nothing\n") == UNKNOWN


def test_the_same_machine_hashes_the_same_across_commits_and_torch_versions():
    a = fingerprint(ENV)
    b = fingerprint({**ENV, "commit": "def+dirty", "torch": "2.14.0"})
    assert a["hash"] == b["hash"] and a["software"]["commit"] == "abc" and b["software"]["commit"] == "def+dirty"
    assert fingerprint_mismatch_reason(a, b) is None
    assert len(a["hash"]) == 12


@pytest.mark.parametrize("change, field", [
    ({"threads": 1}, "threads: 2 vs 1"),
    ({"cpu": "Other CPU"}, "cpu: 'Test CPU' vs 'Other CPU'"),
    ({"gpu": H100}, "GPU: no GPU vs NVIDIA H100 80GB HBM3"),
])
def test_another_machine_hashes_differently_and_says_why(change, field):
    a, b = fingerprint(ENV), fingerprint({**ENV, **change})
    assert a["hash"] != b["hash"]
    why = fingerprint_mismatch_reason(a, b)
    assert why is not None and field in why and a["hash"] in why


def test_gpu_hardware_is_hashed_and_its_software_only_recorded():
    base = fingerprint({**ENV, "gpu": H100})
    assert base["machine"]["gpu"]["sm_count"] == 132 and base["software"]["driver"] == "550.54"
    newer_driver = fingerprint({**ENV, "gpu": {**H100, "driver": "560.1", "cuda": "12.6"}})
    assert newer_driver["hash"] == base["hash"]
    capped = fingerprint({**ENV, "gpu": {**H100, "power_limit_w": 400}})
    assert "gpu.power_limit_w: 700 vs 400" in fingerprint_mismatch_reason(base, capped)
    # the same hardware under other key names (torch's device properties) is the same machine
    aliases = {"name": H100["name"], "multi_processor_count": 132, "L2_cache_size": 52428800,
               "total_memory": 85520809984, "compute_capability": "9.0", "power_limit": 700, "max_sm_clock_mhz": 1980}
    assert fingerprint({**ENV, "gpu": aliases})["hash"] == base["hash"]


def test_a_restricting_variable_changes_the_machine():
    a = fingerprint(ENV, environ={})
    b = fingerprint(ENV, environ={"CUDA_VISIBLE_DEVICES": "1"})
    assert "env.CUDA_VISIBLE_DEVICES: None vs '1'" in fingerprint_mismatch_reason(a, b)
    base, new = side_fingerprints(ENV, (), (("ATEN_CPU_CAPABILITY", "avx2"),))
    assert "ATEN_CPU_CAPABILITY" in fingerprint_mismatch_reason(base, new)


def test_every_new_results_file_carries_its_fingerprint(tmp_path):
    res = load(write(tmp_path / "r.jsonl"))
    assert res.header["fingerprint"]["hash"] == res.fingerprint["hash"] == fingerprint(ENV)["hash"]
    assert res.fingerprint["unknown"] == {} or set(res.fingerprint["unknown"]) <= {"cpu_flags", "memory_gib"}


def test_an_old_file_gets_a_computed_fingerprint_with_the_reason(tmp_path):
    header = make_header(ENV, GRID, {"repeats": 5})
    del header["fingerprint"]  # as lstm-bench 0.2 wrote it
    old = load(write(tmp_path / "old.jsonl", header=header)).fingerprint
    assert old["machine"]["cpu_flags"] == UNKNOWN and "recorded before" in old["unknown"]["cpu_flags"]
    new = load(write(tmp_path / "new.jsonl")).fingerprint
    assert old["hash"] != new["hash"]  # what is unknown is unknown ...
    assert fingerprint_mismatch_reason(old, new) is None  # ... but nothing known tells them apart
    other = from_header({**header, "env": {**ENV, "cpu": "Other CPU"}})
    assert "cpu: 'Test CPU' vs 'Other CPU'" in fingerprint_mismatch_reason(old, other)


def test_the_stored_hash_is_recomputed_from_the_machine_part(tmp_path):
    header = make_header(ENV, GRID, {"repeats": 5})
    header["fingerprint"]["hash"] = "000000000000"  # a hand-edited hash cannot make two machines one
    assert load(write(tmp_path / "r.jsonl", header=header)).fingerprint["hash"] == fingerprint(ENV)["hash"]


def test_a_side_never_pools_two_machines_and_sides_need_the_flag():
    a, b = fingerprint(ENV), fingerprint({**ENV, "threads": 1})
    with pytest.raises(ValueError, match="cannot pool the runs of NEW: machines differ"):
        check_same_machine([a], [a, b], across_machines=True)
    with pytest.raises(ValueError, match="pass --across-machines"):
        check_same_machine([a], [b], across_machines=False)
    assert "threads: 2 vs 1" in check_same_machine([a], [b], across_machines=True)
    assert check_same_machine([a, a], [a], across_machines=False) is None


def test_compare_refuses_two_machines_unless_across_machines_and_labels_it(tmp_path, capsys):
    base = write(tmp_path / "base.jsonl")
    new = write(tmp_path / "new.jsonl", {**ENV, "threads": 1})
    before = base.read_bytes(), new.read_bytes()
    code, out, err = run(capsys, "compare", base, new)
    assert code == 2 and out == "" and "machines differ" in err and "--across-machines" in err
    assert len(err.strip().splitlines()) == 1
    md = tmp_path / "report.md"
    code, out, err = run(capsys, "compare", base, new, "--across-machines", "--markdown", md)
    assert code in (0, 1, 3), err
    assert out.startswith("ACROSS MACHINES (--across-machines): machines differ")
    assert "ACROSS MACHINES" in md.read_text()
    assert (base.read_bytes(), new.read_bytes()) == before


def test_compare_markdown_is_validated_before_the_work(tmp_path, capsys):
    base = write(tmp_path / "base.jsonl")
    md = tmp_path / "report.md"
    md.write_text("kept")
    code, _, err = run(capsys, "compare", base, base, "--markdown", md)
    assert code == 2 and "--markdown" in err and "already exists" in err and md.read_text() == "kept"


def test_resume_on_another_machine_is_refused(tmp_path):
    path = tmp_path / "r.jsonl"
    with Writer(path, make_header(ENV, GRID, {"repeats": 5})):
        pass
    with pytest.raises(ValueError, match="cannot resume.*machines differ.*cpu: 'Test CPU' vs 'Other CPU'"):
        Writer(path, make_header({**ENV, "cpu": "Other CPU"}, GRID, {"repeats": 5}), resume=True)


def test_ab_refuses_sides_on_other_hardware_before_starting_workers(tmp_path, capsys):
    md = tmp_path / "ab.md"
    code, out, err = run(capsys, "ab", "--base", sys.executable, "--new", sys.executable, "--impl", "vectorised",
                         "-T", "10", "-H", "8", "-B", "1", "--device", "cpu", "--new-env", "CUDA_VISIBLE_DEVICES=7",
                         "--markdown", md)
    assert code == 2 and "machines differ" in err and "CUDA_VISIBLE_DEVICES" in err
    assert not md.exists()
