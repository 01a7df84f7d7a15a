"""The command line as the tests call it: `run(capsys, "check", "--impl", ...)` -> (exit code, stdout, stderr)."""
from __future__ import annotations

from lstm_bench import cli


def run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err
