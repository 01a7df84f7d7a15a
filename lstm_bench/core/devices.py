"""Which devices exist here, a check that names the missing one, and TF32 set for a block."""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch

KNOWN_DEVICES = ("cpu", "cuda")


def available_devices() -> list[str]:
    """Device types usable on this machine: always "cpu", plus "cuda" when a GPU is visible."""
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def check_device(device: str | torch.device) -> torch.device:
    """Return `device` as a torch.device, or raise ValueError saying why it cannot be used."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must be one of {KNOWN_DEVICES} (optionally 'cuda:N'), got {device!r}") from err
    if dev.type not in KNOWN_DEVICES:
        raise ValueError(f"device must be one of {KNOWN_DEVICES}, got {device!r}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} is not available here: torch.cuda.is_available() is False")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {device!r} is not available here: only {torch.cuda.device_count()} CUDA device(s)")
    return dev


def tf32_active(device: str | torch.device) -> bool:
    """Whether float32 work on `device` may run in TF32 now (CUDA, with TF32 allowed for matmuls
    or cuDNN; torch allows it for cuDNN by default), so its results carry TF32's precision."""
    return (torch.device(device).type == "cuda"
            and bool(torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32))


@contextlib.contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    """TF32 for CUDA matmuls and cuDNN set to `enabled` inside the block, restored after; a no-op
    without CUDA. Off, float32 is computed as float32 (how the gates judge it)."""
    if not torch.cuda.is_available():
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
