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
