"""Kernels in the forms they ship, adapted to the contract `case -> Result`:

    op_kernel(op, ...)            a torch.library custom op (custom_op.py)
    module_kernel(build, ...)     an nn.Module, a drop-in nn.LSTM replacement (module.py)
    autograd_kernel(forward, ...) a forward function, gradients by autodiff (autodiff.py)

and a plain function `case -> Result`, as it is. `layout.py` converts nn.LSTM's parameters and
sequences to another library's layout (gate order, orientation, biases, directions, lengths). Each adapter also hands the PT2 gates a
`Traceable` (traceable.py): the kernel's forward as a function of tensors, to compile.
docs/shipping.md has a complete example of each.
"""
from .autodiff import autograd_kernel
from .custom_op import default_args, op_kernel
from .layout import Layout
from .module import load_lstm_weights, module_kernel
from .traceable import Traceable, gradients

__all__ = ["autograd_kernel", "Layout", "op_kernel", "default_args", "module_kernel", "load_lstm_weights", "Traceable", "gradients"]
