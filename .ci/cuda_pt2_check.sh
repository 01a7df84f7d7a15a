#!/usr/bin/env bash
# The PT2 and adversarial gates on CUDA (CUDA graphs, side streams), and compiled against the
# hand-written paths on a small CUDA grid. Run on a machine with a GPU: bash .ci/cuda_pt2_check.sh OUTDIR
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp}
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name())"
K=tests/kernels
python3 -m pytest -q -p no:cacheprovider --pyargs lstm_bench.conformance -m "" --lstm-device cuda --tb=line -rfs \
  -k "test_pt2 or test_adversarial" --lstm-impl autograd --lstm-impl nn_lstm --lstm-impl vectorised \
  --lstm-impl compiled --lstm-impl $K/custom_op_lstm.py:lstm_op --lstm-impl $K/custom_op_lstm.py:lstm_module \
  --lstm-impl $K/adversarial.py:side_stream --lstm-impl $K/adversarial.py:caches_by_pointer 2>&1 | tee "$out/cuda_gates.log"
python3 -m lstm_bench bench --impl compiled,vectorised,nn_lstm,autograd --device cuda -T 10,100 -H 256 -B 32 \
  --repeats 5 --no-peak --no-progress --out "$out/cuda_bench.jsonl" 2>&1 | tee "$out/cuda_bench.log"
