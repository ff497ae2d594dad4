"""Backpropagation through time: the forward formulas of ``reference/`` run backwards.

The quantity differentiated is a scalar loss that weights every value a
layer returns by a coefficient the caller chooses::

    L = sum(d_sequence * sequence) + sum(d_last * last_output) + sum_i sum(d_states[i] * states[i])

so the coefficients are exactly dL/d(each returned value), and a test draws
them at random to probe every output at once. Gradients are returned by name,
so that a mismatch can say which one differs and where::

    {"kernel": dL/dW, "recurrent_kernel": dL/dU, "bias": dL/db (None without bias),
     "x": dL/dx (batch, timesteps, features, in input order),
     "initial_state": [dL/dh0] (LSTM: [dL/dh0, dL/dc0])}

The structure mirrors the forward code:

- ``simple_rnn_backward``, ``lstm_backward``, ``gru_backward`` are one step of
  ``rnnspec.reference.cells`` backwards: given the step's inputs and dL/d(new states),
  they recompute the step's intermediate values and return dL/dx_t,
  dL/d(previous states) and the step's contribution to dL/dW, dL/dU, dL/db.
- ``layer_gradients`` is ``rnnspec.reference.layer.run_layer`` backwards: the forward
  loop records the states before every step, then the backward loop visits
  the steps in the reverse of processing order. At a masked step the
  forward pass carried the states (so their gradient passes through
  unchanged) and emitted a held output (the previous output: its gradient
  flows to the previous step's output; or zeros: it flows nowhere).
- ``stack_gradients`` (``run_stack``) sends each layer's dL/dx down as the
  layer below's dL/d(sequence).
- ``bidirectional_gradients`` (``run_bidirectional``) differentiates the merge,
  reverses the backward half's sequence gradient back into its processing
  order, and adds both halves' dL/dx.

Everything is float64 NumPy; nothing here imports Keras.
``tests/test_reference_gradients.py`` checks every gradient against central
finite differences of the forward pass.
"""

import numpy as np

from rnnspec.reference.cells import _check_bias, _split, initial_state as _zero_state, step_function
from rnnspec.reference.layer import run_layer


# --------------------------------------------------------------------------- one step backwards
#
# Each step function below returns ``(d_x, d_states, d_kernel, d_recurrent_kernel, d_bias)``:
# d_x (batch, features), d_states a tuple like ``states``, and the weight gradients summed
# over the batch (d_bias None without bias).

def _linear_backward(x, h, kernel, recurrent_kernel, d_pre):
    """Backwards through ``pre = x.W + h.U (+ b)``, for the gradient ``d_pre`` of ``pre``."""
    return (d_pre @ kernel.T, d_pre @ recurrent_kernel.T,
            x.T @ d_pre, h.T @ d_pre, d_pre.sum(axis=0))


def simple_rnn_backward(spec, x, states, kernel, recurrent_kernel, bias, d_new_states):
    """``h' = g(x.W + h.U + b)`` backwards."""
    _check_bias(spec, bias)
    (h,) = states
    (d_h_new,) = d_new_states
    pre = x @ kernel + h @ recurrent_kernel
    if bias is not None:
        pre = pre + bias
    d_pre = d_h_new * spec.g_prime(pre)
    d_x, d_h, d_kernel, d_recurrent, d_bias = _linear_backward(x, h, kernel, recurrent_kernel, d_pre)
    return d_x, (d_h,), d_kernel, d_recurrent, d_bias if bias is not None else None


