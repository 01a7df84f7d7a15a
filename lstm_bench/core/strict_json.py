"""Strict JSON: no NaN or Infinity, which `json.dumps` writes by default and other parsers reject.

`finite(obj)` is a copy that strict JSON can hold: non-finite floats become the strings
"nan", "inf", "-inf"; tensors and tuples become lists; dicts and lists are cleaned
recursively. `dumps(obj)` is `json.dumps(finite(obj), allow_nan=False)`. `write_new(path,
obj)` writes a file that must not exist yet (a report of `compare` or `ab`: never overwritten).
"""
from __future__ import annotations

import json
import math
import os
from typing import Any


def finite(obj: Any) -> Any:
    """A copy of `obj` with every non-finite float replaced by its name ("nan", "inf", "-inf")."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else str(obj)
    if hasattr(obj, "tolist") and callable(obj.tolist):  # torch tensors, numpy arrays and scalars
        return finite(obj.tolist())
    if isinstance(obj, dict):
        return {key: finite(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(value) for value in obj]
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """`json.dumps` of `finite(obj)`, refusing anything non-finite that slipped through."""
    return json.dumps(finite(obj), allow_nan=False, **kwargs)


def write_new(path: str | os.PathLike, obj: Any) -> None:
    """Write `obj` as indented JSON to a new file; FileExistsError if `path` exists (O_EXCL)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, allow_nan=False)
        f.write("\n")
