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
- ``initial_state`` and statefulness together: a call given ``initial_state``
  starts from it ("List of initial state tensors to be passed to the first
  call of the cell"), not from the stored states, and stores the states it
  ends in, where the next call without one starts.
- Setting the states numerically: "You can specify the initial state of RNN
  layers numerically by calling `reset_states` with the keyword argument
  `states`" (Keras 2; Keras 3's docstring says the same of `reset_state()`):
  the next call starts from those states.
- A stateful layer inside Bidirectional: each half carries its own states
  from call to call (the backward half, which runs from the last step to the
  first, starts each call from the state it ended the previous one in).
- The compiled path: ``model.predict`` on a model whose ``Input`` fixes the
  batch size (as the RNN docstring asks: "passing `batch_size=...` to the
  `Input` layer(s) of your model") carries the states from one predict to
  the next, as the eager call does.
"""

from dataclasses import replace

import numpy as np
from hypothesis import given, settings, strategies as st

from rnnspec.spec import adapter, outcomes, refusals
from rnnspec.spec.assertions import assert_matches_reference, tolerance
from rnnspec.spec.cases import Case, LayerConfig, keras_layer, random_weights, reference_outputs
from rnnspec.spec.conformance import assert_conforms, assert_refused, assert_values, call_unless_listed_crash, modelled_outputs
from rnnspec.spec.divergences import divergence_for
from rnnspec.spec.profiles import scaled_examples
from rnnspec.spec.report import current_claim
from rnnspec.spec.strategies import NUMERIC_BATCH, NUMERIC_FEATURES, NUMERIC_TIMESTEPS, SEEDS, layer_configs, masks


@st.composite
def stateful_chunks(draw, bidirectional=False, equal_lengths=False):
    """A layer config, its weights, and 2-3 chunks of one long sequence, each with its own mask (or none).

    ``bidirectional``: as in ``layer_configs`` (None: drawn); ``equal_lengths``: every chunk has
    the same number of steps (one traced graph per model)."""
    config = draw(layer_configs(bidirectional=bidirectional))
    features, batch = draw(NUMERIC_FEATURES), draw(NUMERIC_BATCH)
    if equal_lengths:
        lengths = [draw(NUMERIC_TIMESTEPS, label="chunk_length")] * draw(st.integers(2, 3), label="chunks")
    else:
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
        out = reference_outputs(Case(full, features, weights, x, mask=mask, initial_state=states), hs)
        states = out[len(out) - config.n_states:]   # (Bidirectional with merge_mode=None returns two outputs)
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


@given(stateful_chunks(), SEEDS)
@settings(max_examples=scaled_examples(0.25))
def test_initial_state_overrides_stored_states(chunked, seed):
    """A stateful layer called with initial_state starts from it, not from its stored states; the
    next call without one continues from where that call ended."""
    config, features, weights, chunks, chunk_masks = chunked
    batch = chunks[0].shape[0]
    rng = np.random.default_rng(seed)
    given_states = [rng.uniform(-0.5, 0.5, (batch, config.units)).astype(np.float32).astype(np.float64)
                    for _ in range(config.n_states)]
    layer = _stateful_layer(config, features, batch, weights)
    hs = adapter.conventions()["hard_sigmoid"]
    full = replace(config, return_state=True)
    states = None
    for i, (x, mask) in enumerate(zip(chunks, chunk_masks)):
        passed = given_states if i == 1 else None     # the second call gets initial_state
        start = passed if passed is not None else states
        case = Case(config, features, weights, x, mask=mask, initial_state=start,
                    stored_states=states if passed is not None else None)
        what = " with initial_state" if passed is not None else ""
        if assert_conforms(case, lambda: adapter.call(layer, x, mask=mask, initial_state=passed),
                           path=f"stateful call {i + 1} of {len(chunks)}{what}") is None:
            break   # a listed crash, asserted as such: the states it leaves behind are undefined
        # the states this call stored: the formulas', or inside a listed value divergence its model's
        entry = divergence_for(case)
        full_case = replace(case, config=full)
        out = (modelled_outputs(full_case, hs, entry) if entry is not None and "model" in entry
               else reference_outputs(full_case, hs))
        states = out[len(out) - config.n_states:]


@given(stateful_chunks(), SEEDS)
@settings(max_examples=scaled_examples(0.25))
def test_reset_with_states_sets_the_states(chunked, seed):
    """reset_states(states=...) (Keras 2) / reset_state(states=...) (the Keras 3 docstring) sets the
    stored states: the next call starts from them."""
    config, features, weights, chunks, chunk_masks = chunked
    batch = chunks[0].shape[0]
    rng = np.random.default_rng(seed)
    wanted = [rng.uniform(-0.5, 0.5, (batch, config.units)).astype(np.float32).astype(np.float64)
              for _ in range(config.n_states)]
    layer = _stateful_layer(config, features, batch, weights)
    adapter.call(layer, chunks[0])   # leaves states behind (asserted by test_state_carries_across_calls)
    entry = divergence_for(Case(config, features, weights, chunks[0], stateful_batch=batch))
    if call_unless_listed_crash(entry, lambda: adapter.reset_states_to(layer, wanted) or True,
                                what="reset_state(states=...)") is None:
        return
    case = Case(config, features, weights, chunks[1], mask=chunk_masks[1], initial_state=wanted)
    assert_conforms(case, lambda: adapter.call(layer, case.x, mask=case.mask),
                    path="stateful call after reset with states")


@given(stateful_chunks(bidirectional=True))
@settings(max_examples=scaled_examples(0.25))
def test_bidirectional_state_carries_across_calls(chunked):
    """Stateful Bidirectional: each half starts each call from the states it ended the previous one in."""
    config, features, weights, chunks, chunk_masks = chunked
    batch = chunks[0].shape[0]
    layer = _stateful_layer(config, features, batch, weights)
    for i, case in enumerate(_chain(config, features, weights, chunks, chunk_masks)):
        case = replace(case, stateful_batch=batch)
        if assert_conforms(case, lambda: adapter.call(layer, case.x, mask=case.mask),
                           path=f"stateful Bidirectional call {i + 1} of {len(chunks)}") is None:
            break


@given(stateful_chunks(bidirectional=None, equal_lengths=True))
@settings(max_examples=scaled_examples(0.1))
def test_stateful_predict_carries_state(chunked):
    """model.predict (tf.function / jax.jit; torch eager) of a model around a stateful layer, its
    batch size fixed by the Input, carries the states from one predict to the next.

    Few examples: each builds a model and traces its predict function (about 0.4 s on TF); the
    chunks have one length, so one trace serves all of an example's calls. predict takes no
    mask: the chunks are unmasked (masks: the eager claims above)."""
    config, features, weights, chunks, _ = chunked
    batch, timesteps = chunks[0].shape[:2]
    layer = _stateful_layer(config, features, batch, weights)
    model = []

    def predict(x):   # the model is built in the first call: building it may be a listed crash
        if not model:
            model.append(adapter.stateful_model(layer, batch, timesteps, features))
        return adapter.predict(model[0], x, batch)
    for i, case in enumerate(_chain(config, features, weights, chunks, [None] * len(chunks))):
        case = replace(case, stateful_batch=batch)
        if assert_conforms(case, lambda: predict(case.x), path=f"stateful model.predict {i + 1} of {len(chunks)}") is None:
            break
