"""A small progress bar on stderr: which point is being measured and the time left.

The estimate weights the points by their work (FLOPs of forward+backward, given by
the caller) rather than counting them, since a T=500 point costs 50x a T=10 one:

    left = elapsed / work_done * work_left

On a terminal the line is redrawn in place; elsewhere (CI logs, pipes) one line is
printed per point, so logs stay readable.
"""
from __future__ import annotations

import sys
import time
from typing import Sequence, TextIO


def _fmt_seconds(s: float) -> str:
    if s != s or s == float("inf"):
        return "?"
    s = int(round(s))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


class Progress:
    """Progress over `len(weights)` items; call `start(i, label)` before and `done(i)` after each."""

    def __init__(self, weights: Sequence[float], *, stream: TextIO | None = None, enabled: bool = True,
                 width: int = 20) -> None:
        self.weights = [max(float(w), 1e-12) for w in weights]
        self.total = sum(self.weights)
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.width = width
        self.t0 = time.perf_counter()
        self.work_done = 0.0
        self.count = 0
        self._last_len = 0

    def eta(self) -> float:
        """Estimated seconds left, or nan before anything is done."""
        if self.work_done <= 0:
            return float("nan")
        elapsed = time.perf_counter() - self.t0
        return elapsed / self.work_done * (self.total - self.work_done)

    def line(self, label: str) -> str:
        n = len(self.weights)
        frac = self.work_done / self.total if self.total else 1.0
        filled = int(round(frac * self.width))
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = _fmt_seconds(time.perf_counter() - self.t0)
        return f"[{bar}] {self.count}/{n} {label}  elapsed {elapsed}, ~{_fmt_seconds(self.eta())} left"

    def _emit(self, text: str, final: bool = False) -> None:
        if not self.enabled:
            return
        if self.tty:
            pad = max(0, self._last_len - len(text))
            self.stream.write("\r" + text + " " * pad + ("\n" if final else ""))
            self._last_len = 0 if final else len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def start(self, index: int, label: str) -> None:
        """Show that item `index` (`label`) is being measured."""
        self._emit(self.line(f"measuring {label}"))

    def done(self, index: int) -> None:
        """Item `index` is finished (measured, failed or skipped)."""
        self.work_done += self.weights[index]
        self.count += 1

    def finish(self, message: str = "") -> None:
        """Close the bar with a final line."""
        total = _fmt_seconds(time.perf_counter() - self.t0)
        self._emit(f"{message or 'done'}: {self.count}/{len(self.weights)} points in {total}", final=True)
