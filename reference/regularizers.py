"""Weight penalties and weight constraints, in float64, as the Keras docstrings define them.

Regularizers (``keras.regularizers``) add a penalty to the layer's losses:

    L1(l1)        l1 * sum(|w|)
    L2(l2)        l2 * sum(w^2)
    L1L2(l1, l2)  l1 * sum(|w|) + l2 * sum(w^2)

A weight regularizer (``kernel_regularizer``, ...) penalises that weight; an
``activity_regularizer`` penalises the layer's output ("Regularizer function
applied to the output of the layer (its "activation")").

Constraints (``keras.constraints``) are projections the optimizer applies to a
weight after each update:

    NonNeg()                          w * (w >= 0)
    MaxNorm(max_value, axis)          w * clip(n, 0, max_value) / n
    UnitNorm(axis)                    w / n
    MinMaxNorm(min, max, rate, axis)  w * (rate * clip(n, min, max) + (1 - rate) * n) / n

where ``n = sqrt(sum(w^2, axis, keepdims=True))`` is the norm of the weights
incident to each unit ("axis=0" for a (input_dim, output_dim) kernel: the norm
of each column, i.e. of each unit's incoming weights). A zero norm leaves the
weights at zero. Keras adds its fuzz factor (``backend.epsilon()``) to ``n``
in the division; the docstrings do not, and neither does this module.
"""

import numpy as np


def penalty(w, l1=0.0, l2=0.0):
    """``l1 * sum(|w|) + l2 * sum(w^2)``."""
    w = np.asarray(w, np.float64)
    return float(l1 * np.sum(np.abs(w)) + l2 * np.sum(w * w))


def norms(w, axis=0):
    """``sqrt(sum(w^2, axis, keepdims=True))``."""
    w = np.asarray(w, np.float64)
    return np.sqrt(np.sum(w * w, axis=axis, keepdims=True))


def _rescale(w, desired, n):
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, w * desired / np.where(n > 0, n, 1.0), 0.0)


def constrain(name, w, *, max_value=None, min_value=None, rate=1.0, axis=0):
    """Constraint ``name`` ("non_neg", "max_norm", "unit_norm", "min_max_norm") applied to ``w``."""
    w = np.asarray(w, np.float64)
    if name == "non_neg":
        return w * (w >= 0)
    n = norms(w, axis)
    if name == "max_norm":
        return _rescale(w, np.clip(n, 0.0, max_value), n)
    if name == "unit_norm":
        return _rescale(w, 1.0, n)
    if name == "min_max_norm":
        return _rescale(w, rate * np.clip(n, min_value, max_value) + (1.0 - rate) * n, n)
    raise ValueError(f"unknown constraint {name!r}")
