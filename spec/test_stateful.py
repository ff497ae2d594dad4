"""Chapter 3 -- stateful layers.

The article: with ``stateful=True`` Keras uses the final state of sample i
in one batch as the initial state of sample i in the next batch, so that a
long sequence can be fed in chunks. Hence:

- Calling a stateful layer on x1 and then on x2 returns, for the second
  call, what the formulas give for x2 starting from the states x1 ended in
  (which, without go_backwards, is the tail of one call on x1 followed by x2);
  with masks too: a row whose last steps of x1 are masked carries the state
  of its last unmasked step into x2.
- Resetting the states (``reset_states()`` in Keras 2, ``reset_state()`` in
  Keras 3) makes the next call start from zeros again: it repeats the first
  result.
- The batch size is part of the layer: a stateful layer is built for a fixed
  batch size, and a call with another batch size is refused.
"""

from dataclasses import replace

import numpy as np
from hypothesis import given, strategies as st

from rnnspec.spec import adapter, outcomes, refusals
from rnnspec.spec.assertions import assert_matches_reference, tolerance
from rnnspec.spec.cases import Case, LayerConfig, keras_layer, random_weights, reference_outputs
from rnnspec.spec.conformance import assert_conforms, assert_refused, assert_values, call_unless_listed_crash, modelled_outputs
from rnnspec.spec.divergences import divergence_for
from rnnspec.spec.report import current_claim
from rnnspec.spec.strategies import NUMERIC_BATCH, NUMERIC_FEATURES, NUMERIC_TIMESTEPS, SEEDS, layer_configs, masks


@st.composite
def stateful_chunks(draw):
    """A layer config, its weights, and 2-3 chunks of one long sequence, each with its own mask (or none)."""
    config = draw(layer_configs(bidirectional=False))
    features, batch = draw(NUMERIC_FEATURES), draw(NUMERIC_BATCH)
    lengths = draw(st.lists(NUMERIC_TIMESTEPS, min_size=2, max_size=3), label="chunk_lengths")
    rng = np.random.default_rng(draw(SEEDS, label="data_seed"))
    weights = random_weights(config, features, rng)
    chunks = [rng.uniform(-1, 1, (batch, t, features)).astype(np.float32).astype(np.float64) for t in lengths]
    chunk_masks = [draw(masks(batch, t)) for t in lengths]
    return config, features, weights, chunks, chunk_masks


def _stateful_layer(config, features, batch, weights):
    layer = keras_layer(config, features, batch=batch, stateful=True)
    adapter.set_weights(layer, weights)
    return layer


def _chain(config, features, weights, chunks, chunk_masks):
    """Each call as a Case starting from the states the previous call ended in (the formulas' states)."""
    hs = adapter.conventions()["hard_sigmoid"]
    states, cases = None, []
    full = replace(config, return_state=True)
    for x, mask in zip(chunks, chunk_masks):
        cases.append(Case(config, features, weights, x, mask=mask, initial_state=states))
        states = reference_outputs(Case(full, features, weights, x, mask=mask, initial_state=states), hs)[1:]
    return cases


def _expected_chain(config, features, weights, chunks):
    """Reference outputs of each unmasked call, each starting from the states the previous one ended in."""
    hs = adapter.conventions()["hard_sigmoid"]
    return [reference_outputs(c, hs) for c in _chain(config, features, weights, chunks, [None] * len(chunks))]


@given(stateful_chunks())
def test_state_carries_across_calls(chunked):
    """Each call of a stateful layer starts from the states the previous call ended in (masks included)."""
    config, features, weights, chunks, chunk_masks = chunked
    layer = _stateful_layer(config, features, chunks[0].shape[0], weights)
    for i, case in enumerate(_chain(config, features, weights, chunks, chunk_masks)):
        # the layer is called without initial_state: it must start from its stored states
        if assert_conforms(case, lambda: adapter.call(layer, case.x, mask=case.mask),
                           path=f"stateful call {i + 1} of {len(chunks)}") is None:
            break   # a listed crash, asserted as such: the states it leaves behind are undefined


@given(stateful_chunks())
def test_reset_restores_the_first_result(chunked):
    """After reset, a stateful layer repeats its first result (it starts from zeros again)."""
    config, features, weights, chunks, _ = chunked
    layer = _stateful_layer(config, features, chunks[0].shape[0], weights)
    expected = _expected_chain(config, features, weights, chunks[:1])[0]
    for x in chunks:
        adapter.call(layer, x)
    # reset_state() itself may be a listed crash (divergences.toml: jax-reset-state-numpy2-crash)
    entry = divergence_for(Case(config, features, weights, chunks[0], stateful_batch=chunks[0].shape[0]))
    if call_unless_listed_crash(entry, lambda: adapter.reset_states(layer) or True, what="reset_state()") is None:
        return
    actual = adapter.call(layer, chunks[0])
    assert_matches_reference(Case(config, features, weights, chunks[0]), actual, expected,
                             path="call after reset")


@given(kind=st.sampled_from(["simple_rnn", "lstm", "gru"]), batch=st.integers(1, 4),
       other=st.integers(1, 5), features=st.integers(1, 4), seed=SEEDS)
def test_other_batch_size_is_refused(kind, batch, other, features, seed):
    """A stateful layer built for batch B refuses a call with another batch size."""
    if other == batch:
        other = batch + 1
    rng = np.random.default_rng(seed)
    layer = adapter.make_layer(kind, 2, stateful=True)
    adapter.build(layer, batch, features)
    first = rng.uniform(-1, 1, (batch, 3, features))
    adapter.call(layer, first)
    config = LayerConfig(kind=kind, units=2)
    hs = adapter.conventions()["hard_sigmoid"]
    weights = adapter.get_weights(layer)
    stored = reference_outputs(Case(replace(config, return_state=True), features, weights, first), hs)[1:]
    probe = Case(config, features, weights, rng.uniform(-1, 1, (other, 3, features)),
                 initial_state=stored, stateful_batch=batch)
    entry = divergence_for(probe)
    if entry is not None and "model" in entry:
        # a listed divergence: this version accepts the call; assert what it computes
        atol, rtol = tolerance()
        outcome, actual = refusals.outcome_of(current_claim(), lambda: adapter.call(layer, probe.x))
        if outcome != "accepted":
            raise (outcomes.DivergenceFixed if outcome == "refused" else outcomes.KerasCrashed)(
                f"{outcome} ({actual}), but {entry['id']!r} says this version accepts the call")
        modelled = modelled_outputs(probe, hs, entry)
        assert_values(probe, actual, [np.full(np.shape(m), np.nan) for m in modelled], modelled, entry["id"],
                      atol=atol, rtol=rtol, path="stateful call with another batch size")
        return
    assert_refused(lambda: adapter.call(layer, probe.x))
