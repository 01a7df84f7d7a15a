"""The vectorised path's C file as C: it compiles with warnings as errors under the library's own
flags, its C self-test (`tests/fused_selftest.c`: every entry point against the equations written
plainly in double) passes, once as built and once under the address and undefined-behaviour
sanitizers, and it ships in the wheel's package data. Each skips with the reason where the
machine lacks what it needs (a C compiler, a sanitizer runtime)."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from lstm_bench.impls.vectorised import fused

SELF_TEST = Path(__file__).with_name("fused_selftest.c")
WARNINGS = ("-Wall", "-Wextra", "-Werror")
SANITIZE = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g")
# the library's flags, for an executable instead of a shared object
EXE_FLAGS = tuple(f for f in fused.CFLAGS if f not in ("-shared", "-fPIC"))


def _cc() -> str:
    cc = fused._compiler()
    if cc is None:
        pytest.skip("no C compiler ($CC or cc) on PATH: the vectorised path runs its torch-ops loop here")
    return cc


def _run(args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=300, **kw)


def _sanitizer_reason(cc: str, tmp: Path) -> str | None:
    """Why `cc` cannot build and run a sanitized program here, or None."""
    probe = tmp / "probe.c"
    probe.write_text("int main(void) { return 0; }\n")
    built = _run([cc, *SANITIZE, str(probe), "-o", str(tmp / "probe")])
    if built.returncode != 0:
        return f"{cc} cannot build with {' '.join(SANITIZE[:1])}: {built.stderr.strip()[-200:]}"
    ran = _run([str(tmp / "probe")])
    if ran.returncode != 0:
        return f"a sanitized program does not run here: {ran.stderr.strip()[-200:]}"
    return None


def test_fused_c_compiles_with_warnings_as_errors(tmp_path):
    cc = _cc()
    built = _run([cc, *fused.CFLAGS, *WARNINGS, str(fused.SOURCE_PATH), "-o", str(tmp_path / "fused.so"), "-lm"])
    assert built.returncode == 0, built.stderr


def _self_test(cc: str, tmp: Path, extra: tuple[str, ...]) -> subprocess.CompletedProcess:
    exe = tmp / "fused_selftest"
    built = _run([cc, *EXE_FLAGS, *WARNINGS, *extra, f"-I{fused.SOURCE_PATH.parent}", str(SELF_TEST),
                  "-o", str(exe), "-lm"])
    assert built.returncode == 0, built.stderr
    return _run([str(exe)])


@pytest.mark.slow  # builds and runs the C self-test (2.8 s): .ci/run runs it, the quick gate does not
def test_c_self_test_passes_as_built(tmp_path):
    ran = _self_test(_cc(), tmp_path, ())
    assert ran.returncode == 0 and "fused self-test ok" in ran.stdout, ran.stdout + ran.stderr


@pytest.mark.slow  # run by .ci/run, not by the quick `python -m pytest`
def test_c_self_test_passes_under_the_sanitizers(tmp_path):
    cc = _cc()
    reason = _sanitizer_reason(cc, tmp_path)
    if reason:
        pytest.skip(reason)
    ran = _self_test(cc, tmp_path, SANITIZE)
    assert ran.returncode == 0 and "fused self-test ok" in ran.stdout, ran.stdout + ran.stderr
    assert "runtime error" not in ran.stderr, ran.stderr  # UBSan's report, should one ever be non-fatal


def test_the_library_is_built_from_the_c_file():
    assert fused.SOURCE == fused.SOURCE_PATH.read_text(encoding="utf-8") and "fwd_loop" in fused.SOURCE


@pytest.mark.slow  # builds a wheel (2.4 s): .ci/run runs it, the quick gate does not
def test_fused_c_is_package_data_in_the_wheel(tmp_path):
    """`pip wheel` of this checkout holds lstm_bench/impls/vectorised/fused.c (slow: builds a wheel)."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "pyproject.toml").exists():
        pytest.skip("not run from a source checkout")
    # a copy without build/ (a stale build/lib would carry an old fused.c into the wheel)
    src = tmp_path / "src"
    shutil.copytree(root, src, ignore=shutil.ignore_patterns(".git", "build", "*.egg-info", "__pycache__", ".asv",
                                                             ".venv", ".hypothesis", "results"))
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                  str(tmp_path), str(src)])
    if built.returncode != 0:
        pytest.skip(f"pip wheel failed here (no setuptools?): {built.stderr.strip()[-200:]}")
    wheel, = tmp_path.glob("*.whl")
    assert "lstm_bench/impls/vectorised/fused.c" in zipfile.ZipFile(wheel).namelist()
