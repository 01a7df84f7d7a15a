"""The built-in BPTT implementations, registered under the names in `BUILTIN`.

Each declares what it supports (`lstm_bench.core.support`): every one implements nn.LSTM's
whole configuration (layers, directions, projection, batch_first, lengths). bfloat16 and
float16: `nn_lstm` is the vendor, the low-precision yardstick; `reference` and
`vectorised` keep their sums in float32 and pass the low-precision policy. `autograd` and
`nn_lstm_native` (and `compiled`, autograd's path) are float32/float64 only: autograd's engine and ATen's own kernels sum a
weight's gradient over the T steps in the weight's dtype, which in bfloat16 at T = 300
measured 2.3x (autograd) and 1.5x (ATen) the policy's bound against oneDNN
(`python -m studies.gate_study low_precision`).
"""
from ..core.registry import register_impl
from ..core.support import DTYPES
from . import autograd, compiled, nn_lstm, reference, vectorised

# The names of the built-in implementations: the one list the grid, the tests and the docs use.
BUILTIN = ("reference", "vectorised", "autograd", "nn_lstm", "nn_lstm_native", "compiled")
# Built-ins that compile on their first call (tens of seconds on a 2-core CPU): the quick runs
# (QUICK_GRID, `check` and `lstm-bench` without --impl) leave them out; name them to include them.
COMPILING = ("compiled",)

register_impl("reference", reference.run, forward=reference.forward, backward=reference.backward, dtypes=DTYPES,
              description="textbook manual BPTT, per gate and per step")
register_impl("vectorised", vectorised.run, forward=vectorised.forward, backward=vectorised.backward,
              dtypes=DTYPES, description="manual BPTT with fused GEMMs and preallocated buffers")
register_impl("autograd", autograd.run, forward=autograd.forward, backward=autograd.backward,
              description="torch ops forward, torch.autograd.grad backward")
# cuDNN evaluates the activations with approximate intrinsics (conformance/policy.py, FAST_MATH_FLOOR)
register_impl("nn_lstm", nn_lstm.run, forward=nn_lstm.forward, backward=nn_lstm.backward, dtypes=DTYPES,
              approximate_activations=("cuda",), description="torch.nn.LSTM: cuDNN on CUDA, oneDNN on CPU")
register_impl("nn_lstm_native", nn_lstm.run_native, forward=nn_lstm.forward_native, backward=nn_lstm.backward,
              description="torch.nn.LSTM with cuDNN and oneDNN off (ATen's kernels)")
register_impl("compiled", compiled.run, forward=compiled.forward, backward=compiled.backward,
              description="the autograd path with its cell under torch.compile (Inductor), dynamic shapes")
