"""One CSV row per recorded point and file (`lstm-bench export --format csv`), for spreadsheets and pandas.

Every status is a row (ok, failed with its error, skipped with its reason), and every
row names its machine (fingerprint hash and a description): rows of two machines sit
in one table but never in one figure. Times in seconds; empty cells are not measured.
"""
from __future__ import annotations

import csv
import io

from ..bench.results import ResultsFile
from ..bench.spread import quartiles
from ..machine.fingerprint import describe

COLUMNS = ("fingerprint", "machine", "torch", "commit", "threads", "file", "impl", "T", "B", "I", "H", "device",
           "dtype", "config", "status", "backend", "repeats", "forward_backward_median_s", "forward_backward_q1_s",
           "forward_backward_q3_s", "forward_median_s", "gflops", "peak_bytes", "saved_bytes", "max_rel_error",
           "error_or_reason")


def rows(results: list[ResultsFile]) -> list[dict]:
    out = []
    for res in results:
        fp = res.fingerprint
        for rec in res.by_key().values():
            p, m = rec.point, rec.measurement
            row = {"fingerprint": fp["hash"], "machine": describe(fp), "torch": res.env.get("torch"),
                   "commit": res.env.get("commit"), "threads": res.env.get("threads"), "file": str(res.path),
                   "impl": p.impl, "T": p.T, "B": p.B, "I": p.I, "H": p.H, "device": p.device, "dtype": p.dtype,
                   "config": p.variant.label, "status": rec.status, "error_or_reason": rec.error or rec.reason}
            if m is not None:
                q1, med, q3 = quartiles(m.forward_backward_s)
                row.update({"backend": m.backend, "repeats": len(m.forward_backward_s),
                            "forward_backward_median_s": med, "forward_backward_q1_s": q1,
                            "forward_backward_q3_s": q3, "forward_median_s": m.forward_median_s,
                            "gflops": rec.gflops, "peak_bytes": m.peak_bytes, "saved_bytes": m.saved_bytes,
                            "max_rel_error": m.max_rel_error})
            out.append(row)
    return out


def to_csv(results: list[ResultsFile]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows(results):
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in COLUMNS})
    return buf.getvalue()