def lstm_backward(spec, x, states, kernel, recurrent_kernel, bias, d_new_states):
    """``c' = sigma(f) * c + sigma(i) * g(c~)``, ``h' = sigma(o) * g(c')`` backwards."""
    _check_bias(spec, bias)
    h, c = states
    d_h_new, d_c_new = d_new_states
    z = x @ kernel + h @ recurrent_kernel
    if bias is not None:
        z = z + bias
    i, f, c_tilde, o = _split(z, 4)
    c_new = spec.sigma(f) * c + spec.sigma(i) * spec.g(c_tilde)
    # h' = sigma(o) * g(c'): c' reaches the loss directly and through h'
    d_c_new = d_c_new + d_h_new * spec.sigma(o) * spec.g_prime(c_new)
    d_o = d_h_new * spec.g(c_new) * spec.sigma_prime(o)
    # c' = sigma(f) * c + sigma(i) * g(c~)
    d_f = d_c_new * c * spec.sigma_prime(f)
    d_c = d_c_new * spec.sigma(f)
    d_i = d_c_new * spec.g(c_tilde) * spec.sigma_prime(i)
    d_c_tilde = d_c_new * spec.sigma(i) * spec.g_prime(c_tilde)
    d_z = np.concatenate([d_i, d_f, d_c_tilde, d_o], axis=-1)
    d_x, d_h, d_kernel, d_recurrent, d_bias = _linear_backward(x, h, kernel, recurrent_kernel, d_z)
    return d_x, (d_h, d_c), d_kernel, d_recurrent, d_bias if bias is not None else None


def gru_backward(spec, x, states, kernel, recurrent_kernel, bias, d_new_states):
    """``h' = z * h + (1 - z) * h~`` backwards, for either ``reset_after``."""
    _check_bias(spec, bias)
    (h,) = states
    (d_h_new,) = d_new_states
    u = spec.units
    W_z, W_r, W_h = _split(kernel, 3)
    U_z, U_r, U_h = _split(recurrent_kernel, 3)
    if spec.reset_after:
        b_in, b_rec = (bias[0], bias[1]) if bias is not None else (0.0, 0.0)
        b_in_z, b_in_r, b_in_h = _split(np.broadcast_to(b_in, (3 * u,)), 3)
        b_rec_z, b_rec_r, b_rec_h = _split(np.broadcast_to(b_rec, (3 * u,)), 3)
        a_z = x @ W_z + b_in_z + h @ U_z + b_rec_z
        a_r = x @ W_r + b_in_r + h @ U_r + b_rec_r
        r = spec.sigma(a_r)
        recurrent_h = h @ U_h + b_rec_h
        a_h = x @ W_h + b_in_h + r * recurrent_h
    else:
        b_z, b_r, b_h = _split(np.broadcast_to(bias if bias is not None else 0.0, (3 * u,)), 3)
        a_z = x @ W_z + h @ U_z + b_z
        a_r = x @ W_r + h @ U_r + b_r
        r = spec.sigma(a_r)
        a_h = x @ W_h + (r * h) @ U_h + b_h
    z, h_tilde = spec.sigma(a_z), spec.g(a_h)

    # h' = z * h + (1 - z) * h~
    d_h = d_h_new * z
    d_z = d_h_new * (h - h_tilde)
    d_a_h = d_h_new * (1.0 - z) * spec.g_prime(a_h)
    d_a_z = d_z * spec.sigma_prime(a_z)
    if spec.reset_after:
        # a_h = x.W_h + b_in_h + r * (h.U_h + b_rec_h)
        d_recurrent_h = d_a_h * r
        d_a_r = d_a_h * recurrent_h * spec.sigma_prime(a_r)
        d_input_pre = np.concatenate([d_a_z, d_a_r, d_a_h], axis=-1)          # of x.W + b_in
        d_recurrent_pre = np.concatenate([d_a_z, d_a_r, d_recurrent_h], axis=-1)  # of h.U + b_rec
        d_h = d_h + d_recurrent_pre @ recurrent_kernel.T
        d_recurrent = h.T @ d_recurrent_pre
        d_bias = np.stack([d_input_pre.sum(axis=0), d_recurrent_pre.sum(axis=0)]) if bias is not None else None
    else:
        # a_h = x.W_h + (r * h).U_h + b_h
        d_rh = d_a_h @ U_h.T
        d_a_r = d_rh * h * spec.sigma_prime(a_r)
        d_h = d_h + d_rh * r + d_a_z @ U_z.T + d_a_r @ U_r.T
        d_input_pre = np.concatenate([d_a_z, d_a_r, d_a_h], axis=-1)
        d_recurrent = np.concatenate([h.T @ d_a_z, h.T @ d_a_r, (r * h).T @ d_a_h], axis=-1)
        d_bias = d_input_pre.sum(axis=0) if bias is not None else None
    d_x = d_input_pre @ kernel.T
    d_kernel = x.T @ d_input_pre
    return d_x, (d_h,), d_kernel, d_recurrent, d_bias


