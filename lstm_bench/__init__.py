"""lstm-bench: a benchmark and regression harness for LSTM backpropagation through time.

    >>> from lstm_bench import make_case, get_impl, agreement
    >>> case = make_case(seq_len=7, batch=3, input_size=5, hidden_size=4)
    >>> print(agreement(get_impl("vectorised")(case), get_impl("autograd")(case.to(torch.float64))))
"""
from .contract import Case, LSTMConfig, Result, make_case
from .devices import available_devices
from .registry import Impl, all_impls, available_impls, get_impl, load_impl, register_impl, unregister_impl
from .tolerance import AgreementReport, agreement, check_against_reference
from .version import __version__

__all__ = [
    "Case", "LSTMConfig", "Result", "make_case", "available_devices",
    "Impl", "all_impls", "available_impls", "get_impl", "load_impl", "register_impl", "unregister_impl",
    "AgreementReport", "agreement", "check_against_reference", "__version__",
]
