"""The worker processes of `lstm-bench ab`, as the coordinator sees them: one per side, JSON lines
over its stdin/stdout (the protocol: `ab_worker.py`), every read under a timeout, every failure one
line naming the side (`WorkerError`).
"""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

WORKER = Path(__file__).resolve().parent / "ab_worker.py"
DEFAULT_TIMEOUT = 600.0  # seconds one request may take before the worker is called hung
HELLO_TIMEOUT = 120.0  # importing torch on a loaded machine


class WorkerError(Exception):
    """A worker that cannot be started, died, printed garbage or hung: one line naming the side."""


@dataclass(frozen=True)
class Side:
    """One side of the comparison: its Python executable and extra environment variables."""

    name: str
    python: str
    env: tuple[tuple[str, str], ...] = ()


class WorkerProcess:
    """One side's worker: JSON lines over its stdin/stdout, every read under a timeout."""

    def __init__(self, side: Side, *, timeout: float = DEFAULT_TIMEOUT, cwd: str | None = None) -> None:
        self.side = side
        self.timeout = timeout
        self.stderr = tempfile.TemporaryFile()
        env = dict(os.environ)
        env.update(dict(side.env))
        env["PYTHONUNBUFFERED"] = "1"
        try:
            self.proc = subprocess.Popen([side.python, str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=self.stderr, env=env, cwd=cwd, start_new_session=True)
        except OSError as err:
            self.stderr.close()
            raise WorkerError(f"{side.name} python {side.python!r} cannot be started ({err.strerror or err})") \
                from None
        self.buffer = b""

    def _stderr_tail(self) -> str:
        try:
            self.stderr.seek(0)
            lines = [line.strip() for line in self.stderr.read().decode("utf-8", "replace").splitlines()]
        except (OSError, ValueError):
            return ""
        lines = [line for line in lines if line]
        return lines[-1][:300] if lines else ""

    def _fail(self, what: str) -> WorkerError:
        self.kill()
        tail = self._stderr_tail()
        return WorkerError(f"{self.side.name} worker ({self.side.python}) {what}" + (f"; its last words: {tail}"
                                                                                   if tail else ""))

    def _readline(self, timeout: float, op: str) -> bytes:
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._fail(f"did not answer {op!r} within {timeout:g} s (hung?); it was killed")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                code = self.proc.wait(timeout=10)
                raise self._fail(f"exited with code {code} during {op!r}")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line

    def request(self, msg: dict, timeout: float | None = None) -> dict:
        """Send one request, return its reply (a dict with "ok"); WorkerError if the worker fails us."""
        op = msg.get("op", "?")
        if self.proc.stdin.closed:
            raise WorkerError(f"{self.side.name} worker ({self.side.python}) was closed before {op!r}")
        try:
            self.proc.stdin.write((json.dumps(msg) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            code = self.proc.poll()
            raise self._fail(f"exited with code {code} before {op!r}") from None
        line = self._readline(self.timeout if timeout is None else timeout, op)
        try:
            reply = json.loads(line)
        except ValueError:
            reply = None
        if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
            text = line.decode("utf-8", "replace")[:80]
            raise self._fail(f"answered {op!r} with something that is not a protocol reply: {text!r}")
        return reply

    def kill(self) -> None:
        """Kill the worker and anything it started (it leads its own process group)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError, AttributeError):
                self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def close(self) -> None:
        """Ask the worker to quit; kill it if it does not within a few seconds."""
        if self.proc.poll() is None:
            try:
                self.request({"op": "quit"}, timeout=5)
                self.proc.wait(timeout=5)
            except (WorkerError, subprocess.TimeoutExpired):
                pass
        self.kill()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        self.stderr.close()


def hello(worker: WorkerProcess) -> dict:
    """The worker's versions, executable and pid (its `hello` reply); WorkerError when it cannot run."""
    reply = worker.request({"op": "hello"}, timeout=min(worker.timeout, HELLO_TIMEOUT))
    if not reply["ok"]:
        raise worker._fail(f"cannot run the comparison: {reply.get('error')}")
    return {k: v for k, v in reply.items() if k != "ok"}


def identity(info: dict) -> tuple:
    """What must not change between a side's worker generations: its lstm-bench, torch and injected slowdown."""
    return info.get("lstm_bench"), info.get("lstm_bench_file"), info.get("torch"), info.get("inject") or 0
