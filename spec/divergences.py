"""Known divergences: recognise the examples that hit one.

The entries live in ``spec/data/divergences.toml``; this module holds the
predicates they name. A property calls :func:`known_divergence` before it
asserts: an example that matches an active entry is recorded as that
divergence (Hypothesis ``event`` and the conformance report), and its
assertion is skipped, so a known finding neither hides other failures of the
same claim nor turns the gate red. ``spec/test_known_divergences.py`` checks
that each entry's reproducer still diverges.
"""

import fnmatch
import functools
import os

import numpy as np
from hypothesis import event
from hypothesis.control import currently_in_test_context

from spec.report import current_claim, divergence_applies, environment, load_divergences, note_divergence


def _effective_zero_output_for_mask(config):
    if config.bidirectional:
        return config.return_sequences
    return bool(config.zero_output_for_mask)


def _runs_backwards(config):
    """The layer, or Bidirectional's backward half, processes the steps last to first."""
    return config.go_backwards or bool(config.bidirectional)


def unrolled_backwards_zero_output_for_mask(case):
    c = case.config
    return (c.unroll and _runs_backwards(c) and _effective_zero_output_for_mask(c)
            and case.mask is not None and not np.all(case.mask))


def unrolled_zero_output_for_mask(case):
    c = case.config
    return c.unroll and _effective_zero_output_for_mask(c) and case.mask is not None and not np.all(case.mask)


def unrolled_backwards_with_mask(case):
    c = case.config
    return c.unroll and _runs_backwards(c) and case.mask is not None


def initial_state_emitted_before_first_unmasked_step(case):
    c = case.config
    if c.unroll or _effective_zero_output_for_mask(c) or case.mask is None or case.initial_state is None:
        return False
    first = -1 if _runs_backwards(c) else 0
    leading = ~case.mask[:, first]
    if c.bidirectional:
        leading = leading | ~case.mask[:, 0]
    return bool(np.any(leading))


def unrolled_last_output_zero_output_for_mask(case):
    c = case.config
    return (c.unroll and _effective_zero_output_for_mask(c) and not c.return_sequences
            and case.mask is not None)


def stateful_call_with_batch_one(case):
    return case.stateful_batch is not None and case.stateful_batch > 1 and case.batch == 1


def implementation_1_input_dropout_in_training(case):
    c = case.config
    return c.kind in ("lstm", "gru") and c.implementation == 1 and case.training and 0 < case.dropout < 1


PREDICATES = {f.__name__: f for f in [unrolled_backwards_zero_output_for_mask,
                                      unrolled_zero_output_for_mask,
                                      unrolled_backwards_with_mask,
                                      initial_state_emitted_before_first_unmasked_step,
                                      unrolled_last_output_zero_output_for_mask,
                                      stateful_call_with_batch_one,
                                      implementation_1_input_dropout_in_training]}


@functools.cache
def active_entries():
    if os.environ.get("RNNSPEC_IGNORE_KNOWN_DIVERGENCES") == "1":
        return ()
    env = environment()
    return tuple(d for d in load_divergences() if divergence_applies(d, env) and "predicate" in d)


def known_divergence(case, claim=None):
    """The id of the active known divergence that ``case`` hits under ``claim``, or None.

    ``claim`` defaults to the running test's claim id.
    """
    claim = claim or current_claim()
    for entry in active_entries():
        if any(fnmatch.fnmatch(claim, pattern) for pattern in entry["claims"]) \
                and PREDICATES[entry["predicate"]](case):
            if currently_in_test_context():
                event(f"known divergence: {entry['id']}")
            note_divergence(entry["id"])
            return entry["id"]
    return None
