"""Chapter 3 -- stateful layers.

The article: with ``stateful=True`` Keras uses the final state of sample i
in one batch as the initial state of sample i in the next batch, so that a
long sequence can be fed in chunks. Hence:

- Calling a stateful layer on x1 and then on x2 returns, for the second
  call, what the formulas give for x2 starting from the states x1 ended in
  (which, without go_backwards, is the tail of one call on x1 followed by x2).
- Resetting the states (``reset_states()`` in Keras 2, ``reset_state()`` in
  Keras 3) makes the next call start from zeros again: it repeats the first
  result.
- The batch size is part of the layer: a stateful layer is built for a fixed
  batch size, and a call with another batch size is refused.
"""

import numpy as np
import pytest
from hypothesis import given, strategies as st

from spec import adapter
from spec.assertions import assert_matches_reference
from spec.cases import Case, LayerConfig, keras_layer, random_weights, reference_outputs
from spec.divergences import known_divergence
from spec.report import note_example, note_observation
from spec.strategies import NUMERIC_BATCH, NUMERIC_FEATURES, NUMERIC_TIMESTEPS, SEEDS, layer_configs


@st.composite
def stateful_chunks(draw):
    config = draw(layer_configs(bidirectional=False, allow_zero_output_for_mask=False))
    features, batch = draw(NUMERIC_FEATURES), draw(NUMERIC_BATCH)
    lengths = draw(st.lists(NUMERIC_TIMESTEPS, min_size=2, max_size=3), label="chunk_lengths")
    rng = np.random.default_rng(draw(SEEDS, label="data_seed"))
    weights = random_weights(config, features, rng)
    chunks = [rng.uniform(-1, 1, (batch, t, features)).astype(np.float32).astype(np.float64) for t in lengths]
    return config, features, weights, chunks


def _stateful_layer(config, features, batch, weights):
    layer = keras_layer(config, features, batch=batch, stateful=True)
    adapter.set_weights(layer, weights)
    return layer


def _expected_chain(config, features, weights, chunks):
    """Reference outputs of each call, each starting from the states the previous one ended in."""
    hs = adapter.conventions()["hard_sigmoid"]
    states, outs = None, []
    full = config.__class__(**{**config.__dict__, "return_state": True})
    for x in chunks:
        case = Case(full, features, weights, x, initial_state=states)
        result = reference_outputs(case, hs)
        states = result[1:]
        outs.append(result if config.return_state else result[:1])
    return outs


@given(stateful_chunks())
def test_state_carries_across_calls(chunked):
    """Each call of a stateful layer starts from the states the previous call ended in."""
    config, features, weights, chunks = chunked
    layer = _stateful_layer(config, features, chunks[0].shape[0], weights)
    for x, expected in zip(chunks, _expected_chain(config, features, weights, chunks)):
        actual = adapter.call(layer, x)
        assert_matches_reference(Case(config, features, weights, x), actual, expected,
                                 path="stateful call sequence")


@given(stateful_chunks())
def test_reset_restores_the_first_result(chunked):
    """After reset, a stateful layer repeats its first result (it starts from zeros again)."""
    config, features, weights, chunks = chunked
    layer = _stateful_layer(config, features, chunks[0].shape[0], weights)
    expected = _expected_chain(config, features, weights, chunks[:1])[0]
    for x in chunks:
        adapter.call(layer, x)
    adapter.reset_states(layer)
    actual = adapter.call(layer, chunks[0])
    assert_matches_reference(Case(config, features, weights, chunks[0]), actual, expected,
                             path="call after reset")


@given(kind=st.sampled_from(["simple_rnn", "lstm", "gru"]), batch=st.integers(1, 4),
       other=st.integers(1, 5), features=st.integers(1, 4))
def test_other_batch_size_is_refused(kind, batch, other, features):
    """A stateful layer built for batch B refuses a call with another batch size."""
    if other == batch:
        other = batch + 1
    probe = Case(LayerConfig(kind=kind, units=2), features, [], np.zeros((other, 3, features)),
                 stateful_batch=batch)
    if known_divergence(probe):
        return
    layer = adapter.make_layer(kind, 2, stateful=True)
    adapter.build(layer, batch, features)
    adapter.call(layer, np.zeros((batch, 3, features)))
    with pytest.raises(Exception) as raised:
        adapter.call(layer, np.zeros((other, 3, features)))
    note_observation("raises", type(raised.value).__name__)
    note_example()
