"""Dropout in training, as the Keras documentation defines it.

The documentation of SimpleRNN, LSTM and GRU:

    dropout: Fraction of the units to drop for the linear transformation of
        the inputs.
    recurrent_dropout: Fraction of the units to drop for the linear
        transformation of the recurrent state.

With a keep mask ``m`` (1 = kept, 0 = dropped; one row per batch entry) the
linear transformation of the inputs reads ``(x * m / (1 - dropout)).W``
instead of ``x.W`` (inverted dropout: kept units are scaled so that the
expectation is unchanged), and that of the state ``(h * m_h / (1 -
recurrent_dropout)).U`` instead of ``h.U``. The same masks apply at every
timestep of a call (one mask per sequence, as "the units" are units, not
unit-steps). Only the linear transformations see the dropped values: the
state that LSTM's ``f * c`` and GRU's ``z * h`` carry is the undropped one.

A cell whose kernel holds several gates (LSTM: i, f, c~, o; GRU: z, r, h)
may drop units independently per gate: each gate block ``W_g`` (and
``U_g``) then gets its own mask. ``input_keep`` / ``recurrent_keep`` are
therefore a list with one keep mask per gate (pass the same array n times
for one mask shared by all gates), or None for no dropout.

Which masks Keras draws, and whether they are per gate, is a version
convention (``spec/data/conventions.toml``), not part of these formulas.

Some switches serve divergence models (``spec/data/divergences.toml``), never
the formulas: ``gru_carries_dropped_state=True`` makes GRU's ``z * h`` carry
the dropped state of the update gate's block (``hs[0]``) instead of ``h``; an
input keep mask of shape ``(batch, timesteps, features)`` applies its slice
``[:, t]`` at input step ``t`` (a new mask at every step) instead of one mask
for the whole sequence; ``masks_in_place=True`` reproduces masks multiplied
into the tensors in place (``x *= mask``) by a loop that computes the first
step once more before it starts: the first processed input is dropped twice
(``twice_first``), and each returned output but the last is the tensor the
next step drops as its state.
"""

import numpy as np

from rnnspec.reference.cells import _check_bias, _split, initial_state as _zero_state
from rnnspec.reference.layer import LayerResult

GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}


def _scaled(v, keep, rate, n):
    if keep is None:
        return [v] * n
    if len(keep) != n:
        raise ValueError(f"{len(keep)} keep masks given, but the cell has {n} gate blocks")
    return [v * np.asarray(k, np.float64) / (1.0 - rate) for k in keep]


def dropout_step(spec, x, states, kernel, recurrent_kernel, bias, xs, hs, *, gru_carries_dropped_state=False):
    """One step, with ``xs[g]`` / ``hs[g]``: the (dropped) input and state gate block g's
    linear transformation reads. With ``xs = [x] * n`` and ``hs = [h] * n`` this is the step of
    ``rnnspec.reference.cells``. ``gru_carries_dropped_state``: the divergence model's switch
    (module docstring)."""
    _check_bias(spec, bias)
    n = GATES[spec.kind]
    W, U = _split(kernel, n), _split(recurrent_kernel, n)
    if spec.kind == "simple_rnn":
        pre = xs[0] @ W[0] + hs[0] @ U[0] + (bias if bias is not None else 0.0)
        h_new = spec.g(pre)
        return h_new, (h_new,)
    if spec.kind == "lstm":
        h, c = states
        b = _split(np.broadcast_to(bias if bias is not None else 0.0, (4 * spec.units,)), 4)
        i, f, c_tilde, o = (xs[g] @ W[g] + hs[g] @ U[g] + b[g] for g in range(4))
        c_new = spec.sigma(f) * c + spec.sigma(i) * spec.g(c_tilde)
        h_new = spec.sigma(o) * spec.g(c_new)
        return h_new, (h_new, c_new)
    (h,) = states
    if spec.reset_after:
        b_in, b_rec = (bias[0], bias[1]) if bias is not None else (0.0, 0.0)
        bi = _split(np.broadcast_to(b_in, (3 * spec.units,)), 3)
        br = _split(np.broadcast_to(b_rec, (3 * spec.units,)), 3)
        z = spec.sigma(xs[0] @ W[0] + bi[0] + hs[0] @ U[0] + br[0])
        r = spec.sigma(xs[1] @ W[1] + bi[1] + hs[1] @ U[1] + br[1])
        h_tilde = spec.g(xs[2] @ W[2] + bi[2] + r * (hs[2] @ U[2] + br[2]))
    else:
        b = _split(np.broadcast_to(bias if bias is not None else 0.0, (3 * spec.units,)), 3)
        z = spec.sigma(xs[0] @ W[0] + hs[0] @ U[0] + b[0])
        r = spec.sigma(xs[1] @ W[1] + hs[1] @ U[1] + b[1])
        h_tilde = spec.g(xs[2] @ W[2] + (r * hs[2]) @ U[2] + b[2])
    carried = hs[0] if gru_carries_dropped_state else h
    h_new = z * carried + (1.0 - z) * h_tilde
    return h_new, (h_new,)


def run_layer_with_dropout(spec, x, kernel, recurrent_kernel, bias=None, *, input_keep=None, dropout=0.0,
                           recurrent_keep=None, recurrent_dropout=0.0, initial_state=None,
                           go_backwards=False, gru_carries_dropped_state=False, masks_in_place=False,
                           twice_first=True):
    """:func:`rnnspec.reference.layer.run_layer` in training with the given keep masks (no Keras mask):
    the same masks at every step, kept units scaled by 1/(1 - rate)."""
    x = np.asarray(x, np.float64)
    batch, timesteps, _ = x.shape
    n = GATES[spec.kind]
    states = tuple(np.asarray(s, np.float64) for s in initial_state) if initial_state is not None \
        else _zero_state(spec, batch)
    order = range(timesteps - 1, -1, -1) if go_backwards else range(timesteps)
    outputs = []
    for i, t in enumerate(order):
        keep_t = None if input_keep is None else [np.asarray(k)[:, t] if np.ndim(k) == 3 else k for k in input_keep]
        xs = _scaled(x[:, t], keep_t, dropout, n)
        if masks_in_place and twice_first and i == 0:
            xs = _scaled(xs[0], keep_t, dropout, n)
        hs = _scaled(states[0], recurrent_keep, recurrent_dropout, n)
        if masks_in_place and recurrent_keep is not None and outputs:
            outputs[-1] = hs[0]
        y, states = dropout_step(spec, x[:, t], states, kernel, recurrent_kernel, bias, xs, hs,
                                 gru_carries_dropped_state=gru_carries_dropped_state)
        outputs.append(y)
    sequence = np.stack(outputs, axis=1) if outputs else np.zeros((batch, 0, spec.units))
    last = outputs[-1] if outputs else np.zeros((batch, spec.units))
    return LayerResult(sequence, last, states)
