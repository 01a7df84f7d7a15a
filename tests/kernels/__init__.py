"""Kernels from outside the package, loaded by the tests as a user would (`--lstm-impl path:function`)."""
