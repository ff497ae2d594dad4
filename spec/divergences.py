"""Known divergences: recognise the examples that fall inside one.

The entries live in ``spec/data/divergences.toml``; this module holds the
predicates they name. :func:`divergence_for` returns the active entry whose
predicate recognises an example; ``spec/conformance.py`` then asserts that
example in full against the entry's model (``spec/divergence_models.py``)
where the model differs from the formulas, and against the formulas
everywhere else. ``spec/test_known_divergences.py`` checks that each
entry's smallest reproducer still diverges.
"""

import contextlib
import contextvars
import fnmatch
import functools
import os

import numpy as np
from hypothesis import event
from hypothesis.control import currently_in_test_context

from rnnspec.spec.report import current_claim, divergence_applies, environment, load_divergences


def _effective_zero_output_for_mask(config):
    if config.bidirectional:
        return config.return_sequences
    return bool(config.zero_output_for_mask)


def _runs_backwards(config):
    """The layer, or Bidirectional's backward half, processes the steps last to first."""
    return config.go_backwards or bool(config.bidirectional)


def _held_after_unmasked(mask, backwards):
    """(batch, timesteps), in processing order: the masked steps that come after an unmasked
    step of their row, where a held output (the last unmasked one) is not zeros."""
    m = np.asarray(mask, bool)[:, ::-1] if backwards else np.asarray(mask, bool)
    return ~m & (np.cumsum(m, axis=1) > 0)


def unrolled_backwards_zero_output_for_mask(case):
    # Only the returned sequence is zeroed by the wrong mask (the last output and the
    # states are right), and only where a row's mask is not a palindrome.
    c = case.config
    return bool(c.unroll and _runs_backwards(c) and _effective_zero_output_for_mask(c)
                and c.return_sequences and case.mask is not None
                and np.any(case.mask != case.mask[:, ::-1]))


def unrolled_zero_output_for_mask(case):
    # A held output differs from zeros only after a row's first unmasked step (in
    # processing order); without return_sequences only the last processed step counts.
    # Bidirectional (which zeroes only with return_sequences) with merge_mode="mul" shows
    # it only where both halves hold: the other half's zero cancels a held output.
    c = case.config
    if not (c.unroll and _effective_zero_output_for_mask(c) and case.mask is not None):
        return False
    if c.bidirectional:
        forward = _held_after_unmasked(case.mask, False)
        backward = _held_after_unmasked(case.mask, True)[:, ::-1]   # back to input order
        return bool(np.any(forward & backward if c.bidirectional == "mul" else forward | backward))
    held = _held_after_unmasked(case.mask, c.go_backwards)
    return bool(np.any(held if c.return_sequences else held[:, -1]))


_PLACEMENT = contextvars.ContextVar("placement", default=(None, None))


@contextlib.contextmanager
def placed_on(device, compiled):
    """Within this block, predicates see that the example runs on ``device`` ("cpu" or "gpu"),
    compiled or eagerly. Outside any such block (claims that run on the default device),
    placement-dependent predicates match nothing."""
    token = _PLACEMENT.set((device, bool(compiled)))
    try:
        yield
    finally:
        _PLACEMENT.reset(token)


def cudnn_eligible_lstm_placed_on_cpu(case):
    # Keras's JAX lstm() asks jax.default_backend() (the GPU) whether cuDNN may run, not
    # where the call is placed; it needs no mask (spec/data/cudnn.toml, jax.lstm), and
    # LSTM.inner_loop asks the backend only without recurrent_dropout.
    c = case.config
    # Eagerly, the failure is a NotImplementedError inside Keras's try, and the layer falls
    # back to its loop; under jit the lowering fails after Keras's try has returned.
    return (_PLACEMENT.get() == ("cpu", True) and c.kind == "lstm" and c.activation == "tanh"
            and c.recurrent_activation == "sigmoid" and c.use_bias and not c.unroll
            and case.mask is None and not case.recurrent_dropout)


def bidirectional_returning_state(case):
    return bool(case.config.bidirectional) and case.config.return_state


def unrolled_backwards_with_mask(case):
    c = case.config
    return c.unroll and _runs_backwards(c) and case.mask is not None


def initial_state_emitted_before_first_unmasked_step(case):
    c = case.config
    if c.unroll or _effective_zero_output_for_mask(c) or case.mask is None or case.initial_state is None:
        return False
    if not c.return_sequences:   # the last output is h0 only for a fully masked row
        return bool(np.any(~np.any(case.mask, axis=1)))
    first = -1 if _runs_backwards(c) else 0   # (Bidirectional with return_sequences zeroes instead)
    return bool(np.any(~case.mask[:, first]))


def unrolled_last_output_zero_output_for_mask(case):
    c = case.config
    # the (T, ...) zeroed sequence meets the (1, ...) shape set for it: no clash when T == 1
    return (c.unroll and _effective_zero_output_for_mask(c) and not c.return_sequences
            and case.mask is not None and case.timesteps > 1)


def last_output_of_a_masked_last_step_with_zero_output_for_mask(case):
    # a single layer (Bidirectional sets its halves' zero_output_for_mask to return_sequences)
    # returning its last output, where a row's last processed step is masked after an unmasked one
    c = case.config
    if c.bidirectional or c.return_sequences or not c.zero_output_for_mask or case.mask is None:
        return False
    m = np.asarray(case.mask, bool)
    last_processed = m[:, 0] if c.go_backwards else m[:, -1]
    return bool(np.any(~last_processed & m.any(axis=1)))


def stateful_call_with_batch_one(case):
    return case.stateful_batch is not None and case.stateful_batch > 1 and case.batch == 1


