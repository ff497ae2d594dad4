"""Executable models of the known divergences: what the affected Keras returns.

Each value-changing entry of ``spec/data/divergences.toml`` names a function
here (``model = "<name>"``). The function takes the same arguments as
:func:`rnnspec.spec.cases.reference_outputs` and returns the same list, in the same
layout and shapes, but with that entry's one bug reproduced: everywhere else
it computes exactly what the formulas compute. So where the entry applies,
the spec can still assert the installed Keras -- against the model of its
bug -- instead of skipping the example.

The models are built from the reference's own pieces (``rnnspec.reference.cells``
step functions, ``rnnspec.reference.layer.merge``); the one loop over time here is a
copy of ``rnnspec.reference.layer.run_layer`` with a switch for each way a Keras
backend deviates from it. Nothing here imports Keras: the models are
specifications too, checked against real Keras by
``tools/check_divergence_models.py`` and against the formulas by
``tests/test_divergence_models.py``.
"""

from dataclasses import replace

import numpy as np

from rnnspec.reference.cells import initial_state as zero_state, step_function
from rnnspec.reference.layer import LayerResult, merge
from rnnspec.spec.cases import reference_outputs

# How a masked step's output is chosen (zero_output_for_mask=False).
HELD_LAST_OUTPUT = "last output"     # the formulas: the most recent unmasked output, zeros before it
HELD_FIRST_STATE = "first state"     # JAX lax.scan: the state h before the step, so h0 before the first unmasked step
# Which mask zeroes the outputs (zero_output_for_mask=True).
ZERO_IN_LOOP = "processing order"    # the formulas: the step's own mask, as it is processed
ZERO_AFTER_LOOP_INPUT_ORDER = "input order"   # TF unroll: after the loop, the sequence by the unreversed mask
# What return_sequences=False returns.
LAST_UNMASKED = "last unmasked"      # the formulas: the output of each row's last unmasked step
LAST_EMITTED = "last emitted"        # Keras: the last element of the emitted sequence (zeroed or held)


def run_layer(spec, x, kernel, recurrent_kernel, bias=None, *, initial_state=None, mask=None,
              go_backwards=False, zero_output_for_mask=False,
              held=HELD_LAST_OUTPUT, zeroed=ZERO_IN_LOOP, last_output=LAST_UNMASKED):
    """``rnnspec.reference.layer.run_layer`` with the three switches a buggy backend flips.

    With the defaults this computes exactly what the reference does.
    """
    x = np.asarray(x, dtype=np.float64)
    batch, timesteps, _ = x.shape
    step = step_function(spec.kind)
    states = tuple(np.asarray(s, np.float64) for s in initial_state) if initial_state is not None \
        else zero_state(spec, batch)
    mask = np.ones((batch, timesteps), bool) if mask is None else np.asarray(mask, bool)
    order = list(range(timesteps - 1, -1, -1)) if go_backwards else list(range(timesteps))
    zero_in_loop = zero_output_for_mask and zeroed == ZERO_IN_LOOP
    prev_output = np.zeros((batch, spec.units))
    last_unmasked = np.zeros((batch, spec.units))
    outputs = []
    for t in order:
        y, new_states = step(spec, x[:, t], states, kernel, recurrent_kernel, bias)
        keep = mask[:, t][:, None]
        last_unmasked = np.where(keep, y, last_unmasked)
        if zero_in_loop:
            fill = np.zeros_like(y)
        elif held == HELD_FIRST_STATE:
            fill = states[0]                      # h before this step (LSTM: h, not c)
        else:
            fill = prev_output
        states = tuple(np.where(keep, n, s) for n, s in zip(new_states, states))
        y = np.where(keep, y, fill)
        outputs.append(y)
        prev_output = y
    sequence = np.stack(outputs, axis=1) if outputs else np.zeros((batch, 0, spec.units))
    last = outputs[-1] if (outputs and last_output == LAST_EMITTED) else last_unmasked
    if zero_output_for_mask and zeroed == ZERO_AFTER_LOOP_INPUT_ORDER and outputs:
        # keras/src/backend/tensorflow/rnn.py, unroll branch: the loop held the
        # previous output; afterwards the sequence -- in processing order -- is
        # zeroed by the mask in input order (wrong under go_backwards). States are untouched.
        sequence = np.where(mask[:, :, None], sequence, 0.0)
    return LayerResult(sequence, last, states)


