"""The hardware fingerprint of a result: which machine it was measured on, and a short stable hash of it.

A fingerprint has two parts (format `VERSION` 1):

    machine    what makes timings of one machine incomparable with another's, and the only
               part hashed: CPU model, the instruction-set flags kernels dispatch on
               (`FLAGS`: AVX-512, AMX, ...), logical CPUs, threads used, memory (GiB), the
               GPU's hardware (name, SM count, L2, memory, compute capability, power
               limit, maximum clocks), and the variables that restrict what the process
               may use (`HARDWARE_ENV`: CUDA_VISIBLE_DEVICES, ATEN_CPU_CAPABILITY, ...)
               when they are set
    software   recorded, never hashed: torch, the project's git commit, BLAS, CUDA,
               cuDNN, the GPU driver, torch's CPU dispatch level

    hash       the first 12 hex digits of SHA-256 over the machine part as canonical JSON,
               so the same machine hashes the same across commits and torch versions,
               and another thread count or GPU hashes differently

Files recorded before fingerprints existed (no "fingerprint" in the header) get one
computed from their header's env: the fields it holds (CPU name, CPU count, threads,
GPU name) and "unknown" for the rest, each with the reason in `unknown`.
`fingerprint_mismatch_reason(a, b)` compares the fields known on both sides, so such a
file matches a new one of the same machine and never one of another CPU, GPU or
thread count. Every store people run keys results by hardware and never pools two
machines (asv's machine folders, Bencher's testbeds, PyTorch's `runners[]`).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any, Mapping

VERSION = 1
UNKNOWN = "unknown"
HASH_DIGITS = 12
# The x86 and Arm flags LSTM kernels dispatch on (oneDNN, MKL, torch's vectorised ops): a
# flag missing from this list cannot change a GEMM or elementwise path's speed here.
FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
         "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "amx_fp16",
         "asimd", "asimdhp", "sve", "sve2", "bf16", "i8mm")
# Variables that change what hardware a process sees or which ISA its libraries dispatch to.
HARDWARE_ENV = ("CUDA_VISIBLE_DEVICES", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA",
                "MKL_ENABLE_INSTRUCTIONS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
# `environment()["gpu"]` (lstm_bench.machine.gpu.gpu_identity) keys, under each name this
# module accepts; the first present wins. Hardware keys are hashed, software ones only recorded.
GPU_HARDWARE = {"name": ("name",), "sm_count": ("sm_count", "multi_processor_count", "sms"),
                "l2_bytes": ("l2_bytes", "l2_cache_bytes", "l2_cache_size", "L2_cache_size"),
                "memory_bytes": ("memory_bytes", "total_memory", "total_memory_bytes"),
                "capability": ("capability", "compute_capability"),
                "power_limit_w": ("power_limit_w", "power_limit", "enforced_power_limit_w"),
                "sm_clock_max_mhz": ("sm_clock_max_mhz", "max_sm_clock_mhz", "clock_max_mhz", "max_clock_mhz"),
                "memory_clock_max_mhz": ("memory_clock_max_mhz", "max_memory_clock_mhz")}
GPU_SOFTWARE = {"driver": ("driver", "driver_version"), "cuda": ("cuda", "cuda_version"),
                "cudnn": ("cudnn", "cudnn_version")}
OLD_FILE = "recorded before lstm-bench wrote fingerprints (no 'fingerprint' in the header)"


def cpu_flags(cpuinfo: str | None = None) -> list[str] | str:
    """The `FLAGS` this CPU has, from /proc/cpuinfo's "flags" (x86) or "Features" (Arm); UNKNOWN elsewhere."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                cpuinfo = f.read()
        except OSError:
            return UNKNOWN
    match = re.search(r"^(?:flags|Features)\s*:(.*)$", cpuinfo, re.MULTILINE)
    if not match:
        return UNKNOWN
    present = set(match.group(1).split())
    return [flag for flag in FLAGS if flag in present]


def memory_gib(meminfo: str | None = None) -> int | str:
    """Physical memory in whole GiB (MemTotal of /proc/meminfo, rounded: it moves by MBs between kernels)."""
    if meminfo is None:
        try:
            with open("/proc/meminfo", encoding="utf-8") as f:
                meminfo = f.read()
        except OSError:
            return UNKNOWN
    match = re.search(r"^MemTotal:\s*(\d+)\s*kB", meminfo, re.MULTILINE)
    return round(int(match.group(1)) / 2 ** 20) if match else UNKNOWN


def blas() -> str:
    """The BLAS torch was built with (BLAS_INFO in `torch.__config__.show()`: mkl, open, accelerate...)."""
    import torch  # heavy; only when a fingerprint of this process is taken

    match = re.search(r"BLAS_INFO=([^,\s]+)", torch.__config__.show())
    return match.group(1) if match else UNKNOWN