def stateful_non_lstm_call_with_batch_one(case):
    # torch before Keras 3.12: the LSTM cell's in-place `z +=` cannot broadcast, it crashes
    # (refusals.toml [[crash]] stateful-lstm-batch-one-inplace-torch); SimpleRNN and GRU broadcast
    return stateful_call_with_batch_one(case) and case.config.kind != "lstm"


def implementation_1_input_dropout_in_training(case):
    c = case.config
    # with recurrent_dropout > 0, Keras >= 3.8 draws one mask per gate and the indexing works
    # (the crash is in LSTM/GRU.inner_loop's fused-kernel attempt, taken only without
    # recurrent_dropout); Bidirectional rebuilds its layers from get_config, which has no
    # `implementation`, so a wrapped layer runs implementation 2 and computes.
    return (c.kind in ("lstm", "gru") and c.implementation == 1 and not c.bidirectional
            and case.training and 0 < case.dropout < 1 and not case.recurrent_dropout)


def bidirectional_over_a_go_backwards_layer(case):
    # Bidirectional(layer) whose layer has go_backwards=True (spec/test_cells.py); strategies never
    # draw that combination for the other claims
    return bool(case.config.bidirectional) and case.config.go_backwards


def stateful_bidirectional_returning_state(case):
    return case.stateful_batch is not None and bool(case.config.bidirectional) and case.config.return_state


def stateful_call_given_initial_state_over_stored_states(case):
    # Keras 2 counts the non-zero entries of the stored states: any, and they win
    return (case.stored_states is not None and case.initial_state is not None
            and any(np.any(np.asarray(s) != 0) for s in case.stored_states))


def stateful_call_from_stored_states(case):
    # a call of a stateful layer (built for stateful_batch) that must start from its stored states
    return case.stateful_batch is not None and case.initial_state is not None


def stateful_reset(case):
    # the reset claims (spec/test_stateful.py, and spec/test_cells.py's stateful RNN(cell)) pass the
    # stateful case whose layer they reset
    return case.stateful_batch is not None


def masked_scan(case):
    # the loop run by lax.scan (unroll=False) with a mask; the entry's claims restrict it to stacked
    # cells (spec/test_cells.py passes the top cell's case, whose flags are the wrapper's)
    return case.mask is not None and not case.config.unroll


PREDICATES = {f.__name__: f for f in [stateful_reset, masked_scan, bidirectional_over_a_go_backwards_layer,
                                      stateful_bidirectional_returning_state, stateful_call_from_stored_states,
                                      stateful_call_given_initial_state_over_stored_states,
                                      unrolled_backwards_zero_output_for_mask,
                                      unrolled_zero_output_for_mask,
                                      unrolled_backwards_with_mask,
                                      initial_state_emitted_before_first_unmasked_step,
                                      unrolled_last_output_zero_output_for_mask,
                                      last_output_of_a_masked_last_step_with_zero_output_for_mask,
                                      stateful_call_with_batch_one,
                                      stateful_non_lstm_call_with_batch_one,
                                      implementation_1_input_dropout_in_training,
                                      cudnn_eligible_lstm_placed_on_cpu,
                                      bidirectional_returning_state]}


@functools.cache
def active_entries():
    """The entries of ``spec/data/divergences.toml`` that apply to the installed Keras."""
    if os.environ.get("RNNSPEC_IGNORE_KNOWN_DIVERGENCES") == "1":
        return ()
    env = environment()
    return tuple(d for d in load_divergences() if divergence_applies(d, env) and "predicate" in d)


def argument_divergence(cls_name, arg, claim=None):
    """The divergence that lists argument ``arg`` of class ``cls_name`` (an entry's ``arguments``,
    e.g. a documented name the signature does not accept) under ``claim``, or None."""
    claim = claim or current_claim()
    if os.environ.get("RNNSPEC_IGNORE_KNOWN_DIVERGENCES") == "1":
        return None
    env = environment()
    for entry in load_divergences():
        if f"{cls_name}.{arg}" in entry.get("arguments", []) and divergence_applies(entry, env) \
                and any(fnmatch.fnmatch(claim, p) for p in entry["claims"]):
            return entry
    return None


def listed(divergence_id):
    """The entry ``divergence_id`` of ``divergences.toml`` when it applies to the installed Keras,
    else None: for the entries that no predicate selects (their claim finds them by id)."""
    if os.environ.get("RNNSPEC_IGNORE_KNOWN_DIVERGENCES") == "1":
        return None
    entry = next(d for d in load_divergences() if d["id"] == divergence_id)
    return entry if divergence_applies(entry, environment()) else None


def _hits(case, claim):
    return [entry for entry in active_entries()
            if any(fnmatch.fnmatch(claim, pattern) for pattern in entry["claims"])
            and PREDICATES[entry["predicate"]](case)]


def raising_divergences_for(case, claim=None):
    """Every active raising entry that recognises ``case``: where two crashes are listed for one
    example (a model that cannot be built, and a loop that would crash after it), the one Keras
    raises first is the one the example meets."""
    return [e for e in _hits(case, claim or current_claim()) if "raises" in e]


def divergence_for(case, claim=None):
    """The active entry whose predicate recognises ``case`` under ``claim`` (default: the running claim), or None."""
    claim = claim or current_claim()
    hits = _hits(case, claim)
    if not hits:
        return None
    # a crash pre-empts any value the example would otherwise compute
    entry = next((e for e in hits if "raises" in e), hits[0])
    if currently_in_test_context():
        event(f"known divergence: {entry['id']}")
    return entry
