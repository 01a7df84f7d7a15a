"""Results for the stores people run and for people: exports and reports of results files.

    metrics.py     the figures of one point (time, memory, GFLOP/s, accuracy) and its benchmark name
    bencher.py     Bencher Metric Format JSON (`lstm-bench export --format bencher`)
    pytorch_v3.py  PyTorch's oss_ci_benchmark_v3 records (`--format pytorch-v3`)
    csv_rows.py    one CSV row per point and machine (`--format csv`)
    fleet.py       results of several machines: grouped per fingerprint, asv result folders merged
    markdown.py    a pull-request comment of a sweep or a comparison (`lstm-bench report --format markdown`,
                   `compare/ab --markdown`)
    html.py        one self-contained page with the plots embedded (`lstm-bench report --format html`)

Every export and report keeps machines apart: one section or testbed per hardware
fingerprint (`lstm_bench.machine.fingerprint`), never a pooled figure.
"""