def cpu_capability() -> str:
    """The vector ISA torch's CPU kernels dispatch to here (AVX512, AVX2, DEFAULT...)."""
    import torch

    get = getattr(torch.backends.cpu, "get_cpu_capability", None)
    return get() if get is not None else UNKNOWN


def _pick(gpu: Mapping, names: tuple[str, ...]) -> Any:
    for name in names:
        if gpu.get(name) is not None:
            return gpu[name]
    return UNKNOWN


def gpu_parts(gpu: Any) -> tuple[dict | None, dict, list[str]]:
    """(hardware, software, unknown fields) of `environment()["gpu"]`: None (no GPU), a name (files
    before the GPU identity existed), or the dict of `lstm_bench.machine.gpu.gpu_identity`."""
    if gpu is None:
        return None, {}, []
    if isinstance(gpu, str):
        hardware = {k: (gpu if k == "name" else UNKNOWN) for k in GPU_HARDWARE}
        return hardware, {k: UNKNOWN for k in GPU_SOFTWARE}, [f"gpu.{k}" for k in GPU_HARDWARE if k != "name"]
    if not isinstance(gpu, Mapping):
        raise ValueError(f"env gpu must be null, a name or an object, got {gpu!r}")
    hardware = {k: _pick(gpu, names) for k, names in GPU_HARDWARE.items()}
    software = {k: _pick(gpu, names) for k, names in GPU_SOFTWARE.items()}
    return hardware, software, [f"gpu.{k}" for k, v in hardware.items() if v == UNKNOWN]


def machine_hash(machine: Mapping) -> str:
    """SHA-256 of the machine part as canonical JSON (sorted keys, no spaces), first HASH_DIGITS hex digits."""
    text = json.dumps(machine, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:HASH_DIGITS]


def _finish(machine: dict, software: dict, unknown: dict) -> dict:
    return {"version": VERSION, "hash": machine_hash(machine), "machine": machine, "software": software,
            "unknown": unknown}


def _known(*values: Any) -> Any:
    """The first of `values` that is neither None nor UNKNOWN, else None."""
    return next((v for v in values if v not in (None, UNKNOWN)), None)


def _software(env: Mapping, gpu: dict, *, blas: str, capability: str) -> dict:
    """The recorded, unhashed part: versions from `env` and the GPU identity (which wins for CUDA and cuDNN)."""
    backends = env.get("backends") or {}
    return {"torch": env.get("torch") or UNKNOWN, "commit": env.get("commit") or UNKNOWN, "blas": blas,
            "cpu_capability": capability, "cuda": _known(gpu.get("cuda"), backends.get("cuda")),
            "cudnn": _known(gpu.get("cudnn"), (backends.get("cudnn") or {}).get("version")),
            "driver": _known(gpu.get("driver"))}


def fingerprint(env: Mapping, *, environ: Mapping[str, str] | None = None) -> dict:
    """The fingerprint of this process's machine, `env` being its `environment()` (threads, CPU, GPU, commit).

    CPU flags, memory and BLAS are read here; `environ` (default os.environ) supplies the
    `HARDWARE_ENV` variables; `lstm-bench ab` passes each side's worker environment.
    """
    environ = os.environ if environ is None else environ
    hw_gpu, sw_gpu, unknown_gpu = gpu_parts(env.get("gpu"))
    machine: dict = {"cpu": env.get("cpu") or UNKNOWN, "cpu_flags": cpu_flags(), "cpus": env.get("cpu_count") or UNKNOWN,
                     "threads": env.get("threads") or UNKNOWN, "memory_gib": memory_gib(), "gpu": hw_gpu}
    restricted = {k: environ[k] for k in HARDWARE_ENV if environ.get(k)}
    if restricted:  # only when set, so that an unrestricted machine hashes as before
        machine["env"] = restricted
    software = _software(env, sw_gpu, blas=blas(), capability=cpu_capability())
    unknown = {k: "not readable on this system" for k in ("cpu_flags", "memory_gib") if machine[k] == UNKNOWN}
    unknown.update({k: "not reported by the GPU identity" for k in unknown_gpu})
    return _finish(machine, software, unknown)


