"""Kernels in the forms they ship, adapted to the contract `case -> Result`:

    op_kernel(op, ...)            a torch.library custom op (custom_op.py)
    module_kernel(build, ...)     an nn.Module, a drop-in nn.LSTM replacement (module.py)

and a plain function `case -> Result`, as it is. Each adapter also hands the PT2 gates a
`Traceable` (traceable.py): the kernel's forward as a function of tensors, to compile.
docs/shipping.md has a complete example of each.
"""
from .custom_op import default_args, op_kernel
from .module import load_lstm_weights, module_kernel
from .traceable import Traceable, gradients

__all__ = ["op_kernel", "default_args", "module_kernel", "load_lstm_weights", "Traceable", "gradients"]