def _outputs(case, hard_sigmoid, run_half):
    """``reference_outputs``'s assembly, with each layer (or half) run by ``run_half``.

    ``run_half(spec, weights, initial_state, go_backwards, zero_output_for_mask)``
    returns a :class:`LayerResult`.
    """
    c = case.config
    spec = c.cell_spec(hard_sigmoid)
    per = 3 if c.use_bias else 2
    ws = case.weights

    def unpack(w):
        return (w[0], w[1], w[2] if c.use_bias else None)

    if not c.bidirectional:
        res = run_half(spec, unpack(ws), case.initial_state, c.go_backwards, bool(c.zero_output_for_mask))
        outs = [res.output(c.return_sequences)]
        states = list(res.states)
    else:
        n = spec.n_states
        zofm = c.return_sequences if c.zero_output_for_mask is None else c.zero_output_for_mask
        init = case.initial_state
        fw_init, bw_init = (None, None) if init is None else (list(init[:n]), list(init[n:]))
        fw = run_half(spec, unpack(ws[:per]), fw_init, False, zofm)
        bw = run_half(spec, unpack(ws[per:]), bw_init, True, zofm)
        mode = None if c.bidirectional == "none" else c.bidirectional
        if c.return_sequences:
            merged = merge(fw.sequence, bw.sequence[:, ::-1], mode)
        else:
            merged = merge(fw.last_output, bw.last_output, mode)
        outs = merged if isinstance(merged, list) else [merged]
        states = list(fw.states) + list(bw.states)
    return outs + states if c.return_state else outs


# --------------------------------------------------------------------------- the models

def tf_unroll_zeroes_by_input_order(case, hard_sigmoid):
    """unroll-backwards-zero-output-mask (TF backend, Keras 2.15 and 3).

    An unrolled layer called with a mask runs the TF unroll loop: masked steps
    hold the previous output, then with zero_output_for_mask the returned
    sequence (in processing order) is zeroed where the mask *in input order*
    is False, so under go_backwards step i of the reversed sequence is zeroed
    by mask[:, i] instead of mask[:, T-1-i], and keeps the held output where
    mask[:, T-1-i] is False but mask[:, i] is True. The last output and the
    states are right.
    """
    unrolled = case.config.unroll and case.mask is not None

    def run_half(spec, weights, init, go_backwards, zofm):
        return run_layer(spec, case.x, *weights, initial_state=init, mask=case.mask,
                         go_backwards=go_backwards, zero_output_for_mask=zofm,
                         zeroed=ZERO_AFTER_LOOP_INPUT_ORDER if unrolled else ZERO_IN_LOOP)
    return _outputs(case, hard_sigmoid, run_half)


def jax_unroll_ignores_zero_output_for_mask(case, hard_sigmoid):
    """jax-unroll-ignores-zero-output-for-mask (JAX backend).

    The JAX unroll loop never reads zero_output_for_mask: masked steps hold
    the previous output (zeros before a row's first unmasked step), in the
    sequence and in the last output, as with zero_output_for_mask=False.
    States are right.
    """
    unrolled = case.config.unroll and case.mask is not None

    def run_half(spec, weights, init, go_backwards, zofm):
        return run_layer(spec, case.x, *weights, initial_state=init, mask=case.mask,
                         go_backwards=go_backwards, zero_output_for_mask=zofm and not unrolled)
    return _outputs(case, hard_sigmoid, run_half)


def jax_scan_holds_first_state(case, hard_sigmoid):
    """jax-masked-output-before-first-step-is-initial-state (JAX backend).

    The JAX scan (unroll=False) with zero_output_for_mask=False emits, at a
    masked step, the first state h before that step rather than the last
    output: the same after a row's first unmasked step, but h0 before it (and
    as a fully masked row's last output). Only h0 given as initial_state
    shows it (zeros otherwise). States are right.
    """
    scanned = not case.config.unroll and case.mask is not None

    def run_half(spec, weights, init, go_backwards, zofm):
        # the last output is the held h too: h0 for a fully masked row
        return run_layer(spec, case.x, *weights, initial_state=init, mask=case.mask,
                         go_backwards=go_backwards, zero_output_for_mask=zofm,
                         held=HELD_FIRST_STATE if scanned else HELD_LAST_OUTPUT,
                         last_output=LAST_EMITTED if scanned and not zofm else LAST_UNMASKED)
    return _outputs(case, hard_sigmoid, run_half)


def last_output_zeroed_by_zero_output_for_mask(case, hard_sigmoid):
    """zero-output-for-mask-zeroes-last-output (every backend, Keras 2 and 3).

    The documentation says zero_output_for_mask "is only used when
    `return_sequences` is `True`", so the last output is the output of each
    row's last unmasked step; Keras returns the last element of the zeroed
    sequence instead: zeros for a row whose last processed step is masked.
    Sequence and states are right.
    """
    def run_half(spec, weights, init, go_backwards, zofm):
        return run_layer(spec, case.x, *weights, initial_state=init, mask=case.mask,
                         go_backwards=go_backwards, zero_output_for_mask=zofm,
                         last_output=LAST_EMITTED if zofm else LAST_UNMASKED)
    return _outputs(case, hard_sigmoid, run_half)