_BACKWARD_STEPS = {"simple_rnn": simple_rnn_backward, "lstm": lstm_backward, "gru": gru_backward}


def backward_step_function(kind):
    """The backward step of a cell kind: ``(spec, x, states, W, U, b, d_new_states) -> (d_x, d_states, dW, dU, db)``."""
    return _BACKWARD_STEPS[kind]


# --------------------------------------------------------------------------- the loop over time backwards

def _zeros_or(value, shape):
    return np.zeros(shape) if value is None else np.asarray(value, np.float64)


def layer_gradients(spec, x, kernel, recurrent_kernel, bias=None, *, initial_state=None,
                    mask=None, go_backwards=False, zero_output_for_mask=False,
                    d_sequence=None, d_last=None, d_states=None):
    """Gradients of ``L`` (module docstring) for one ``run_layer`` call with the same arguments.

    ``d_sequence`` (batch, timesteps, units) is in processing order, as
    ``LayerResult.sequence`` is; ``d_last`` (batch, units); ``d_states`` one
    array per state. A coefficient left as None is zero.
    """
    x = np.asarray(x, dtype=np.float64)
    batch, timesteps, _ = x.shape
    units = spec.units
    step = step_function(spec.kind)
    step_backward = backward_step_function(spec.kind)
    states = tuple(np.asarray(s, np.float64) for s in initial_state) if initial_state is not None \
        else _zero_state(spec, batch)
    mask = np.ones((batch, timesteps), bool) if mask is None else np.asarray(mask, bool)
    order = list(range(timesteps - 1, -1, -1)) if go_backwards else list(range(timesteps))

    # Forward, as run_layer, keeping the states each step started from.
    states_before = []
    for t in order:
        states_before.append(states)
        _, new_states = step(spec, x[:, t], states, kernel, recurrent_kernel, bias)
        keep = mask[:, t][:, None]
        states = tuple(np.where(keep, n, s) for n, s in zip(new_states, states))

    # Backward, from the last processed step to the first.
    d_sequence = _zeros_or(d_sequence, (batch, timesteps, units))
    d_states = tuple(_zeros_or(d, (batch, units)) for d in (d_states or (None,) * spec.n_states))
    d_x = np.zeros_like(x)
    d_kernel = np.zeros_like(np.asarray(kernel, np.float64))
    d_recurrent = np.zeros_like(np.asarray(recurrent_kernel, np.float64))
    d_bias = None if bias is None else np.zeros_like(np.asarray(bias, np.float64))
    d_held_from_later = np.zeros((batch, units))   # dL/d(this step's output), via later held outputs
    # dL/d(last output), waiting (per row) for the row's last unmasked step, whose h' it is
    d_last_pending = _zeros_or(d_last, (batch, units))
    for k in reversed(range(len(order))):
        t = order[k]
        keep = mask[:, t][:, None]
        d_y = d_sequence[:, k] + d_held_from_later
        # y = where(keep, h', held): a kept row's output is the new h; a masked row's
        # is the held output -- the previous step's output, or zeros (a constant).
        d_held_from_later = np.zeros_like(d_y) if zero_output_for_mask else np.where(keep, 0.0, d_y)
        d_y = d_y + np.where(keep, d_last_pending, 0.0)
        d_last_pending = np.where(keep, 0.0, d_last_pending)
        # states = where(keep, new_states, states): a masked row carries its states.
        d_new = tuple(np.where(keep, d, 0.0) for d in d_states)
        d_carried = tuple(np.where(keep, 0.0, d) for d in d_states)
        d_new = (d_new[0] + np.where(keep, d_y, 0.0),) + d_new[1:]   # the output is h'
        dx_t, d_prev, dW, dU, db = step_backward(spec, x[:, t], states_before[k], kernel,
                                                 recurrent_kernel, bias, d_new)
        d_x[:, t] += dx_t
        d_kernel += dW
        d_recurrent += dU
        if d_bias is not None:
            d_bias += db
        d_states = tuple(c + p for c, p in zip(d_carried, d_prev))
    # what remains in d_held_from_later reached the zeros before the first step: a constant
    return {"kernel": d_kernel, "recurrent_kernel": d_recurrent, "bias": d_bias, "x": d_x,
            "initial_state": list(d_states)}


