"""The public assertions for a user's own tests: `from lstm_bench.testing import assert_agrees`.

They live in `lstm_bench.conformance.assertions`, beside the suite that uses them; this module
is their public name.
"""
from .conformance.assertions import *  # noqa: F401,F403
from .conformance.assertions import __all__  # noqa: F401
