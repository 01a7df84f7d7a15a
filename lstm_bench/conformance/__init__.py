"""lstm-bench's conformance suite: every gate, run on the kernels you name.

    pytest --pyargs lstm_bench.conformance --lstm-impl mypkg.kernels:my_lstm
    lstm-bench test --impl mypkg.kernels:my_lstm             # the same, with its exit status

The gates (each parametrised over the kernels under test and their devices):

- test_agreement   the catalogue of cases (`lstm_bench.conformance.cases`: size boundaries, long
                   memory, stress) against the float64 truth, under the tolerance policy;
- test_random      cases drawn at random (hypothesis), shrunk to the smallest failing one,
                   printed as the `lstm-bench check` command that reproduces it;
- test_properties  results in the case's dtype and on its device, inputs unchanged,
                   determinism, no state between calls, batch independence;
- test_gradcheck   finite differences in float64 (`torch.autograd.gradcheck`);
- test_adversarial the last call of a timing loop judged, over the same buffers refilled;
                   results that alias inputs; on CUDA, work left on a side stream;
- test_pt2         (marker pt2) opcheck of a custom op, the kernel under torch.compile
                   against the float64 truth, graph breaks, CUDA graph replay (docs/shipping.md).

The plugin (`lstm_bench.conformance.plugin`, registered through pytest's `pytest11`
entry point) adds the options: --lstm-impl (repeatable; default every registered
implementation), --lstm-depth quick|default|nightly, --lstm-seed, --lstm-examples,
--lstm-device. What a kernel declares it does not support is skipped with the reason.
"""
