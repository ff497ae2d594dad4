"""Chapter 7 -- what Keras must refuse.

A recurrent layer refuses, with an exception rather than a silent result:

- an input with 0 timesteps (there is no last output to return);
- an input whose rank is not 3 (batch, timesteps, features);
- an ``initial_state`` whose shape does not match (batch, units);
- a stateful layer built without a fixed batch size;
- zero or negative ``units``.

A refusal counts only as Keras documents it or raises it on purpose: the
exception class and a message that names the problem, raised by an explicit
``raise`` in Keras's layer or argument-validation code (the rules, per
version and backend, are data: ``spec/data/refusals.toml``). Anything else --
an ``AttributeError``, a ``TypeError`` from deep inside Keras, a backend
error -- is a crash, and a finding. The report records what each version
raised (``observed.raises``).
"""

import numpy as np
from hypothesis import given, strategies as st

from rnnspec.spec import adapter
from rnnspec.spec.conformance import assert_refused as _refused

KIND = st.sampled_from(["simple_rnn", "lstm", "gru"])


@given(KIND, st.integers(1, 4), st.integers(1, 3), st.integers(1, 4))
def test_zero_timesteps_is_refused(kind, units, batch, features):
    """An input with 0 timesteps raises."""
    layer = adapter.make_layer(kind, units)
    _refused(lambda: adapter.call(layer, np.zeros((batch, 0, features))))


@given(KIND, st.integers(1, 4), st.sampled_from([(3,), (2, 3), (1, 2, 3, 4)]))
def test_wrong_rank_is_refused(kind, units, shape):
    """An input of rank other than 3 raises."""
    layer = adapter.make_layer(kind, units)
    _refused(lambda: adapter.call(layer, np.zeros(shape)))


@given(KIND, st.integers(1, 4), st.integers(1, 3), st.integers(1, 3))
def test_mismatched_initial_state_is_refused(kind, units, batch, extra):
    """An initial_state of shape (batch, units + k) raises."""
    layer = adapter.make_layer(kind, units)
    n = 2 if kind == "lstm" else 1
    bad = [np.zeros((batch, units + extra))] * n
    _refused(lambda: adapter.call(layer, np.zeros((batch, 3, 2)), initial_state=bad))


@given(KIND, st.integers(1, 4))
def test_stateful_without_batch_size_is_refused(kind, units):
    """A stateful layer built for an unknown batch size raises."""
    layer = adapter.make_layer(kind, units, stateful=True)
    _refused(lambda: adapter.build(layer, None, 3))


@given(KIND, st.integers(-5, 0))
def test_non_positive_units_are_refused(kind, units):
    """units <= 0 raises at construction."""
    _refused(lambda: adapter.make_layer(kind, units))
