"""Chapter 5 -- initial weights and activation definitions.

- ``LSTM(unit_forget_bias=True)`` (the default) initialises the forget-gate
  block of the bias -- columns [units, 2*units), gate order i, f, c, o -- to
  ones, and the other blocks with ``bias_initializer`` (zeros by default).
  With ``unit_forget_bias=False`` the whole bias comes from
  ``bias_initializer``.
- GRU's default ``reset_after`` and the definition of ``hard_sigmoid`` are
  version conventions, read from ``spec/data/conventions.toml``; these
  claims pin them, so a version that changes them shows up in the report.
"""

import numpy as np
from hypothesis import given, strategies as st

from rnnspec.reference.activations import activation
from rnnspec.spec import adapter
from rnnspec.spec import outcomes


@given(units=st.integers(1, 64), features=st.integers(1, 16), unit_forget_bias=st.booleans())
def test_lstm_unit_forget_bias(units, features, unit_forget_bias):
    """LSTM bias starts as zeros, with ones in the forget-gate block when unit_forget_bias.

    The kernels' initializers are "zeros" here: they play no part in the bias, and the default
    orthogonal one computes a QR decomposition for every new shape (JAX compiles each one: 28 s
    of a 40-example ci run on Keras 3.15.1 / JAX, committed report of 2026-11-28)."""
    layer = adapter.build(adapter.make_layer("lstm", units, unit_forget_bias=unit_forget_bias,
                                             kernel_initializer="zeros", recurrent_initializer="zeros"),
                          None, features)
    bias = adapter.get_weights(layer)[2]
    expected = np.zeros(4 * units)
    if unit_forget_bias:
        expected[units:2 * units] = 1.0
    assert np.array_equal(bias, expected), (
        f"bias={bias.tolist()}, but should be {expected.tolist()} [LSTM({units}, unit_forget_bias={unit_forget_bias})]")
    outcomes.asserted_formulas()


def test_gru_default_reset_after():
    """GRU's default reset_after is the version's convention (True since Keras 2.3)."""
    layer = adapter.make_layer("gru", 2)
    assert layer.reset_after == adapter.conventions()["gru_reset_after_default"]
    outcomes.asserted_formulas()


@given(st.floats(-8, 8, allow_nan=False, width=32))
def test_hard_sigmoid_definition(x):
    """keras.activations.hard_sigmoid follows the version's definition (Keras 2: 0.2x+0.5; Keras 3: x/6+0.5)."""
    convention = adapter.conventions()["hard_sigmoid"]
    actual = float(adapter.to_numpy(adapter.keras.activations.hard_sigmoid(
        adapter._tensor(np.array([x], np.float32))))[0])
    expected = float(activation("hard_sigmoid", convention)(np.float64(x)))
    assert abs(actual - expected) <= 1e-6, f"hard_sigmoid({x})={actual}, but should be {expected} ({convention})"
    outcomes.asserted_formulas()
