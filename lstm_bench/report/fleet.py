"""Results of several machines: grouped per hardware fingerprint, and asv result folders merged.

A fleet (`.github/workflows/fleet.yml`) runs the same sweep and asv suite on each
machine; the final job gathers every machine's artifacts and

- reports each machine's results files on their own (`by_machine`: one group per
  fingerprint hash, never a figure pooled over two machines), and
- merges the asv result folders into one `results_dir` for `asv publish`
  (`merge_asv_results`): asv keeps one folder per machine name, so two machines that
  claim the same name with different machine.json would overwrite each other's history;
  that is refused, not merged.
"""
from __future__ import annotations

import filecmp
import json
import shutil
from pathlib import Path

from ..bench.results import ResultsFile
from ..machine.fingerprint import describe


def by_machine(results: list[ResultsFile]) -> dict[str, list[ResultsFile]]:
    """Fingerprint hash -> the results files recorded on that machine, in the order given."""
    groups: dict[str, list[ResultsFile]] = {}
    for res in results:
        groups.setdefault(res.fingerprint["hash"], []).append(res)
    return groups


def one_machine(results: list[ResultsFile], what: str) -> dict:
    """The fingerprint all `results` share; ValueError naming the machines when they are several."""
    groups = by_machine(results)
    if len(groups) > 1:
        names = "; ".join(f"{describe(files[0].fingerprint)} ({', '.join(str(f.path) for f in files)})"
                          for files in groups.values())
        raise ValueError(f"{what} takes the results of one machine at a time, got {len(groups)}: {names}")
    return results[0].fingerprint


def merge_asv_results(sources: list[Path], into: Path) -> list[str]:
    """Copy every machine folder of each asv results dir in `sources` into `into`; returns the machine names.

    A machine folder is a directory holding machine.json. ValueError (nothing copied for
    it) when `into` already has that machine with another machine.json, or a result file
    of the same name whose content differs: asv would mix or lose one machine's history.
    """
    into.mkdir(parents=True, exist_ok=True)
    machines: list[str] = []
    for source in sources:
        for machine_json in sorted(Path(source).glob("*/machine.json")):
            folder = machine_json.parent
            target = into / folder.name
            if (target / "machine.json").exists():
                if json.loads((target / "machine.json").read_text()) != json.loads(machine_json.read_text()):
                    raise ValueError(f"asv machine {folder.name!r} is in two artifacts with different machine.json "
                                     f"({folder} and {target}): give each machine its own name")
            for f in sorted(folder.iterdir()):
                if f.is_file() and (target / f.name).exists() and not filecmp.cmp(f, target / f.name, shallow=False):
                    if f.name != "machine.json":
                        raise ValueError(f"{target / f.name} exists with other content than {f}: not overwritten")
            shutil.copytree(folder, target, dirs_exist_ok=True)
            if folder.name not in machines:
                machines.append(folder.name)
    if not machines:
        raise ValueError("no asv machine folder (a directory with machine.json) in " + ", ".join(map(str, sources)))
    for benchmarks in (Path(s) / "benchmarks.json" for s in sources):
        if benchmarks.exists() and not (into / "benchmarks.json").exists():
            shutil.copy2(benchmarks, into / "benchmarks.json")
    return machines
