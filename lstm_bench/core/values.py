"""Checking and parsing the numbers a user gives: in Python, on the command line, in $VARIABLES.

One owner for every "must be a positive integer" in the package, so that the rule and
its message are the same wherever a number comes in:

- `check_int(name, value, minimum)`, `check_positive_int(name, value)`: a Python
  argument (an int, not a bool or a str);
- `parse_int(text, minimum=1)`, `parse_number(text, ...)`, `parse_fraction(text)`:
  text from the command line or the environment; each raises ValueError("expected ...,
  got 'text'"), which the caller prefixes with what was being read;
- `from_env(name, parse, default)`: $name parsed with `parse`, or `default` when unset
  or empty; a bad value is ValueError("$name: expected ..., got '...'").
"""
from __future__ import annotations

import math
import os
from typing import Callable, TypeVar

T = TypeVar("T")


def check_int(name: str, value: object, minimum: int = 1) -> int:
    """`value` if it is an int >= `minimum` (not a bool); else a ValueError naming `name`."""
    kind = "a positive int" if minimum == 1 else f"an int >= {minimum}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be {kind}, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be {kind}, got {value}")
    return value


def check_positive_int(name: str, value: object) -> int:
    """`value` if it is an int > 0 (not a bool); else a ValueError naming `name`."""
    return check_int(name, value, 1)


def _expected_int(minimum: int) -> str:
    return "a positive integer" if minimum == 1 else f"an integer >= {minimum}"


def parse_int(text: str, *, minimum: int = 1) -> int:
    """int(text) if it is at least `minimum`; ValueError("expected a positive integer, got '...'") otherwise."""
    try:
        value = int(str(text).strip())
    except ValueError:
        raise ValueError(f"expected {_expected_int(minimum)}, got {text!r}") from None
    if value < minimum:
        raise ValueError(f"expected {_expected_int(minimum)}, got {value}")
    return value


def parse_number(text: str, *, positive: bool = False, minimum: float | None = None,
                 maximum: float | None = None, what: str = "a number") -> float:
    """A finite float from `text`, within the bounds given; ValueError naming the expectation otherwise."""
    try:
        value = float(str(text).strip())
    except ValueError:
        value = math.nan
    ok = math.isfinite(value) and (not positive or value > 0) and (minimum is None or value >= minimum) \
        and (maximum is None or value <= maximum)
    if not ok:
        raise ValueError(f"expected {what}, got {text!r}")
    return value


def parse_fraction(text: str) -> float:
    """0.1 or "10%" -> 0.1; a finite value >= 0."""
    text = str(text).strip()
    number = text[:-1] if text.endswith("%") else text
    value = parse_number(number, minimum=0.0, what="a fraction such as 0.1 or 10%")
    return value / 100 if text.endswith("%") else value


def parse_probability(text: str) -> float:
    """A fraction strictly between 0 and 1 ("0.05" or "5%")."""
    try:
        value = parse_fraction(text)
    except ValueError:
        value = math.nan
    if not 0 < value < 1:
        raise ValueError(f"expected a probability in (0, 1), got {text!r}")
    return value


def from_env(name: str, parse: Callable[[str], T], default: T) -> T:
    """$name parsed by `parse`, or `default` when the variable is unset or blank."""
    text = os.environ.get(name, "")
    if not text.strip():
        return default
    try:
        return parse(text)
    except ValueError as err:
        raise ValueError(f"${name}: {err}") from None