def stack_gradients(layers, x, *, mask=None, d_sequence=None, d_last=None, d_states=None):
    """Gradients for ``run_stack(layers, x, mask=mask)``; the coefficients weight the top layer's result.

    Returns one dict per layer (bottom first, as ``layer_gradients`` returns
    them); the bottom layer's ``"x"`` is dL/d(input of the stack).
    """
    inputs = []
    for spec, weights, options in layers:
        inputs.append(x)
        x = run_layer(spec, x, *weights, mask=mask, **options).sequence
    grads = [None] * len(layers)
    for n in reversed(range(len(layers))):
        spec, weights, options = layers[n]
        top = n == len(layers) - 1
        grads[n] = layer_gradients(spec, inputs[n], *weights, mask=mask, **options,
                                   d_sequence=d_sequence if top else d_below,
                                   d_last=d_last if top else None, d_states=d_states if top else None)
        d_below = grads[n]["x"]   # the layer below returned this layer's input, in its order
    return grads


def merge_backward(forward, backward, mode, d_merged):
    """dL/d(forward), dL/d(backward) for ``rnnspec.reference.layer.merge(forward, backward, mode)``."""
    if mode == "concat":
        units = np.shape(forward)[-1]
        return d_merged[..., :units], d_merged[..., units:]
    if mode == "sum":
        return d_merged, d_merged
    if mode == "mul":
        return d_merged * backward, d_merged * forward
    if mode == "ave":
        return d_merged / 2.0, d_merged / 2.0
    if mode is None:
        return d_merged[0], d_merged[1]
    raise ValueError(f"unknown merge_mode {mode!r}")


def bidirectional_gradients(spec, x, forward_weights, backward_weights, *, merge_mode="concat",
                            return_sequences=False, mask=None, initial_state=None,
                            zero_output_for_mask=None, d_output=None, d_forward_states=None,
                            d_backward_states=None):
    """Gradients for ``run_bidirectional`` with the same arguments.

    ``d_output`` weights the merged output (with ``merge_mode=None`` a pair
    ``[d_forward_output, d_backward_output]``); ``d_forward_states`` and
    ``d_backward_states`` the returned states. Returns ``{"forward": ...,
    "backward": ..., "x": ...}``, each half as ``layer_gradients`` returns it.
    """
    if zero_output_for_mask is None:
        zero_output_for_mask = return_sequences
    fw_init, bw_init = initial_state if initial_state is not None else (None, None)
    common = dict(mask=mask, zero_output_for_mask=zero_output_for_mask)
    fw = run_layer(spec, x, *forward_weights, initial_state=fw_init, **common)
    bw = run_layer(spec, x, *backward_weights, initial_state=bw_init, go_backwards=True, **common)
    if d_output is None:
        d_fw = d_bw = None
    elif return_sequences:
        d_fw, d_bw_input_order = merge_backward(fw.sequence, bw.sequence[:, ::-1], merge_mode, d_output)
        d_bw = np.asarray(d_bw_input_order)[:, ::-1]   # back into the backward half's processing order
    else:
        d_fw, d_bw = merge_backward(fw.last_output, bw.last_output, merge_mode, d_output)
    seq_or_last = (lambda d: dict(d_sequence=d)) if return_sequences else (lambda d: dict(d_last=d))
    forward = layer_gradients(spec, x, *forward_weights, initial_state=fw_init, **common,
                              d_states=d_forward_states, **seq_or_last(d_fw))
    backward = layer_gradients(spec, x, *backward_weights, initial_state=bw_init, go_backwards=True,
                               **common, d_states=d_backward_states, **seq_or_last(d_bw))
    return {"forward": forward, "backward": backward, "x": forward["x"] + backward["x"]}


def weighted_sum(values, coefficients):
    """``L = sum_i sum(coefficients[i] * values[i])``: the loss these gradients differentiate."""
    return float(sum(np.sum(np.asarray(c, np.float64) * np.asarray(v, np.float64))
                     for v, c in zip(values, coefficients)))
