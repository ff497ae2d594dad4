"""Chapter 7 -- what Keras must refuse.

A recurrent layer refuses, with an exception rather than a silent result:

- an input with 0 timesteps (there is no last output to return);
- an input whose rank is not 3 (batch, timesteps, features);
- an ``initial_state`` whose shape does not match (batch, units);
- a stateful layer built without a fixed batch size;
- zero or negative ``units``.

Which exception each version raises is recorded in the report
(``observed.raises``); the claim is only that it raises.
"""

import numpy as np
import pytest
from hypothesis import given, strategies as st

from spec import adapter
from spec.report import note_example, note_observation

KIND = st.sampled_from(["simple_rnn", "lstm", "gru"])


def _refused(fn):
    __tracebackhide__ = True
    note_example()
    with pytest.raises(Exception) as raised:
        result = fn()
        pytest.fail(f"accepted, returned {type(result).__name__} "
                    f"{[getattr(r, 'shape', None) for r in adapter.as_list(result)]}")
    if raised.type is pytest.fail.Exception:
        raise raised.value
    note_observation("raises", type(raised.value).__name__)


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
