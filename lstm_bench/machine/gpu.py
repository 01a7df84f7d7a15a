"""The GPU a result was measured on: its identity, its SM clock and temperature, and the L2 flush size.

Identity (`gpu_identity`, the "gpu" key of `environment()` and so of every results header):
name, compute capability, SM count, L2 size, memory, driver, CUDA and cuDNN versions, the
TF32 flags in force, the power limit and the maximum SM clock. Everything the device
properties give comes from torch; the driver, the power limit and the clocks from NVML
(`nvidia-ml-py`, imported as `pynvml`), which is optional: without it those fields are None
and `nvml` says why.

Clocks (`ClockSampler`): the SM clock (MHz) and the temperature (C) read through NVML after
each timed repeat, outside the timed window. A sample is *throttled* when its SM clock is
below `THROTTLE_FRACTION` = 75 % of the reference clock (the device's maximum SM clock;
else its default application clock): the rule and the default threshold of NVIDIA nvbench
(`--throttle-threshold`, "percentage of the default clock rate", default 75), which discards
such samples. lstm-bench keeps them and counts them, so the table can flag the point.

L2 flush (`l2_flush_bytes`): a cold measurement overwrites a buffer the size of the device's
L2 cache before each timed call, outside the event window. nvbench flushes exactly the L2
size (`cudaDevAttrL2CacheSize`, by a cudaMemsetAsync); `triton.testing.do_bench` zeroes a
fixed 256 MB buffer, which is the fallback here when the property is missing or zero.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import torch

THROTTLE_FRACTION = 0.75  # nvbench's default --throttle-threshold (75 % of the default SM clock)
L2_FALLBACK_BYTES = 256 * 1024 ** 2  # triton.testing.do_bench's flush buffer: 256 MB
CACHE_MODES = ("cold", "warm")


def l2_flush_bytes(props: Any) -> int:
    """Bytes to overwrite before a cold timed call: the device's L2 size (`props.L2_cache_size`,
    as nvbench), else 256 MB (triton.testing.do_bench) when the property is missing or not positive."""
    size = getattr(props, "L2_cache_size", None)
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        return L2_FALLBACK_BYTES
    return size


def is_throttled(sm_clock_mhz: float | None, reference_mhz: float | None) -> bool:
    """nvbench's rule: a sample taken below 75 % of the reference SM clock is throttled.
    False when either clock is unknown (nothing to judge by)."""
    if not sm_clock_mhz or not reference_mhz:
        return False
    return sm_clock_mhz < THROTTLE_FRACTION * reference_mhz


# --- NVML (optional) -------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _nvml_module() -> tuple[Any, str]:
    """(the initialised pynvml module, "") or (None, why not)."""
    try:
        import pynvml  # optional dependency (nvidia-ml-py): only the clocks, driver and power limit need it
    except ImportError:
        return None, "nvidia-ml-py is not installed (pip install nvidia-ml-py): no SM clock, temperature, driver " \
                     "or power limit"
    try:
        pynvml.nvmlInit()
    except Exception as err:  # NVMLError and its subclasses, a missing libnvidia-ml
        return None, f"NVML did not initialise: {err}"
    return pynvml, ""


def nvml_unavailable_reason() -> str | None:
    """Why NVML cannot be read here, or None."""
    module, reason = _nvml_module()
    return None if module is not None else reason


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def nvml_handle(nvml: Any, props: Any, index: int) -> Any:
    """The NVML handle of the torch device with `props`: by UUID (right under CUDA_VISIBLE_DEVICES,
    which renumbers devices for CUDA but not for NVML), else by index."""
    uuid = getattr(props, "uuid", None)
    if uuid is not None:
        text = _text(uuid)
        try:
            return nvml.nvmlDeviceGetHandleByUUID(text if text.startswith("GPU-") else f"GPU-{text}")
        except Exception:  # an older NVML or another UUID spelling: the index
            pass
    return nvml.nvmlDeviceGetHandleByIndex(index)


def _try(fn, *args) -> Any:
    try:
        return fn(*args)
    except Exception:  # NVMLError_NotSupported and friends: the field is unknown on this device
        return None


def reference_clock_mhz(nvml: Any, handle: Any) -> int | None:
    """The SM clock a throttled sample is compared with: the maximum SM clock, else the default
    application clock; None when NVML gives neither."""
    for name in ("nvmlDeviceGetMaxClockInfo", "nvmlDeviceGetDefaultApplicationsClock"):
        fn = getattr(nvml, name, None)
        value = _try(fn, handle, nvml.NVML_CLOCK_SM) if fn is not None else None
        if value:
            return int(value)
    return None


# --- identity ---------------------------------------------------------------------------------

def _device_index(device: str | torch.device | None) -> int:
    dev = torch.device("cuda") if device is None else torch.device(device)
    if dev.type != "cuda":
        raise ValueError(f"gpu_identity needs a cuda device, got {str(device)!r}")
    return torch.cuda.current_device() if dev.index is None else dev.index


def gpu_identity(device: str | torch.device | None = None, *, props: Any = None, nvml: Any = "auto") -> dict | None:
    """What a CUDA result depends on besides the code: a JSON-ready dict, or None without CUDA.

    `props` is `torch.cuda.get_device_properties(device)` (given for tests), `nvml` the pynvml
    module, None for none, or "auto" to import it. Fields NVML gives are None without it, and
    `nvml` holds the reason ("" when it was read)."""
    if props is None:
        if not torch.cuda.is_available():
            return None
        index = _device_index(device)
        props = torch.cuda.get_device_properties(index)
    else:
        index = 0 if device is None else (torch.device(device).index or 0)
    reason = ""
    if nvml == "auto":
        nvml, reason = _nvml_module()
    elif nvml is None:
        reason = "NVML not read"
    driver = power_w = max_clock = None
    if nvml is not None:
        handle = _try(nvml_handle, nvml, props, index)
        if handle is None:
            reason = f"NVML has no handle for device {index}"
        else:
            limit_mw = _try(nvml.nvmlDeviceGetEnforcedPowerLimit, handle) or \
                _try(nvml.nvmlDeviceGetPowerManagementLimit, handle)
            power_w = round(limit_mw / 1000, 1) if limit_mw else None
            max_clock = reference_clock_mhz(nvml, handle)
        version = _try(nvml.nvmlSystemGetDriverVersion)
        driver = _text(version) if version is not None else None
    cudnn_ok = torch.backends.cudnn.is_available()
    return {
        "name": str(getattr(props, "name", "unknown")),
        "capability": f"{getattr(props, 'major', '?')}.{getattr(props, 'minor', '?')}",
        "sm_count": getattr(props, "multi_processor_count", None),
        "l2_bytes": getattr(props, "L2_cache_size", None),
        "memory_bytes": getattr(props, "total_memory", None),
        "driver": driver,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cudnn_ok else None,
        # as torch's flags stand when the header is written; lstm-bench's tests turn both off
        "tf32": {"matmul": bool(torch.backends.cuda.matmul.allow_tf32), "cudnn": bool(torch.backends.cudnn.allow_tf32)},
        "power_limit_w": power_w,
        "max_sm_clock_mhz": max_clock,
        "nvml": reason,
    }


def gpu_label(recorded: Any) -> str | None:
    """The GPU's name as a results header records it: `gpu_identity`'s dict, or a bare name (older
    files), or None."""
    if isinstance(recorded, dict):
        return str(recorded.get("name") or "GPU")
    return str(recorded) if recorded else None


# --- clocks per sample ----------------------------------------------------------------------------

@dataclass
class ClockSampler:
    """SM clock (MHz) and temperature (C) read once per timed repeat, outside the timed window.

    `reason` says why nothing is sampled (a CPU point, NVML missing); then `sample()` does nothing."""

    nvml: Any = None
    handle: Any = None
    reference_mhz: int | None = None
    reason: str = ""
    sm_clock_mhz: list[int] = field(default_factory=list)
    temperature_c: list[int] = field(default_factory=list)

    @classmethod
    def start(cls, device: str | torch.device, *, nvml: Any = "auto", props: Any = None) -> "ClockSampler":
        """A sampler for `device`: a silent one on the CPU or without NVML (with the reason)."""
        dev = torch.device(device)
        if dev.type != "cuda":
            return cls(reason=f"no GPU clock on {dev.type}")
        reason = ""
        if nvml == "auto":
            nvml, reason = _nvml_module()
        if nvml is None:
            return cls(reason=reason or "NVML not read")
        index = torch.cuda.current_device() if dev.index is None else dev.index
        props = props if props is not None else torch.cuda.get_device_properties(index)
        handle = _try(nvml_handle, nvml, props, index)
        if handle is None:
            return cls(reason=f"NVML has no handle for device {index}")
        return cls(nvml, handle, reference_clock_mhz(nvml, handle))

    def sample(self) -> None:
        if self.nvml is None:
            return
        clock = _try(self.nvml.nvmlDeviceGetClockInfo, self.handle, self.nvml.NVML_CLOCK_SM)
        temp = _try(self.nvml.nvmlDeviceGetTemperature, self.handle, self.nvml.NVML_TEMPERATURE_GPU)
        if clock is not None:
            self.sm_clock_mhz.append(int(clock))
        if temp is not None:
            self.temperature_c.append(int(temp))

    @property
    def throttled(self) -> int:
        """How many samples were below 75 % of the reference clock (`is_throttled`)."""
        return sum(is_throttled(c, self.reference_mhz) for c in self.sm_clock_mhz)

    def to_json(self) -> dict:
        return {"sm_clock_mhz": list(self.sm_clock_mhz), "temperature_c": list(self.temperature_c),
                "reference_mhz": self.reference_mhz, "throttled": self.throttled, "reason": self.reason}
