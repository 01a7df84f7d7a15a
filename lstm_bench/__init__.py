"""lstm-bench: a benchmark and regression harness for LSTM backpropagation through time.

    >>> from lstm_bench import make_case, get_impl, agreement
    >>> case = make_case(seq_len=7, batch=3, input_size=5, hidden_size=4)
    >>> print(agreement(get_impl("vectorised")(case), get_impl("autograd")(case.to(torch.float64))))
"""
from .conformance.judge import judge_against_reference
from .conformance.policy import AgreementReport, agreement
from .core.contract import Case, LSTMConfig, Result, make_case
from .core.devices import available_devices
from .core.registry import Impl, all_impls, available_impls, get_impl, load_impl, register_impl, unregister_impl
from .version import __version__

# The name of the first two waves, kept so that users' code keeps importing.
check_against_reference = judge_against_reference

__all__ = [
    "Case", "LSTMConfig", "Result", "make_case", "available_devices",
    "Impl", "all_impls", "available_impls", "get_impl", "load_impl", "register_impl", "unregister_impl",
    "AgreementReport", "agreement", "judge_against_reference", "check_against_reference", "__version__",
]
