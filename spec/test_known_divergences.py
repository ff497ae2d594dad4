"""Chapter 0 -- the known divergences still diverge, exactly as modelled.

Each entry of ``spec/data/divergences.toml`` that applies to this
environment carries its smallest reproducer. This claim runs it and checks
that Keras still returns what the entry's model says (or raises what it
says), where the model differs from the formulas. When Keras gets fixed, the
claim fails as "fixed": the entry is stale and must be removed, so that the
properties hold those examples to the formulas again.
"""

from dataclasses import replace

import numpy as np
import pytest

from rnnspec.spec import adapter, outcomes, refusals
from rnnspec.spec.assertions import tolerance
from rnnspec.spec.cases import Case, LayerConfig, keras_layer, reference_outputs
from rnnspec.spec.conformance import assert_conforms, assert_values, call_unless_listed_crash, modelled_outputs
from rnnspec.spec.divergences import placed_on
from rnnspec.spec.report import divergence_applies, environment, load_divergences
from rnnspec.spec.runners import run_case

ENTRIES = [d for d in load_divergences() if "case" in d]


def _case(entry):
    raw = entry["case"]
    config = LayerConfig(**raw["config"])
    weights = [np.array(w, np.float64) for w in raw["weights"]]
    mask = np.array(raw["mask"], bool) if "mask" in raw else None
    return Case(config, raw["features"], weights, np.array(raw["x"], np.float64), mask=mask,
                training=raw.get("training", False), dropout=raw.get("dropout", 0.0),
                recurrent_dropout=raw.get("recurrent_dropout", 0.0),
                initial_state=[np.array(s, np.float64) for s in raw["initial_state"]] if "initial_state" in raw else None,
                stateful_batch=raw.get("stateful_batch"))