def from_header(header: Mapping) -> dict:
    """The fingerprint of a results file's header: the one it stores (its hash recomputed from its
    machine part, the one source of truth), else one computed from its env with the missing fields
    UNKNOWN and the reason for each in "unknown"."""
    stored = header.get("fingerprint")
    if isinstance(stored, Mapping) and isinstance(stored.get("machine"), Mapping):
        machine = dict(stored["machine"])
        return _finish(machine, dict(stored.get("software") or {}), dict(stored.get("unknown") or {}))
    env = header.get("env") or {}
    hw_gpu, sw_gpu, unknown_gpu = gpu_parts(env.get("gpu"))
    machine = {"cpu": env.get("cpu") or UNKNOWN, "cpu_flags": UNKNOWN, "cpus": env.get("cpu_count") or UNKNOWN,
               "threads": env.get("threads") or UNKNOWN, "memory_gib": UNKNOWN, "gpu": hw_gpu}
    software = _software(env, sw_gpu, blas=UNKNOWN, capability=UNKNOWN)
    unknown = {k: OLD_FILE for k, v in machine.items() if v == UNKNOWN}
    unknown.update({k: OLD_FILE for k in unknown_gpu})
    return _finish(machine, software, unknown)


def _leaves(d: Mapping, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        name = f"{prefix}{k}"
        out.update(_leaves(v, name + ".") if isinstance(v, Mapping) else {name: v})
    return out


def fingerprint_mismatch_reason(a: Mapping, b: Mapping) -> str | None:
    """Why timings under fingerprint `a` and fingerprint `b` come from different machines, or None.

    Equal hashes match. Otherwise every machine field known on both sides is compared
    (a field UNKNOWN on one side, in a file older than fingerprints, cannot tell them
    apart); a GPU on one side only, or a restricting variable set on one side only, differs.
    """
    if a.get("hash") == b.get("hash"):
        return None
    ma, mb = _leaves(a.get("machine") or {}), _leaves(b.get("machine") or {})
    ga, gb = (a.get("machine") or {}).get("gpu"), (b.get("machine") or {}).get("gpu")
    if (ga is None) != (gb is None):
        name = lambda g: "no GPU" if g is None else g.get("name", UNKNOWN)  # noqa: E731
        return _reason(a, b, [f"GPU: {name(ga)} vs {name(gb)}"])
    diffs = []
    for key in sorted(set(ma) | set(mb)):
        va, vb = ma.get(key), mb.get(key)
        if UNKNOWN in (va, vb):
            continue
        if va != vb:
            diffs.append(f"{key}: {_short(va)} vs {_short(vb)}")
    return _reason(a, b, diffs) if diffs else None


def _short(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ",".join(map(str, value)) + "]" if value else "none"
    return repr(value) if isinstance(value, str) else str(value)


def _reason(a: Mapping, b: Mapping, diffs: list[str]) -> str:
    return f"machines differ (fingerprint {a.get('hash')} vs {b.get('hash')}): " + "; ".join(diffs)


def describe(fp: Mapping) -> str:
    """One line for people: "AMD EPYC, 2 of 2 CPUs, 24 GiB, avx2 avx512f ... [fp 1a2b3c4d5e6f]"."""
    m = fp.get("machine") or {}
    gpu = m.get("gpu")
    flags = m.get("cpu_flags")
    threads = m.get("threads", UNKNOWN)
    parts = [str(m.get("cpu", UNKNOWN)), f"{threads} thread{'' if threads == 1 else 's'} of {m.get('cpus', UNKNOWN)} CPUs",
             f"{m.get('memory_gib', UNKNOWN)} GiB"]
    if isinstance(flags, list):
        wide = [f for f in flags if f.startswith(("avx512", "amx", "sve"))]
        parts.append(" ".join(wide) if wide else (" ".join(flags[-2:]) if flags else "no vector flags listed"))
    if gpu:
        parts.append(str(gpu.get("name", UNKNOWN)))
    if m.get("env"):
        parts.append(" ".join(f"{k}={v}" for k, v in m["env"].items()))
    return ", ".join(parts) + f" [fp {fp.get('hash')}]"


def check_same_machine(base: list[Mapping], new: list[Mapping], *, across_machines: bool) -> str | None:
    """Validate-or-raise for `compare`/`ab`: the fingerprints of each side's runs must match each other
    (ValueError: one side never pools machines), and BASE's must match NEW's unless `across_machines`.
    Returns the mismatch allowed by `across_machines` (the label the result carries), else None."""
    for side, fps in (("BASE", base), ("NEW", new)):
        for other in fps[1:]:
            why = fingerprint_mismatch_reason(fps[0], other)
            if why:
                raise ValueError(f"cannot pool the runs of {side}: {why}")
    why = fingerprint_mismatch_reason(base[0], new[0]) if base and new else None
    if why and not across_machines:
        raise ValueError(f"{why}; timings of two machines are not compared (pass --across-machines to "
                         f"compare them anyway, labelled as such)")
    return why


def side_fingerprints(env: Mapping, *side_envs: Any) -> list[dict]:
    """The fingerprints of workers started on this machine, each with its extra variables (pairs or a
    mapping, as `lstm-bench ab --base-env/--new-env` gives them) over os.environ."""
    return [fingerprint(env, environ={**os.environ, **dict(extra)}) for extra in side_envs]