def stateful_batch_one_broadcasts(case, hard_sigmoid):
    """stateful-batch-one-broadcast (Keras 3.3 to 3.11).

    The case: ``case.x`` has batch 1, ``case.initial_state`` holds the
    layer's stored states (stateful_batch, units) before the call. Keras
    broadcasts the one input row against the stored states, which is the
    formulas for x repeated to stateful_batch rows (the mask likewise), from
    those states: outputs (and returned states) of batch stateful_batch.
    Any other case is computed by the formulas.
    """
    b = case.stateful_batch
    if b is None or b <= 1 or case.batch != 1:
        return reference_outputs(case, hard_sigmoid)
    widened = replace(case, x=np.repeat(case.x, b, axis=0),
                      mask=None if case.mask is None else np.repeat(np.asarray(case.mask, bool), b, axis=0))
    return reference_outputs(widened, hard_sigmoid)


def stateful_batch_one_broadcasts_except_lstm(case, hard_sigmoid):
    """stateful-batch-one-broadcast-torch (Keras 3.0 to 3.11 on torch).

    SimpleRNN and GRU broadcast as in :func:`stateful_batch_one_broadcasts`;
    the LSTM cell crashes instead (a listed crash, refusals.toml), so for it
    the model is the formulas.
    """
    if case.config.kind == "lstm":
        return reference_outputs(case, hard_sigmoid)
    return stateful_batch_one_broadcasts(case, hard_sigmoid)


def stored_states_win_over_initial_state(case, hard_sigmoid):
    """keras2-stateful-initial-state-ignored (Keras 2).

    A stateful layer called with ``initial_state`` starts from its stored states
    (``case.stored_states``) when any of their entries is non-zero, and from ``initial_state``
    only when they are all zero (tf.keras 2.15 base_rnn.py ``_process_inputs``: a
    ``tf.cond`` on ``count_nonzero`` of ``self.states``). Everything else is the formulas."""
    stored = case.stored_states
    if stored is not None and case.initial_state is not None and any(np.any(np.asarray(s) != 0) for s in stored):
        case = replace(case, initial_state=[np.asarray(s, np.float64) for s in stored])
    return reference_outputs(case, hard_sigmoid)


def stateful_predict_starts_from_traced_states(case, hard_sigmoid):
    """jax-stateful-predict-does-not-carry-states (JAX backend).

    ``model.predict`` of a model around a stateful layer starts every call from the states the
    layer held when the predict function was traced -- zeros for a fresh layer, which is how
    the claim builds it -- instead of from the states the previous call ended in (the state
    variables are created untracked, ``rnn.py`` ``_create_state_variables`` under
    ``no_automatic_dependency_tracking``, so the jitted predict step reads them as constants
    and hands no new values back). The model: a call that must start from stored states
    (``stateful_batch`` and ``initial_state`` set) is the formulas from zeros."""
    if case.stateful_batch is not None and case.initial_state is not None:
        case = replace(case, initial_state=None)
    return reference_outputs(case, hard_sigmoid)


MODELS = {f.__name__: f for f in [stateful_predict_starts_from_traced_states, stored_states_win_over_initial_state, tf_unroll_zeroes_by_input_order,
                                  jax_unroll_ignores_zero_output_for_mask,
                                  jax_scan_holds_first_state,
                                  last_output_zeroed_by_zero_output_for_mask,
                                  stateful_batch_one_broadcasts,
                                  stateful_batch_one_broadcasts_except_lstm]}


def model_outputs(entry, case, hard_sigmoid):
    """What the Keras affected by divergence ``entry`` (a TOML table) returns for ``case``."""
    return MODELS[entry["model"]](case, hard_sigmoid)


__all__ = ["MODELS", "model_outputs", "run_layer"] + list(MODELS)


# --------------------------------------------------------------------------- initial weights
# Models of divergences in what a layer is initialized with (spec/test_weight_arguments.py);
# they return weights, not outputs, and are not in MODELS.

def unit_forget_bias_keeps_bias_initializer(units, bias_value):
    """``lstm-unit-forget-bias-keeps-bias-initializer``: LSTM(unit_forget_bias=True) fills the
    forget-gate block with ones and the i, c, o blocks with ``bias_initializer``'s value (the
    docstring: zeros there)."""
    bias = np.full(4 * units, float(bias_value))
    bias[units:2 * units] = 1.0
    return bias
