"""The loop over time, and how layers compose.

``run_layer`` applies a cell to every step of ``x`` (batch, timesteps,
features), with the semantics of the Keras ``RNN`` layer:

go_backwards
    The steps are processed from the last to the first, and the returned
    sequence is in *processing* order: ``sequence[:, 0]`` is the output for
    input step ``T - 1``. The sequence is not reversed back (Bidirectional
    does that for its backward half; see ``run_bidirectional``).

mask (batch, timesteps), True = keep
    At a masked step the cell is not applied to that row: every state keeps
    its value from the previous step, and the emitted output is

    - with ``zero_output_for_mask=False`` (the RNN default): the output of the
      most recent unmasked step, and zeros before the first unmasked step;
    - with ``zero_output_for_mask=True``: zeros.

    The "last output" (what ``return_sequences=False`` returns) is the
    output of the row's last unmasked step, zeros for a fully masked row,
    whatever ``zero_output_for_mask`` says: the RNN docstring (Keras 2 and 3)
    says of it "Note that this field is only used when `return_sequences` is
    `True` and `mask` is provided." (Keras zeroes the last output anyway:
    a known divergence, ``zero-output-for-mask-zeroes-last-output``.)
    A fully masked row keeps its initial state.

initial_state
    One array per state (LSTM: ``[h, c]``), zeros when not given.

return_state
    The final states, after the final processed step; for SimpleRNN and GRU
    ``h``, for LSTM ``h`` and ``c``. With no mask, ``h`` equals the last
    output.
"""

from dataclasses import dataclass

import numpy as np

from rnnspec.reference.cells import initial_state as _zero_state, step_function


@dataclass
class LayerResult:
    sequence: np.ndarray       # (batch, timesteps, units), in processing order
    last_output: np.ndarray    # (batch, units)
    states: tuple              # final states, each (batch, units)

    def output(self, return_sequences):
        return self.sequence if return_sequences else self.last_output


def run_layer(spec, x, kernel, recurrent_kernel, bias=None, *, initial_state=None,
              mask=None, go_backwards=False, zero_output_for_mask=False):
    """Run one recurrent layer over ``x`` and return a :class:`LayerResult`."""
    x = np.asarray(x, dtype=np.float64)
    batch, timesteps, _ = x.shape
    step = step_function(spec.kind)
    states = tuple(np.asarray(s, np.float64) for s in initial_state) if initial_state is not None \
        else _zero_state(spec, batch)
    mask = np.ones((batch, timesteps), bool) if mask is None else np.asarray(mask, bool)
    order = range(timesteps - 1, -1, -1) if go_backwards else range(timesteps)
    prev_output = np.zeros((batch, spec.units))
    last = np.zeros((batch, spec.units))     # the output of each row's last unmasked step
    outputs = []
    for t in order:
        y, new_states = step(spec, x[:, t], states, kernel, recurrent_kernel, bias)
        keep = mask[:, t][:, None]
        states = tuple(np.where(keep, n, s) for n, s in zip(new_states, states))
        last = np.where(keep, y, last)
        held = np.zeros_like(y) if zero_output_for_mask else prev_output
        y = np.where(keep, y, held)
        outputs.append(y)
        prev_output = y
    sequence = np.stack(outputs, axis=1) if outputs else np.zeros((batch, 0, spec.units))
    return LayerResult(sequence, last, states)


def run_stack(layers, x, *, mask=None):
    """Stacked layers: each ``(spec, weights, options)`` feeds its sequence to the next.

    Every layer below the top must return sequences (the article's rule);
    this function always passes the full sequence up and returns the top
    layer's :class:`LayerResult`.
    """
    result = None
    for spec, weights, options in layers:
        result = run_layer(spec, x, *weights, mask=mask, **options)
        x = result.sequence  # in the order the layer returned it (see go_backwards)
    return result


MERGE_MODES = ("concat", "sum", "mul", "ave", None)


def merge(forward, backward, mode):
    if mode == "concat":
        return np.concatenate([forward, backward], axis=-1)
    if mode == "sum":
        return forward + backward
    if mode == "mul":
        return forward * backward
    if mode == "ave":
        return (forward + backward) / 2.0
    if mode is None:
        return [forward, backward]
    raise ValueError(f"unknown merge_mode {mode!r}; expected one of {MERGE_MODES}")


def run_bidirectional(spec, x, forward_weights, backward_weights, *, merge_mode="concat",
                      return_sequences=False, mask=None, initial_state=None,
                      zero_output_for_mask=None):
    """Bidirectional: a forward layer and a ``go_backwards`` layer, merged.

    The backward layer's sequence is reversed back in time before merging, so
    that position t of the merged sequence refers to input step t in both
    halves. Returns ``(merged_output, forward_states, backward_states)``.
    ``initial_state`` is ``(forward_states, backward_states)`` or None.
    ``zero_output_for_mask`` defaults to ``return_sequences``, as Keras's
    Bidirectional sets it on both halves.
    """
    if zero_output_for_mask is None:
        zero_output_for_mask = return_sequences
    fw_init, bw_init = initial_state if initial_state is not None else (None, None)
    fw = run_layer(spec, x, *forward_weights, mask=mask, initial_state=fw_init,
                   zero_output_for_mask=zero_output_for_mask)
    bw = run_layer(spec, x, *backward_weights, mask=mask, initial_state=bw_init,
                   go_backwards=True, zero_output_for_mask=zero_output_for_mask)
    if return_sequences:
        out = merge(fw.sequence, bw.sequence[:, ::-1], merge_mode)
    else:
        out = merge(fw.last_output, bw.last_output, merge_mode)
    return out, fw.states, bw.states


def dense(y, kernel, bias):
    """A Dense layer on the last axis: ``y.W + b`` (TimeDistributed applies it per step)."""
    return y @ kernel + bias
