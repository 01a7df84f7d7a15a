"""The README's complete kernel is the file the tests run, and it passes the suite's catalogue."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from lstm_bench import make_case
from lstm_bench.core.registry import load_impl
from lstm_bench.testing import assert_agrees, assert_conforms

ROOT = Path(__file__).parent.parent
KERNEL = ROOT / "tests" / "kernels" / "readme_lstm.py"

pytestmark = pytest.mark.usefixtures("forget_loaded_kernels")


def test_the_readme_shows_the_kernel_file_word_for_word():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- kernel: tests/kernels/readme_lstm.py -->\n```python\n(.*?)```", readme, re.S)
    assert block, "the README lost its complete kernel"
    assert block.group(1) == KERNEL.read_text()


def test_the_readme_kernel_agrees_and_its_declaration_skips_what_it_does_not_implement():
    impl = load_impl(f"{KERNEL}:my_lstm")
    assert_agrees(impl, make_case(7, 3, 5, 4))
    assert assert_conforms(impl, depth="quick")  # every catalogue case it declares, judged
    assert impl.unsupported_reason(make_case(3, 2, 4, 5, num_layers=2)) is not None
