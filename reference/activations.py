"""Activation functions by their Keras names, in float64.

In the article, ``g`` is ``activation`` (default ``tanh``) and ``sigma`` is
``recurrent_activation`` (default ``sigmoid``).

One name has two definitions across Keras versions:

- ``hard_sigmoid`` in Keras 2 (tf.keras up to TF 2.15, tf-keras):
  ``clip(0.2 * x + 0.5, 0, 1)``.
- ``hard_sigmoid`` in Keras 3: ``relu6(x + 3) / 6 = clip(x / 6 + 0.5, 0, 1)``.

The caller names the convention; which Keras uses which is data
(``spec/data/conventions.toml``), not code.
"""

import numpy as np


def tanh(x):
    return np.tanh(x)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def relu(x):
    return np.maximum(x, 0.0)


def linear(x):
    return x


def hard_sigmoid_keras2(x):
    return np.clip(0.2 * x + 0.5, 0.0, 1.0)


def hard_sigmoid_keras3(x):
    return np.clip(x / 6.0 + 0.5, 0.0, 1.0)


HARD_SIGMOID_CONVENTIONS = {"keras2": hard_sigmoid_keras2, "keras3": hard_sigmoid_keras3}

_PLAIN = {"tanh": tanh, "sigmoid": sigmoid, "relu": relu, "linear": linear}

ACTIVATION_NAMES = ("tanh", "sigmoid", "relu", "linear", "hard_sigmoid")


def activation(name, hard_sigmoid="keras3"):
    """Return the float64 function that Keras calls ``name``.

    ``hard_sigmoid`` picks the definition of ``"hard_sigmoid"``: ``"keras2"``
    or ``"keras3"``.
    """
    if name == "hard_sigmoid":
        try:
            return HARD_SIGMOID_CONVENTIONS[hard_sigmoid]
        except KeyError:
            raise ValueError(
                f"unknown hard_sigmoid convention {hard_sigmoid!r}; "
                f"expected one of {sorted(HARD_SIGMOID_CONVENTIONS)}") from None
    try:
        return _PLAIN[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; expected one of {ACTIVATION_NAMES}") from None


# --------------------------------------------------------------------------- derivatives
#
# d/dx of each activation, as a function of the activation's input x (the
# pre-activation), for backpropagation (reference/gradients.py). At a kink the
# derivative is the one-sided value TensorFlow, JAX and torch use: relu'(0) = 0
# (gradient only where x > 0), and hard_sigmoid's slope only strictly inside
# its linear region. Drawn float values never land on a kink (it has
# measure zero), so the choice does not affect any comparison.

def tanh_derivative(x):
    return 1.0 - np.tanh(x) ** 2


def sigmoid_derivative(x):
    s = sigmoid(x)
    return s * (1.0 - s)


def relu_derivative(x):
    return (np.asarray(x) > 0.0).astype(np.float64)


def linear_derivative(x):
    return np.ones_like(np.asarray(x, np.float64))


def hard_sigmoid_keras2_derivative(x):
    return np.where(np.abs(x) < 2.5, 0.2, 0.0)


def hard_sigmoid_keras3_derivative(x):
    return np.where(np.abs(x) < 3.0, 1.0 / 6.0, 0.0)


_DERIVATIVES = {"tanh": tanh_derivative, "sigmoid": sigmoid_derivative, "relu": relu_derivative,
                "linear": linear_derivative}
_HARD_SIGMOID_DERIVATIVES = {"keras2": hard_sigmoid_keras2_derivative, "keras3": hard_sigmoid_keras3_derivative}


def derivative(name, hard_sigmoid="keras3"):
    """Return d/dx of :func:`activation` ``(name, hard_sigmoid)``, as a function of x."""
    activation(name, hard_sigmoid)   # the same errors for an unknown name or convention
    if name == "hard_sigmoid":
        return _HARD_SIGMOID_DERIVATIVES[hard_sigmoid]
    return _DERIVATIVES[name]
