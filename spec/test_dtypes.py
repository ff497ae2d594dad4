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

Found: on torch, a float64 layer's matmuls run in float32 (divergence
``torch-float64-matmul-in-float32``: those examples are held to the float32
tolerance, and fail as "fixed" once they reach the float64 one).

Where a backend cannot compute a dtype on the CPU, that is data
(``unsupported_dtypes`` in ``spec/data/conventions.toml``) and the claim
records "unsupported" with the observed behaviour. No masks (the masked paths
are dtype-independent and the equivalence chapter's), single layers.
"""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rnnspec.spec import adapter, outcomes
from rnnspec.spec.assertions import close_mask, tolerance
from rnnspec.spec.cases import reference_outputs
from rnnspec.spec.report import divergence_applies, environment, load_divergences
from rnnspec.spec.conformance import assert_conforms, call_unless_listed_crash
from rnnspec.spec.profiles import scaled_examples
from rnnspec.spec.runners import DTYPES, rounded_to, run_in_dtype
from rnnspec.spec.strategies import KINDS, cases, layer_configs


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
    outputs, out_dtypes, var_dtypes, kernel = run_in_dtype(rounded, dtype)
    where = f"dtype={dtype!r} {case.config.one_line(case.features)}"
    assert all(d == variable for d in var_dtypes), f"variables are {var_dtypes}, but should be {variable} [{where}]"
    assert all(d == compute for d in out_dtypes), f"outputs are {out_dtypes}, but should be {compute} [{where}]"
    atol, rtol = tolerance(dtype=dtype)
    entry = _finding(FLOAT64_MATMUL_FINDING) if dtype == "float64" and kernel == "generic-loop" else None
    if entry is not None:   # its model: float32 arithmetic, the formulas to the float32 row
        expected = reference_outputs(rounded, adapter.conventions()["hard_sigmoid"])
        if all(np.all(close_mask(a, e, atol, rtol)) for a, e in zip(outputs, expected)):
            raise outcomes.DivergenceFixed(f"fixed in this environment: {entry['id']!r}, but {where} computes the "
                                           f"formulas to the float64 tolerance; remove the entry")
        f32_atol, f32_rtol = tolerance(dtype="float32")
        worst = max(float(np.max(np.abs(a - e) - (f32_atol + f32_rtol * np.abs(e)))) for a, e in zip(outputs, expected))
        assert worst <= 0, (f"matches neither the float64 formulas nor the model of {entry['id']!r} (the formulas to "
                            f"the float32 row {f32_atol}): exceeds it by {worst:.3g} [{where}]")
        outcomes.asserted_model(entry["id"])
        return
    assert_conforms(rounded, lambda: outputs, path=f"eager call, dtype={dtype!r}", atol=atol, rtol=rtol, entry=None)


FLOAT64_MATMUL_FINDING = "torch-float64-matmul-in-float32"


def _finding(finding_id):
    """The divergence entry ``finding_id`` when it applies here, else None."""
    entry = next(d for d in load_divergences() if d["id"] == finding_id)
    return entry if divergence_applies(entry, environment()) else None


#: how far a recurrent kernel from Orthogonal may be from orthonormal rows: a few roundings of QR and
#: of the Gram product at the variable dtype (float32 QR: measured 3e-7; float16 2.5e-3, units 3)
ORTHONORMAL_TOLERANCE = {"float64": 1e-5, "float32": 1e-5, "float16": 1e-2, "bfloat16": 1e-1}


def _crash_finding(dtype):
    """The raising divergence that lists ``dtype`` for default initializers here, or None."""
    for d in load_divergences():
        if (d.get("claims") == ["spec/test_dtypes.py::test_default_initializers_build_in_every_dtype"]
                and dtype in d.get("dtypes", ()) and divergence_applies(d, environment())):
            return d
    return None


@pytest.mark.parametrize("dtype", list(DTYPES))
@given(kind=st.sampled_from(KINDS), units=st.integers(2, 3))
@settings(max_examples=scaled_examples(0.1))
def test_default_initializers_build_in_every_dtype(dtype, kind, units):
    """A layer with ``dtype=NAME`` and its documented default initializers builds: variables of the
    variable dtype, the recurrent kernel ("orthogonal") with orthonormal rows to that dtype's precision,
    the bias zeros (ones in LSTM's forget block)."""
    reason = adapter.conventions()["unsupported_dtypes"].get(dtype)
    if reason:
        outcomes.unsupported(f"dtype={dtype!r} on {adapter.BACKEND}: {reason}")
        return
    entry = _crash_finding(dtype)
    layer = call_unless_listed_crash(
        entry, lambda: adapter.build(adapter.make_layer(kind, units, dtype=adapter.dtype_argument(dtype)), None, 2),
        what=f"building {kind} with dtype={dtype!r} and its default initializers")
    if layer is None:
        return
    variable = DTYPES[dtype][1]
    where = f"{adapter.LAYER_CLASSES[kind]}({units}, dtype={dtype!r}), default initializers"
    assert all(d == variable for d in adapter.variable_dtypes(layer)), (
        f"variables are {adapter.variable_dtypes(layer)}, but should be {variable} [{where}]")
    _, recurrent, bias = adapter.get_weights(layer)
    err = np.abs(recurrent @ recurrent.T - np.eye(units)).max()
    assert err <= ORTHONORMAL_TOLERANCE[variable], (
        f"recurrent_kernel rows are not orthonormal: |U U^T - I| = {err:.3g} > {ORTHONORMAL_TOLERANCE[variable]} [{where}]")
    expected_bias = np.zeros_like(bias)
    if kind == "lstm":
        expected_bias[units:2 * units] = 1.0
    assert np.array_equal(bias, expected_bias), f"bias={bias.tolist()}, but should be {expected_bias.tolist()} [{where}]"
    outcomes.asserted_formulas()
