"""Gradient flow through time in recurrent networks.

- `norms`: per-step dL/dx_t, dL/dh_t, dL/dc_t (LSTM from the manual BPTT implementations)
- `jacobian`: exact decomposition of dc_t/dc_{t-1} and d(c_t, h_t)/d(c_{t-1}, h_{t-1})
- `forget`: forget-gate statistics, span products, `simulate_gradient_decay`
- `memory_length`: effective memory length at a threshold
- `init`: forget-bias and chrono initialisation of nn.LSTM
- `diagnostics`: hook-based per-layer gradient report (context manager)
- `study`: RNN/GRU/LSTM comparison and the initialisation study
- `plots`: the PNGs of `lstm-bench flow` (the command itself is `lstm_bench.cli.flow`)
"""
from .diagnostics import DiagnosticsReport, GradientDiagnostics
from .forget import decay_table, forget_stats, simulate_gradient_decay, span_products, steps_to_fall
from .init import INITS, apply_init_, chrono_init_, set_forget_bias_
from .jacobian import JacobianProfile, cell_jacobian_terms, decompose_sequence, state_jacobian, state_jacobian_terms
from .memory_length import MemoryLength, effective_memory, measure_effective_memory
from .models import make_model, recurrent_layers
from .norms import StepGrads, lstm_case, step_gradients
from .study import COMPARISON, INIT_STUDY, Config, FlowSettings, FlowSummary, compare_models, init_study

__all__ = [
    "DiagnosticsReport", "GradientDiagnostics", "decay_table", "forget_stats", "simulate_gradient_decay",
    "span_products", "steps_to_fall", "INITS", "apply_init_", "chrono_init_", "set_forget_bias_",
    "JacobianProfile", "cell_jacobian_terms", "decompose_sequence", "state_jacobian", "state_jacobian_terms",
    "MemoryLength", "effective_memory", "measure_effective_memory", "make_model", "recurrent_layers",
    "StepGrads", "lstm_case", "step_gradients", "COMPARISON", "INIT_STUDY", "Config", "FlowSummary", "FlowSettings",
    "compare_models", "init_study",
]
