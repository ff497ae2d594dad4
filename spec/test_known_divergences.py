"""Chapter 0 -- the known divergences still diverge.

Each entry of ``spec/data/divergences.toml`` that applies to this
environment carries its smallest reproducer. This claim runs it and checks
that Keras still disagrees with the formulas there. When Keras gets fixed,
the claim fails: the entry is stale and must be removed, so that the
properties assert those examples again.
"""

import numpy as np
import pytest

from spec import adapter
from spec.assertions import output_names, tolerance
from spec.cases import Case, LayerConfig, keras_layer, reference_outputs
from spec.report import divergence_applies, environment, load_divergences, note_example

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
    """A listed divergence's reproducer still disagrees with the formulas (else the entry is stale)."""
    if not divergence_applies(entry, environment()):
        pytest.skip(f"entry {entry['id']} does not apply to this environment ({entry.get('when')})")
    case = _case(entry)
    note_example()
    if entry["case"].get("expect") == "accepted":   # Keras accepts what it must refuse
        layer = keras_layer(case.config, case.features, batch=case.stateful_batch, stateful=True)
        adapter.set_weights(layer, case.weights)
        adapter.call(layer, np.zeros((case.stateful_batch,) + case.x.shape[1:]))
        try:
            adapter.call(layer, case.x)
        except Exception:
            pytest.fail(f"known divergence {entry['id']!r} no longer reproduces: the call is refused now; "
                        f"remove the entry from spec/data/divergences.toml")
        return
    layer = keras_layer(case.config, case.features, dropout=case.dropout,
                        recurrent_dropout=case.recurrent_dropout)
    adapter.set_weights(layer, case.weights)
    if entry["case"].get("expect") == "raises":
        try:
            adapter.call(layer, case.x, mask=case.mask, initial_state=case.initial_state,
                         training=case.training)
        except Exception:
            return
        pytest.fail(f"known divergence {entry['id']!r} no longer reproduces: the call no longer raises; "
                    f"remove the entry from spec/data/divergences.toml")
    actual = adapter.call(layer, case.x, mask=case.mask, initial_state=case.initial_state,
                          training=case.training)
    expected = reference_outputs(case, adapter.conventions()["hard_sigmoid"])
    atol, rtol = tolerance()
    differs = [name for name, a, e in zip(output_names(case.config), actual, expected)
               if a.shape != e.shape or not np.allclose(a, e, atol=atol, rtol=rtol)]
    assert differs, (f"known divergence {entry['id']!r} no longer reproduces on this environment: "
                     f"Keras now matches the formulas; remove the entry from spec/data/divergences.toml")
