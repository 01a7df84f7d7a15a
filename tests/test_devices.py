"""devices.tf32: TF32 set for a block and restored, even when the block raises; nothing without CUDA."""
from __future__ import annotations

import pytest
import torch

from lstm_bench.core.devices import tf32


def _flags() -> tuple[bool, bool]:
    return torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32


@pytest.fixture
def restore_flags():
    saved = _flags()
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_tf32_sets_both_flags_in_the_block_and_restores_them(monkeypatch, restore_flags):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = False, True
    with tf32(True):
        assert _flags() == (True, True)
        with pytest.raises(RuntimeError), tf32(False):
            assert _flags() == (False, False)
            raise RuntimeError("a kernel failed")
        assert _flags() == (True, True)
    assert _flags() == (False, True)


def test_tf32_changes_nothing_without_cuda(monkeypatch, restore_flags):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = False, True
    with tf32(True):
        assert _flags() == (False, True)
