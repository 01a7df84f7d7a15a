"""The built-in BPTT implementations, registered under the names in `BUILTIN`."""
from ..registry import register_impl
from . import autograd, nn_lstm, reference, vectorised

# The names of the built-in implementations: the one list the grid, the tests and the docs use.
BUILTIN = ("reference", "vectorised", "autograd", "nn_lstm", "nn_lstm_native")

register_impl("reference", reference.run, forward=reference.forward, backward=reference.backward,
              description="textbook manual BPTT, per gate and per step")
register_impl("vectorised", vectorised.run, forward=vectorised.forward, backward=vectorised.backward,
              description="manual BPTT with fused GEMMs and preallocated buffers")
register_impl("autograd", autograd.run, forward=autograd.forward, backward=autograd.backward,
              description="torch ops forward, torch.autograd.grad backward")
register_impl("nn_lstm", nn_lstm.run, forward=nn_lstm.forward, backward=nn_lstm.backward,
              description="torch.nn.LSTM: cuDNN on CUDA, oneDNN on CPU")
register_impl("nn_lstm_native", nn_lstm.run_native, forward=nn_lstm.forward_native, backward=nn_lstm.backward,
              description="torch.nn.LSTM with cuDNN and oneDNN off (ATen's kernels)")