@pytest.mark.parametrize("entry", ENTRIES, ids=[d["id"] for d in ENTRIES])
def test_listed_divergence_still_reproduces(entry):
    """A listed divergence's reproducer still does what its model says (else the entry is stale)."""
    if not divergence_applies(entry, environment()):
        pytest.skip(f"entry {entry['id']} does not apply to this environment ({entry.get('when')})")
    case = _case(entry)
    hs = adapter.conventions()["hard_sigmoid"]
    if entry["case"].get("expect") == "reset-raises":   # reset_state() of a stateful layer raises
        layer = keras_layer(case.config, case.features, batch=case.stateful_batch, stateful=True)
        adapter.set_weights(layer, case.weights)
        adapter.call(layer, case.x)
        call_unless_listed_crash(entry, lambda: adapter.reset_states(layer) or True, what="reset_state()")
        return
    if entry["case"].get("expect") == "accepted":   # Keras accepts what it must refuse
        layer = keras_layer(case.config, case.features, batch=case.stateful_batch, stateful=True)
        adapter.set_weights(layer, case.weights)
        first = np.zeros((case.stateful_batch,) + case.x.shape[1:])
        adapter.call(layer, first)
        stored = reference_outputs(Case(replace(case.config, return_state=True), case.features, case.weights,
                                        first), hs)[1:]
        case = replace(case, initial_state=stored)
        outcome, actual = refusals.outcome_of("spec/test_stateful.py::test_other_batch_size_is_refused",
                                              lambda: adapter.call(layer, case.x))
        if outcome != "accepted":
            raise outcomes.DivergenceFixed(f"known divergence {entry['id']!r} no longer reproduces: the call is "
                                           f"{outcome} now ({actual}); remove the entry from spec/data/divergences.toml")
        modelled = modelled_outputs(case, hs, entry)
        atol, rtol = tolerance()
        assert_values(case, actual, [np.full(np.shape(m), np.nan) for m in modelled], modelled, entry["id"],
                      atol=atol, rtol=rtol, path="the entry's reproducer")
        return
    if entry["case"].get("expect") == "model-raises":   # building a functional model around the layer raises
        built = call_unless_listed_crash(
            entry, lambda: adapter.model_of(keras_layer(case.config, case.features), case.x.shape[1], case.features),
            what="building a model around this layer")
        assert built is None
        return
    if entry["case"].get("expect") in ("reset-with-states-raises", "stateful-raises"):
        layer = keras_layer(case.config, case.features, batch=case.stateful_batch, stateful=True)
        adapter.set_weights(layer, case.weights)
        if entry["case"]["expect"] == "stateful-raises":   # the call itself raises
            assert call_unless_listed_crash(entry, lambda: adapter.call(layer, case.x), what="this call") is None
            return
        adapter.call(layer, case.x)
        call_unless_listed_crash(entry, lambda: adapter.reset_states_to(layer, case.initial_state) or True,
                                 what="reset_state(states=...)")
        return
    if entry["case"].get("expect") == "stateful-initial-state":   # a stateful call given initial_state
        first = np.array(entry["case"]["first_x"], np.float64)
        layer = keras_layer(case.config, case.features, batch=first.shape[0], stateful=True)
        adapter.set_weights(layer, case.weights)
        adapter.call(layer, first)
        out = reference_outputs(Case(replace(case.config, return_state=True), case.features, case.weights, first), hs)
        case = replace(case, stored_states=out[1:])
        modelled, expected = modelled_outputs(case, hs, entry), reference_outputs(case, hs)
        assert any(not np.allclose(m, e) for m, e in zip(modelled, expected)), \
            f"the reproducer of {entry['id']!r} does not separate its model from the formulas: choose another"
        assert_conforms(case, lambda: adapter.call(layer, case.x, initial_state=case.initial_state),
                        path="the entry's reproducer", hard_sigmoid=hs, entry=entry)
        return
    if entry["case"].get("expect") == "stateful-predict":   # model.predict twice on a stateful layer's model
        first = np.array(entry["case"]["first_x"], np.float64)
        batch, timesteps = first.shape[:2]
        layer = keras_layer(case.config, case.features, batch=batch, stateful=True)
        adapter.set_weights(layer, case.weights)
        model = adapter.stateful_model(layer, batch, timesteps, case.features)
        adapter.predict(model, first, batch)
        out = reference_outputs(Case(replace(case.config, return_state=True), case.features, case.weights, first), hs)
        case = replace(case, initial_state=out[1:], stateful_batch=batch)
        modelled, expected = modelled_outputs(case, hs, entry), reference_outputs(case, hs)
        assert any(not np.allclose(m, e) for m, e in zip(modelled, expected)), \
            f"the reproducer of {entry['id']!r} does not separate its model from the formulas: choose another"
        assert_conforms(case, lambda: adapter.predict(model, case.x, batch), path="the entry's reproducer",
                        hard_sigmoid=hs, entry=entry)
        return
    if entry["case"].get("expect") == "construct-raises":   # building the layer itself raises
        built = call_unless_listed_crash(entry, lambda: keras_layer(case.config, case.features),
                                         what="building this layer")
        assert built is None
        return
    if "placed_on" in entry["case"]:   # a divergence of one placement: run it there, compiled
        device = entry["case"]["placed_on"]
        with placed_on(device, True):
            assert_conforms(case, lambda: run_case(case, compiled=True, device=device),
                            path=f"the entry's reproducer, compiled, on {device}", hard_sigmoid=hs, entry=entry)
        return
    layer = keras_layer(case.config, case.features, dropout=case.dropout,
                        recurrent_dropout=case.recurrent_dropout)
    adapter.set_weights(layer, case.weights)
    if "model" in entry:
        modelled = modelled_outputs(case, hs, entry)
        expected = reference_outputs(case, hs)
        assert any(np.shape(m) != np.shape(e) or not np.allclose(m, e) for m, e in zip(modelled, expected)), \
            f"the reproducer of {entry['id']!r} does not separate its model from the formulas: choose another"
    assert_conforms(case, lambda: adapter.call(layer, case.x, mask=case.mask, initial_state=case.initial_state,
                                               training=case.training),
                    path="the entry's reproducer", hard_sigmoid=hs, entry=entry)
