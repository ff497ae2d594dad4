"""Chapter 5c -- dtypes and mixed precision policies.

Every Keras layer takes ``dtype``: "The dtype of the layer's computations and
weights" (Keras 2), "The dtype policy ... or its name" (Keras 3). A plain
dtype (``"float64"``, ``"float16"``, ``"bfloat16"``) is both: the weights are
variables of that dtype, the layer casts its floating inputs to it and
returns it. A mixed precision policy (``"mixed_float16"``,
``"mixed_bfloat16"``; Keras 2: ``keras.mixed_precision.Policy(name)``) keeps
the variables in float32 and computes -- and returns -- float16 / bfloat16.

The claim: a SimpleRNN, LSTM or GRU built with each of them returns tensors of
the compute dtype, holds variables of the variable dtype, and computes the
documented formulas on what it computes with: the reference runs in float64
on the weights, inputs and initial states rounded to the compute dtype, and
the tolerance is that dtype's row of ``spec/data/tolerances.toml`` (measured
with ``python -m rnnspec.tools.measure_error --dtype NAME``). float32 is the
default and runs here too, so that ``dtype`` is passed with every value.

Where a backend cannot compute a dtype on the CPU, that is data
(``unsupported_dtypes`` in ``spec/data/conventions.toml``) and the claim
records "unsupported" with the observed behaviour. No masks (the masked paths
are dtype-independent and the equivalence chapter's), single layers.
"""

import pytest
from hypothesis import given, settings

from rnnspec.spec import adapter, outcomes
from rnnspec.spec.assertions import tolerance
from rnnspec.spec.conformance import assert_conforms
from rnnspec.spec.profiles import scaled_examples
from rnnspec.spec.runners import DTYPES, rounded_to, run_in_dtype
from rnnspec.spec.strategies import cases, layer_configs


@pytest.mark.parametrize("dtype", list(DTYPES))
@given(case=cases(layer_configs(bidirectional=False), with_masks=False))
@settings(max_examples=scaled_examples(0.15))
def test_layer_dtype_computes_the_formulas(dtype, case):
    """``dtype=NAME``: outputs of the compute dtype, variables of the variable dtype, values equal to the
    formulas on the inputs rounded to the compute dtype (within that dtype's tolerance row)."""
    reason = adapter.conventions()["unsupported_dtypes"].get(dtype)
    if reason:
        outcomes.unsupported(f"dtype={dtype!r} on {adapter.BACKEND}: {reason}")
        return
    compute, variable = DTYPES[dtype]
    rounded = rounded_to(case, dtype)
    outputs, out_dtypes, var_dtypes = run_in_dtype(rounded, dtype)
    where = f"dtype={dtype!r} {case.config.one_line(case.features)}"
    assert all(d == variable for d in var_dtypes), f"variables are {var_dtypes}, but should be {variable} [{where}]"
    assert all(d == compute for d in out_dtypes), f"outputs are {out_dtypes}, but should be {compute} [{where}]"
    atol, rtol = tolerance(dtype=dtype)
    assert_conforms(rounded, lambda: outputs, path=f"eager call, dtype={dtype!r}", atol=atol, rtol=rtol, entry=None)
