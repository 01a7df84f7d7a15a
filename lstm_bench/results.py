"""The results file of a sweep: JSON lines, appended point by point, never clobbered.

Layout (one JSON object per line, each line written whole, flushed and fsync'ed):

    line 1   {"kind": "header", "format": "lstm-bench-results", "version": 1,
              "created": ISO time, "env": {...machine.environment()...},
              "grid": {"impls": [...], "T": [...], ...}, "settings": {"repeats": 5, ...}}
    line 2.. {"kind": "point", "key": Point.key, "point": Point.as_dict(),
              "status": "ok" | "failed" | "skipped",
              "measurement": Measurement.to_dict()   (status "ok")
              "error": "OutOfMemoryError: ..."       (status "failed")
              "reason": "too slow: ..."              (status "skipped")
              "time": ISO time}

Guarantees:
- a new sweep never overwrites a file: it is created with O_EXCL, or, with
  `resume=True`, appended to after the existing file has been validated;
- every record is one `os.write` of a complete line followed by fsync, so an
  interrupted sweep (Ctrl-C, a crash, a killed process) keeps every finished point;
- a half-written last line (the process died inside a write, or the disk filled up)
  is reported with its line number and left untouched: nothing is ever truncated.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .grid import Point

FORMAT = "lstm-bench-results"
VERSION = 1
STATUSES = ("ok", "failed", "skipped")
# What `compare` and `plot` read from an "ok" record; checked on load.
MEASUREMENT_FIELDS = ("forward_s", "forward_backward_s")
HEADER_FIELDS = ("format", "version", "env", "grid", "settings")


class ResultsError(ValueError):
    """A results file that cannot be read, appended to, or compared; the message names file and line."""


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class Results:
    """A loaded results file: its header and point records (the last record per key wins)."""

    path: Path
    header: dict
    records: list[dict] = field(default_factory=list)

    @property
    def env(self) -> dict:
        return self.header["env"]

    @property
    def grid(self) -> dict:
        return self.header["grid"]

    @property
    def settings(self) -> dict:
        return self.header["settings"]

    def by_key(self) -> dict[str, dict]:
        """Point key -> its latest record."""
        return {r["key"]: r for r in self.records}

    def ok(self) -> list[dict]:
        """Records of successfully measured points, one per key, in file order."""
        return [r for r in self.by_key().values() if r["status"] == "ok"]

    def done_keys(self) -> set[str]:
        """Keys that have a record of any status: a resumed sweep skips them."""
        return set(self.by_key())


def _where(path: Path, lineno: int) -> str:
    return f"{path}:{lineno}"


def _parse_line(path: Path, lineno: int, line: str, *, last: bool, complete: bool) -> dict:
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as err:
        if last and not complete:
            raise ResultsError(
                f"{_where(path, lineno)}: the last record is half-written (the sweep was interrupted while "
                f"writing it); the {lineno - 1} lines before it are intact and nothing was changed. To resume, "
                f"delete that last partial line (e.g. `sed -i '$d' {path}`), then run bench --resume again"
            ) from None
        raise ResultsError(f"{_where(path, lineno)}: not valid JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(rec, dict):
        raise ResultsError(f"{_where(path, lineno)}: expected a JSON object, got {type(rec).__name__}")
    return rec


def _check_header(path: Path, rec: dict) -> dict:
    if rec.get("kind") != "header" or rec.get("format") != FORMAT:
        raise ResultsError(f"{_where(path, 1)}: not an lstm-bench results file (first line is not its header)")
    missing = [k for k in HEADER_FIELDS if k not in rec]
    if missing:
        raise ResultsError(f"{_where(path, 1)}: header is missing {missing}")
    if rec["version"] != VERSION:
        raise ResultsError(f"{_where(path, 1)}: results format version {rec['version']!r}, this lstm-bench "
                           f"reads version {VERSION}")
    if not isinstance(rec["env"], dict) or "torch" not in rec["env"]:
        raise ResultsError(f"{_where(path, 1)}: header env must be an object with the torch version")
    for name in ("grid", "settings"):
        if not isinstance(rec[name], dict):
            raise ResultsError(f"{_where(path, 1)}: header {name} must be an object, got {type(rec[name]).__name__}")
    return rec


def _check_point(path: Path, lineno: int, rec: dict) -> dict:
    where = _where(path, lineno)
    if rec.get("kind") != "point":
        raise ResultsError(f"{where}: expected a point record (kind 'point'), got kind {rec.get('kind')!r}")
    for name in ("key", "point", "status"):
        if name not in rec:
            raise ResultsError(f"{where}: point record is missing {name!r}")
    if rec["status"] not in STATUSES:
        raise ResultsError(f"{where}: status must be one of {STATUSES}, got {rec['status']!r}")
    if not isinstance(rec["point"], dict):
        raise ResultsError(f"{where}: 'point' must be an object, got {rec['point']!r}")
    try:
        point = Point.from_dict(rec["point"])
    except (TypeError, ValueError) as err:
        raise ResultsError(f"{where}: 'point' is not a valid grid point ({err})") from None
    if rec["key"] != point.key:
        raise ResultsError(f"{where}: 'key' {rec['key']!r} does not match its point ({point.key!r})")
    if rec["status"] == "ok":
        m = rec.get("measurement")
        if not isinstance(m, dict):
            raise ResultsError(f"{where}: an 'ok' point record needs a 'measurement' object")
        for name in MEASUREMENT_FIELDS:
            v = m.get(name)
            if not isinstance(v, list) or not all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0 for x in v):
                raise ResultsError(f"{where}: measurement.{name} must be a list of positive seconds, got {v!r}")
        if not m["forward_backward_s"]:
            raise ResultsError(f"{where}: measurement.forward_backward_s is empty")
    return rec


def load(path: str | os.PathLike) -> Results:
    """Read and validate a results file; ResultsError (one line, naming file:line) if it is unusable."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such results file") from None
    except OSError as err:
        raise ResultsError(f"{path}: cannot read ({err.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ResultsError(f"{path}: not a text file (byte {err.start} is not UTF-8)") from None
    if not text.strip():
        raise ResultsError(f"{path}: empty file, no header")
    complete = text.endswith("\n")
    lines = text.split("\n")
    if complete:
        lines = lines[:-1]
    header: dict | None = None
    records: list[dict] = []
    for i, line in enumerate(lines, start=1):
        last = i == len(lines)
        if not line.strip():
            if last and not complete:
                continue
            raise ResultsError(f"{_where(path, i)}: empty line inside a results file")
        rec = _parse_line(path, i, line, last=last, complete=complete)
        if i == 1:
            header = _check_header(path, rec)
        else:
            records.append(_check_point(path, i, rec))
    if not complete:
        # Valid JSON but no newline: the newline itself was lost; still an interrupted write.
        raise ResultsError(
            f"{_where(path, len(lines))}: the last record is whole but has no line end (the sweep was "
            f"interrupted while writing it); nothing was changed. Add the line end (`echo >> {path}`) to "
            f"keep that point and resume")
    assert header is not None
    return Results(path, header, records)


def load_many(spec: str | os.PathLike) -> list[Results]:
    """Load one results file, every `*.jsonl` in a directory, or a comma-separated list of files.

    Several runs of the same sweep, pooled, let `compare` see a noisy machine's drift
    on both sides: run base and head alternately a few times, then compare the sets.
    """
    text = os.fspath(spec)
    path = Path(text)
    if path.is_dir():
        files = sorted(path.glob("*.jsonl"))
        if not files:
            raise ResultsError(f"{path}: directory holds no *.jsonl results files")
    elif "," in text and not path.exists():
        files = [Path(part) for part in text.split(",") if part]
    else:
        files = [path]
    runs = [load(f) for f in files]
    first = runs[0]
    for other in runs[1:]:
        problems, _ = comparability(first, other)
        if problems:
            raise ResultsError(f"cannot pool {other.path} with {first.path}: {problems[0]}")
    return runs


def pooled_samples(runs: list[Results], field: str) -> tuple[dict[str, list[float]], dict[str, dict]]:
    """Per key, the `field` samples of every run's "ok" record concatenated, and the point dicts."""
    samples: dict[str, list[float]] = {}
    points: dict[str, dict] = {}
    for run in runs:
        for rec in run.ok():
            values = rec["measurement"].get(field) or []
            if values:
                samples.setdefault(rec["key"], []).extend(values)
                points[rec["key"]] = rec["point"]
    return samples, points


def make_header(env: dict, grid: dict, settings: dict) -> dict:
    return {"kind": "header", "format": FORMAT, "version": VERSION, "created": now(),
            "env": env, "grid": grid, "settings": settings}


def _same(a: Any, b: Any) -> bool:
    return json.loads(json.dumps(a)) == json.loads(json.dumps(b))


def resume_conflicts(old: dict, new: dict) -> list[str]:
    """Why a sweep with header `new` may not be appended to a file with header `old` (empty if it may)."""
    problems = []
    if old["env"].get("torch") != new["env"].get("torch"):
        problems.append(f"torch {old['env'].get('torch')} in the file, {new['env'].get('torch')} now")
    if old["env"].get("threads") != new["env"].get("threads"):
        problems.append(f"{old['env'].get('threads')} threads in the file, {new['env'].get('threads')} now")
    if not _same(old["grid"], new["grid"]):
        problems.append(f"grid {old['grid']} in the file, {new['grid']} now")
    if not _same(old["settings"], new["settings"]):
        problems.append(f"settings {old['settings']} in the file, {new['settings']} now")
    return problems


class Writer:
    """Append records to a results file, each one complete and on disk before the next point runs."""

    def __init__(self, path: str | os.PathLike, header: dict, *, resume: bool = False) -> None:
        """Create `path` with `header` (refusing an existing file), or with `resume=True` reopen it.

        Resuming validates the whole file first (ResultsError on a truncated or corrupt
        one, or one recorded under another torch version, thread count, grid or settings)
        and exposes the finished keys as `self.done`.
        """
        self.path = Path(path)
        self.done: set[str] = set()
        self.existing: Results | None = None
        if resume and self.path.exists():
            self._fd = self._open(os.O_WRONLY | os.O_APPEND)
            self._lock()  # before validating: another sweep may be appending right now
            try:
                self.existing = load(self.path)
                problems = resume_conflicts(self.existing.header, header)
                if problems:
                    raise ResultsError(f"{self.path}: cannot resume, it was recorded differently: "
                                       + "; ".join(problems) + ". Use another --out for this sweep")
            except BaseException:
                self.close()
                raise
            self.done = self.existing.done_keys()
        else:
            if not self.path.parent.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._fd = self._open(os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND)
            except FileExistsError:
                raise ResultsError(f"{self.path}: already exists; pass --resume to continue that sweep, "
                                   f"or choose another --out (results are never overwritten)") from None
            self._lock()
            self.write(header)

    def _lock(self) -> None:
        """Hold an exclusive lock while writing, so that two sweeps never interleave records."""
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock, the user keeps sweeps apart
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._fd)
            self._fd = None
            raise ResultsError(f"{self.path}: another lstm-bench sweep is writing to this file right now") from None

    def _open(self, flags: int) -> int:
        try:
            return os.open(self.path, flags, 0o644)
        except FileExistsError:
            raise
        except OSError as err:
            raise ResultsError(f"{self.path}: cannot open for writing ({err.strerror})") from None

    def write(self, record: dict) -> None:
        """Append one record as one line; it is on disk when this returns."""
        data = (json.dumps(record, allow_nan=True, separators=(",", ":")) + "\n").encode("utf-8")
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        os.fsync(self._fd)

    def point(self, point_dict: dict, key: str, status: str, **fields: Any) -> dict:
        """Append the record of one point; returns it."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        rec = {"kind": "point", "key": key, "point": point_dict, "status": status, "time": now(), **fields}
        self.write(rec)
        return rec

    def close(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "Writer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def comparability(base: Results, new: Results) -> tuple[list[str], list[str]]:
    """(problems, notes) for comparing `new` against `base`.

    Problems make timings incomparable: another torch version, thread count, device
    names, or grid. `compare` refuses them unless forced. Notes are worth saying but
    expected (another commit, another host, other repeats).
    """
    problems, notes = [], []
    b, n = base.env, new.env
    for key, label in (("torch", "torch version"), ("threads", "thread count"),
                       ("cpu", "CPU"), ("gpu", "GPU")):
        if b.get(key) != n.get(key):
            problems.append(f"{label} differs: {b.get(key)!r} in {base.path}, {n.get(key)!r} in {new.path}")
    if not _same(base.grid, new.grid):
        diff = sorted(k for k in set(base.grid) | set(new.grid) if base.grid.get(k) != new.grid.get(k))
        problems.append("grids differ in " + ", ".join(
            f"{k}: {base.grid.get(k)} vs {new.grid.get(k)}" for k in diff))
    if b.get("commit") != n.get("commit"):
        notes.append(f"commits: {b.get('commit')} -> {n.get('commit')}")
    if base.settings != new.settings:
        notes.append(f"settings differ: {base.settings} vs {new.settings}")
    return problems, notes
