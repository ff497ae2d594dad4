"""Chapter 4 -- dropout and recurrent_dropout.

The article: ``dropout`` and ``recurrent_dropout`` drop a fraction of the
inputs to the kernel and to the recurrent_kernel. Dropout is a training-time
device only:

- At inference (``training=False``, which is what ``predict`` uses) a layer
  with dropout computes exactly the formulas without dropout, and calling it
  twice gives the same result.
- In training (``training=True``) the output changes: kept inputs are scaled
  by 1/(1-rate) and dropped ones are zero, so the formulas without dropout
  are no longer what it computes.
"""

import numpy as np
from hypothesis import given, strategies as st

from spec import adapter, outcomes
from spec.cases import keras_layer, reference_outputs
from spec.conformance import assert_conforms, call_unless_listed_crash
from spec.divergences import divergence_for
from spec.strategies import cases, layer_configs

RATES = st.sampled_from([0.0, 0.25, 0.5, 0.75])


@given(cases(layer_configs(), with_initial_state=False), RATES, RATES)
def test_inference_ignores_dropout(case, dropout, recurrent_dropout):
    """With training=False, dropout and recurrent_dropout change nothing, and two calls agree."""
    layer = keras_layer(case.config, case.features, dropout=dropout or 0.5,
                        recurrent_dropout=recurrent_dropout)
    adapter.set_weights(layer, case.weights)
    expected = reference_outputs(case, adapter.conventions()["hard_sigmoid"])
    for path in ("inference call", "second inference call"):
        assert_conforms(case, lambda: adapter.call(layer, case.x, mask=case.mask, training=False),
                        path=path, expected=expected)


@given(cases(layer_configs(bidirectional=False), features=st.integers(3, 5), batch=st.integers(2, 3),
             with_masks=False, with_initial_state=False),
       st.sampled_from([0.3, 0.5, 0.7]), st.sampled_from([0.0, 0.5]))
def test_training_applies_dropout(case, dropout, recurrent_dropout):
    """With training=True and dropout > 0, the output differs from the formulas without dropout."""
    config = case.config.__class__(**{**case.config.__dict__, "activation": "tanh",
                                      "return_sequences": True, "return_state": False})
    case.config, case.training, case.dropout, case.recurrent_dropout = config, True, dropout, recurrent_dropout
    entry = divergence_for(case)
    layer = keras_layer(config, case.features, dropout=dropout, recurrent_dropout=recurrent_dropout)
    adapter.set_weights(layer, case.weights)
    expected = reference_outputs(case, adapter.conventions()["hard_sigmoid"])[0]
    outputs = call_unless_listed_crash(entry, lambda: adapter.call(layer, case.x, training=True),
                                       what="training=True")
    if outputs is None:
        return
    actual = outputs[0]
    diff = np.max(np.abs(actual - expected))
    assert diff > 1e-4, (f"training=True output equals the no-dropout formulas (max |diff|={diff:.2e}); "
                         f"dropout={dropout} recurrent_dropout={recurrent_dropout} seems inactive in training")
    outcomes.asserted_formulas()
