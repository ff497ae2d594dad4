"""One time step of each recurrent cell, as the article writes it.

Notation: ``x`` is the input at step t, shape (batch, features); ``h`` the
hidden state from step t-1, shape (batch, units); ``W`` the ``kernel``,
``U`` the ``recurrent_kernel``, ``b`` the ``bias``; ``g`` the
``activation`` and ``sigma`` the ``recurrent_activation``.

SimpleRNN::

    h' = g(x.W + h.U + b)                       output y = h'

LSTM (kernel (features, 4u), recurrent_kernel (u, 4u), bias (4u,); the gate
columns are concatenated in the order i, f, c, o)::

    [i, f, c~, o] = x.W + h.U + b
    c' = sigma(f) * c + sigma(i) * g(c~)
    h' = sigma(o) * g(c')                       output y = h'

GRU (gate columns in the order z, r, h)::

    z = sigma(x.W_z + h.U_z + b_z)
    r = sigma(x.W_r + h.U_r + b_r)
    reset_after=True  (bias (2, 3u): row 0 input bias, row 1 recurrent bias)
        h~ = g(x.W_h + b_in_h + r * (h.U_h + b_rec_h))
    reset_after=False (bias (3u,))
        h~ = g(x.W_h + (r * h).U_h + b_h)
    h' = z * h + (1 - z) * h~                   output y = h'
"""

from dataclasses import dataclass

import numpy as np

from rnnspec.reference.activations import activation as _activation, derivative as _derivative

KINDS = ("simple_rnn", "lstm", "gru")


@dataclass(frozen=True)
class CellSpec:
    """What a cell computes: its kind, size, activations and bias layout."""

    kind: str
    units: int
    activation: str = "tanh"
    recurrent_activation: str = "sigmoid"
    use_bias: bool = True
    reset_after: bool = True
    hard_sigmoid: str = "keras3"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown cell kind {self.kind!r}; expected one of {KINDS}")
        if self.units < 1:
            raise ValueError(f"units must be a positive integer, got {self.units}")

    @property
    def g(self):
        return _activation(self.activation, self.hard_sigmoid)

    @property
    def sigma(self):
        return _activation(self.recurrent_activation, self.hard_sigmoid)

    @property
    def g_prime(self):
        """d g / dx, for backpropagation (``rnnspec.reference.gradients``)."""
        return _derivative(self.activation, self.hard_sigmoid)

    @property
    def sigma_prime(self):
        """d sigma / dx."""
        return _derivative(self.recurrent_activation, self.hard_sigmoid)

    @property
    def n_states(self):
        return 2 if self.kind == "lstm" else 1


def _split(m, n):
    """Split the last axis into ``n`` equal gate blocks."""
    return np.split(m, n, axis=-1)


def _check_bias(spec, bias):
    """``bias`` must be None exactly when ``use_bias=False``, and have the documented shape."""
    if not spec.use_bias:
        if bias is not None:
            raise ValueError("use_bias=False, but a bias was given")
        return
    width = {"simple_rnn": 1, "lstm": 4, "gru": 3}[spec.kind] * spec.units
    expected = (2, width) if spec.kind == "gru" and spec.reset_after else (width,)
    if bias is None or np.shape(bias) != expected:
        raise ValueError(f"bias.shape={None if bias is None else np.shape(bias)}, but should be {expected}")


def simple_rnn_step(spec, x, states, kernel, recurrent_kernel, bias):
    _check_bias(spec, bias)
    (h,) = states
    pre = x @ kernel + h @ recurrent_kernel
    if bias is not None:
        pre = pre + bias
    h_new = spec.g(pre)
    return h_new, (h_new,)


def lstm_step(spec, x, states, kernel, recurrent_kernel, bias):
    _check_bias(spec, bias)
    h, c = states
    z = x @ kernel + h @ recurrent_kernel
    if bias is not None:
        z = z + bias
    i, f, c_tilde, o = _split(z, 4)
    c_new = spec.sigma(f) * c + spec.sigma(i) * spec.g(c_tilde)
    h_new = spec.sigma(o) * spec.g(c_new)
    return h_new, (h_new, c_new)


def gru_step(spec, x, states, kernel, recurrent_kernel, bias):
    _check_bias(spec, bias)
    (h,) = states
    W_z, W_r, W_h = _split(kernel, 3)
    U_z, U_r, U_h = _split(recurrent_kernel, 3)
    if spec.reset_after:
        b_in, b_rec = (bias[0], bias[1]) if bias is not None else (0.0, 0.0)
        b_in_z, b_in_r, b_in_h = _split(np.broadcast_to(b_in, (3 * spec.units,)), 3)
        b_rec_z, b_rec_r, b_rec_h = _split(np.broadcast_to(b_rec, (3 * spec.units,)), 3)
        z = spec.sigma(x @ W_z + b_in_z + h @ U_z + b_rec_z)
        r = spec.sigma(x @ W_r + b_in_r + h @ U_r + b_rec_r)
        h_tilde = spec.g(x @ W_h + b_in_h + r * (h @ U_h + b_rec_h))
    else:
        b_z, b_r, b_h = _split(np.broadcast_to(bias if bias is not None else 0.0, (3 * spec.units,)), 3)
        z = spec.sigma(x @ W_z + h @ U_z + b_z)
        r = spec.sigma(x @ W_r + h @ U_r + b_r)
        h_tilde = spec.g(x @ W_h + (r * h) @ U_h + b_h)
    h_new = z * h + (1.0 - z) * h_tilde
    return h_new, (h_new,)


_STEPS = {"simple_rnn": simple_rnn_step, "lstm": lstm_step, "gru": gru_step}


def step_function(kind):
    """The step function of a cell kind: ``(spec, x, states, W, U, b) -> (y, states)``."""
    return _STEPS[kind]


def initial_state(spec, batch):
    """Zeros, one array per state (LSTM: h and c), shape (batch, units)."""
    return tuple(np.zeros((batch, spec.units)) for _ in range(spec.n_states))


#: The cell of the Keras guide "Working with RNNs" (``MinimalRNNCell``, the user-defined cell
#: the RNN docstring shows): ``h' = x.W + h.U``, no activation, no bias, output y = h'. That is
#: SimpleRNN's step with g the identity ("linear") and ``use_bias=False``; these are the
#: CellSpec arguments that say so (``CellSpec(units=u, **MINIMAL_RNN)``).
MINIMAL_RNN = dict(kind="simple_rnn", activation="linear", use_bias=False)
