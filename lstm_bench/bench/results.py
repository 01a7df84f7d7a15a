"""The results file of a sweep: JSON lines, appended point by point, never clobbered.

Layout (one JSON object per line, each line written whole, flushed and fsync'ed):

    line 1   {"kind": "header", "format": "lstm-bench-results", "version": 2,
              "created": ISO time, "env": {...machine.environment()...},
              "grid": {"impls": [...], "T": [...], ...}, "settings": {"repeats": 5, ...}}
    line 2.. a `lstm_bench.bench.records.PointRecord`:
             {"kind": "point", "point": Point.as_dict(), "status": "ok" | "failed" | "skipped",
              "measurement": Measurement.to_json()   (status "ok")
              "error": "OutOfMemoryError: ..."       (status "failed")
              "reason": "too slow: ..."              (status "skipped")
              "time": ISO time}

Format 1 (lstm-bench 0.1) also stored each point's key and, in the measurement, what
the point and the header already hold; it is read as well, and a resumed format-1 file
is appended to in format 1.

Guarantees:
- a new sweep never overwrites a file: it is created with O_EXCL, or, with
  `resume=True`, appended to after the existing file has been validated;
- every record is one `os.write` of a complete line followed by fsync, so an
  interrupted sweep (Ctrl-C, a crash, a killed process) keeps every finished point;
- a half-written last line (the process died inside a write, or the disk filled up)
  is reported with its line number and left untouched: nothing is ever truncated.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core import strict_json
from ..machine import fingerprint as _fingerprint
from .records import PointRecord

FORMAT = "lstm-bench-results"
VERSION = 2
READABLE_VERSIONS = (1, 2)
HEADER_FIELDS = ("format", "version", "env", "grid", "settings")


class ResultsError(ValueError):
    """A results file that cannot be read, appended to, or compared; the message names file and line."""


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class ResultsFile:
    """A loaded results file: its header and point records (the last record per key wins)."""

    path: Path
    header: dict
    records: list[PointRecord] = field(default_factory=list)

    @property
    def env(self) -> dict:
        return self.header["env"]

    @property
    def grid(self) -> dict:
        return self.header["grid"]

    @property
    def settings(self) -> dict:
        return self.header["settings"]

    @property
    def version(self) -> int:
        return self.header["version"]

    @property
    def fingerprint(self) -> dict:
        """The machine it was recorded on (`lstm_bench.machine.fingerprint.from_header`; computed for old files)."""
        return _fingerprint.from_header(self.header)

    def by_key(self) -> dict[str, PointRecord]:
        """Point key -> its latest record."""
        return {r.key: r for r in self.records}

    def ok(self) -> list[PointRecord]:
        """Records of successfully measured points, one per key, in file order."""
        return [r for r in self.by_key().values() if r.status == "ok"]

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
    if rec["version"] not in READABLE_VERSIONS:
        raise ResultsError(f"{_where(path, 1)}: results format version {rec['version']!r}, this lstm-bench "
                           f"reads versions {', '.join(map(str, READABLE_VERSIONS))}")
    if not isinstance(rec["env"], dict) or "torch" not in rec["env"]:
        raise ResultsError(f"{_where(path, 1)}: header env must be an object with the torch version")
    for name in ("grid", "settings"):
        if not isinstance(rec[name], dict):
            raise ResultsError(f"{_where(path, 1)}: header {name} must be an object, got {type(rec[name]).__name__}")
    return rec


def _check_point(path: Path, lineno: int, rec: dict) -> PointRecord:
    try:
        return PointRecord.from_json(rec)
    except ValueError as err:
        raise ResultsError(f"{_where(path, lineno)}: {err}") from None


def load(path: str | os.PathLike) -> ResultsFile:
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
    records: list[PointRecord] = []
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
    return ResultsFile(path, header, records)


def load_many(spec: str | os.PathLike) -> list[ResultsFile]:
    """Load one results file, every `*.jsonl` in a directory, or a comma-separated list of files."""
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
    return [load(f) for f in files]


def check_new_output(path: str | os.PathLike, *, what: str = "results file", hint: str = "choose another --out") -> Path:
    """`path` as a Path, once it is sure a new file or folder can be made there before any work
    runs: ResultsError if it exists (outputs are never overwritten) or if its nearest existing
    parent folder is not a folder or is not writable (the folders between are made later)."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        raise ResultsError(f"{path}: already exists; {hint} ({what}s are never overwritten)")
    parent = path.parent
    while not parent.exists():
        if parent == parent.parent:
            break
        parent = parent.parent
    if not parent.is_dir():
        raise ResultsError(f"{path}: cannot write the {what} there: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ResultsError(f"{path}: cannot write the {what} there: folder {parent} is not writable")
    return path


def check_appendable(path: str | os.PathLike) -> Path:
    """`path` as a Path, once it is sure the results file there can be appended to (--resume)."""
    path = Path(path)
    if path.exists() and not os.access(path, os.W_OK):
        raise ResultsError(f"{path}: cannot resume, the file is not writable")
    return path


def make_header(env: dict, grid: dict, settings: dict, fingerprint: dict | None = None) -> dict:
    """The header line; `fingerprint` defaults to this machine's (`lstm_bench.machine.fingerprint`)."""
    return {"kind": "header", "format": FORMAT, "version": VERSION, "created": now(),
            "env": env, "grid": grid, "settings": settings,
            "fingerprint": _fingerprint.fingerprint(env) if fingerprint is None else fingerprint}


def same_json(a: Any, b: Any) -> bool:
    """Equal once both are written as JSON (tuples and lists alike, as a results file holds them)."""
    return json.loads(json.dumps(a)) == json.loads(json.dumps(b))


def resume_conflicts(old: dict, new: dict) -> list[str]:
    """Why a sweep with header `new` may not be appended to a file with header `old` (empty if it may)."""
    problems = []
    if old["env"].get("torch") != new["env"].get("torch"):
        problems.append(f"torch {old['env'].get('torch')} in the file, {new['env'].get('torch')} now")
    if old["env"].get("threads") != new["env"].get("threads"):
        problems.append(f"{old['env'].get('threads')} threads in the file, {new['env'].get('threads')} now")
    if not same_json(old["grid"], new["grid"]):
        problems.append(f"grid {old['grid']} in the file, {new['grid']} now")
    if not same_json(old["settings"], new["settings"]):
        problems.append(f"settings {old['settings']} in the file, {new['settings']} now")
    other_machine = _fingerprint.fingerprint_mismatch_reason(_fingerprint.from_header(old),
                                                             _fingerprint.from_header(new))
    if other_machine:
        problems.append(other_machine)
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
        self.existing: ResultsFile | None = None
        self.version = header["version"]
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
            self.version = self.existing.version
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
        data = (strict_json.dumps(record, separators=(",", ":")) + "\n").encode("utf-8")
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        os.fsync(self._fd)

    def point(self, record: PointRecord) -> PointRecord:
        """Append the record of one point, stamped with the time now; returns the stamped record."""
        record = dataclasses.replace(record, time=now())
        line = record.to_json()
        if self.version == 1:  # format 1 also stored the key
            line["key"] = record.key
        self.write(line)
        return record

    def close(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "Writer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
