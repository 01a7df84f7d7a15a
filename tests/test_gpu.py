"""The GPU's identity, its clocks and the throttle rule, the L2 flush size: against fake device
properties and a fake NVML, so that they are checked on a machine without a GPU."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from lstm_bench.machine import environment as environment_module
from lstm_bench.machine import gpu, peak
from lstm_bench.machine.gpu import (L2_FALLBACK_BYTES, ClockSampler, gpu_identity, is_throttled, l2_flush_bytes,
                                    reference_clock_mhz)

MB = 1024 ** 2
# What torch reports for an H100/H200-class part (H200: 132 SMs, 50 MB L2 in the whitepaper)
H200 = SimpleNamespace(name="NVIDIA H200", major=9, minor=0, multi_processor_count=132, L2_cache_size=50 * MB,
                       total_memory=143_771_287_552, uuid="4a1b-77")


class FakeNvml:
    """The few pynvml calls lstm-bench makes; `clocks` are returned one per call."""

    NVML_CLOCK_SM = 1
    NVML_TEMPERATURE_GPU = 0

    def __init__(self, clocks=(1980,), max_clock=1980, power_mw=700_000, by_uuid=True, unsupported=()):
        self.clocks, self.max_clock, self.power_mw, self.by_uuid = list(clocks), max_clock, power_mw, by_uuid
        self.unsupported = set(unsupported)
        self.asked_uuid = None

    def _check(self, name):
        if name in self.unsupported:
            raise RuntimeError(f"NVMLError_NotSupported: {name}")

    def nvmlDeviceGetHandleByUUID(self, uuid):
        self.asked_uuid = uuid
        if not self.by_uuid:
            raise RuntimeError("NVMLError_NotFound")
        return ("uuid", uuid)

    def nvmlDeviceGetHandleByIndex(self, index):
        return ("index", index)

    def nvmlDeviceGetEnforcedPowerLimit(self, handle):
        self._check("power")
        return self.power_mw

    def nvmlDeviceGetPowerManagementLimit(self, handle):
        self._check("power")
        return self.power_mw

    def nvmlDeviceGetMaxClockInfo(self, handle, kind):
        self._check("max_clock")
        return self.max_clock

    def nvmlDeviceGetDefaultApplicationsClock(self, handle, kind):
        return 1755

    def nvmlSystemGetDriverVersion(self):
        return b"580.65.06"

    def nvmlDeviceGetClockInfo(self, handle, kind):
        assert kind == self.NVML_CLOCK_SM
        return self.clocks.pop(0)

    def nvmlDeviceGetTemperature(self, handle, kind):
        return 41


@pytest.mark.parametrize("props, expected", [
    (H200, 50 * MB),  # nvbench: exactly the L2 size
    (SimpleNamespace(L2_cache_size=0), L2_FALLBACK_BYTES),  # triton.testing.do_bench's 256 MB
    (SimpleNamespace(), L2_FALLBACK_BYTES),
    (SimpleNamespace(L2_cache_size=-4), L2_FALLBACK_BYTES),
    (SimpleNamespace(L2_cache_size=True), L2_FALLBACK_BYTES),
])
def test_the_flush_is_the_l2_size_else_256_mb(props, expected):
    assert l2_flush_bytes(props) == expected
    assert L2_FALLBACK_BYTES == 268_435_456


@pytest.mark.parametrize("clock, reference, throttled", [
    (1980, 1980, False), (1485, 1980, False),  # exactly 75 %: not below
    (1484, 1980, True), (600, 1980, True), (600, None, False), (None, 1980, False)])
def test_throttled_means_below_75_percent_of_the_reference_clock(clock, reference, throttled):
    assert is_throttled(clock, reference) is throttled


def test_the_identity_names_the_gpu_and_its_versions():
    ident = gpu_identity("cuda:0", props=H200, nvml=FakeNvml())
    assert ident["name"] == "NVIDIA H200" and ident["sm_count"] == 132 and ident["l2_bytes"] == 50 * MB
    assert ident["capability"] == "9.0" and ident["memory_bytes"] == H200.total_memory
    assert ident["driver"] == "580.65.06"  # bytes from older pynvml decoded
    assert ident["power_limit_w"] == 700.0  # NVML gives milliwatts
    assert ident["max_sm_clock_mhz"] == 1980 and ident["nvml"] == ""
    assert ident["cuda"] == torch.version.cuda
    assert ident["tf32"] == {"matmul": torch.backends.cuda.matmul.allow_tf32,
                             "cudnn": torch.backends.cudnn.allow_tf32}
    assert set(ident) >= {"name", "sm_count", "l2_bytes", "driver", "cuda", "cudnn", "tf32", "power_limit_w"}


def test_the_identity_says_why_nvml_fields_are_missing():
    ident = gpu_identity("cuda", props=H200, nvml=None)
    assert ident["driver"] is None and ident["power_limit_w"] is None and ident["nvml"]
    partly = gpu_identity("cuda", props=H200, nvml=FakeNvml(unsupported={"power", "max_clock"}))
    assert partly["power_limit_w"] is None and partly["max_sm_clock_mhz"] == 1755  # the default application clock
    assert partly["driver"] == "580.65.06"


def test_nvml_finds_the_device_by_uuid_then_by_index():
    fake = FakeNvml()
    assert gpu.nvml_handle(fake, H200, 3) == ("uuid", "GPU-4a1b-77") and fake.asked_uuid == "GPU-4a1b-77"
    assert gpu.nvml_handle(FakeNvml(by_uuid=False), H200, 3) == ("index", 3)
    assert reference_clock_mhz(FakeNvml(), None) == 1980


def test_the_sampler_counts_throttled_samples():
    sampler = ClockSampler.start("cuda:0", nvml=FakeNvml(clocks=[1980, 1200, 1900, 1400]), props=H200)
    for _ in range(4):
        sampler.sample()
    assert sampler.sm_clock_mhz == [1980, 1200, 1900, 1400] and sampler.temperature_c == [41] * 4
    assert sampler.throttled == 2  # 1200 and 1400 are below 0.75 x 1980 = 1485
    assert sampler.to_json()["throttled"] == 2 and sampler.to_json()["reference_mhz"] == 1980


def test_no_sampler_on_the_cpu_or_without_nvml():
    cpu = ClockSampler.start("cpu")
    cpu.sample()
    assert cpu.sm_clock_mhz == [] and "cpu" in cpu.reason
    missing = ClockSampler.start("cuda", nvml=None)
    missing.sample()
    assert missing.sm_clock_mhz == [] and missing.throttled == 0 and missing.reason


def test_without_pynvml_the_reason_names_the_package(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_pynvml(name, *args, **kwargs):
        if name == "pynvml":
            raise ImportError("No module named 'pynvml'")
        return real_import(name, *args, **kwargs)

    gpu._nvml_module.cache_clear()
    monkeypatch.setattr(builtins, "__import__", no_pynvml)
    try:
        assert "nvidia-ml-py" in gpu.nvml_unavailable_reason()
    finally:
        gpu._nvml_module.cache_clear()


def test_environment_holds_the_identity_under_gpu(monkeypatch):
    assert (environment_module.environment()["gpu"] is None) == (not torch.cuda.is_available())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: H200)
    monkeypatch.setattr(gpu, "_nvml_module", lambda: (FakeNvml(), ""))
    env = environment_module.environment()
    assert env["gpu"]["name"] == "NVIDIA H200" and env["gpu"]["power_limit_w"] == 700.0


def test_a_float32_cuda_peak_counts_tf32_when_it_may_run(monkeypatch):
    """cuDNN runs float32 LSTMs in TF32 by default: the peak must then include the TF32 GEMM, or a
    correct cuDNN timing reads above 100 % of peak."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = False, True
        assert peak.cuda_float32_libraries() == {"cublas": False, "cublas-tf32": True}
        monkeypatch.setattr(peak, "gpu_name", lambda: "NVIDIA H200")
        on = peak.peak_key("cuda", "float32", 1)
        torch.backends.cudnn.allow_tf32 = False
        assert peak.cuda_float32_libraries() == {"cublas": False}
        assert peak.peak_key("cuda", "float32", 1) != on  # a TF32 peak is never reused for true float32
        assert peak.cuda_float32_libraries(use_tf32=True) == {"cublas-tf32": True}
        assert peak.peak_key("cpu", "float32", 1) == peak.peak_key("cpu", "float32", 1)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_gpu_peaks_measures_the_four_modes(monkeypatch):
    asked = []
    monkeypatch.setattr(peak, "measure_peak", lambda d, t, shapes=(), budget=0, use_tf32=None:
                        asked.append((t, use_tf32)) or peak.Peak(d, t, 1.0))
    assert list(peak.gpu_peaks("cuda")) == ["float32", "tf32", "bfloat16", "float16"]
    assert asked == [("float32", False), ("float32", True), ("bfloat16", None), ("float16", None)]


def test_a_header_names_its_gpu_whether_old_or_new():
    assert gpu.gpu_label(gpu_identity("cuda", props=H200, nvml=None)) == "NVIDIA H200"
    assert gpu.gpu_label("NVIDIA A100") == "NVIDIA A100" and gpu.gpu_label(None) is None
