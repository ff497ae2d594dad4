"""Chapter 12 -- where masks come from: Masking and Embedding(mask_zero=True).

A recurrent layer reads the mask that the layer in front of it computes
(the RNN docstring: "This layer supports masking for input data with a
variable number of timesteps. To introduce masks to your data, use a
`keras.layers.Embedding` layer with the `mask_zero` parameter set to
`True`"):

- ``keras.layers.Masking(mask_value=v)``: "For each timestep in the input
  tensor (dimension #1 in the tensor), if all values in the input tensor at
  that timestep are equal to `mask_value`, then the timestep will be masked
  (skipped) in all downstream layers". A step where only some features equal
  ``v`` is not masked. Drawn with ``v = 0.0`` and non-zero values.
- ``keras.layers.Embedding(input_dim, output_dim, mask_zero=True)``: each
  token is replaced by its row of the embedding matrix, and "whether or not
  the input value 0 is a special 'padding' value that should be masked out":
  token 0 is masked. With ``mask_zero=False``, 0 is an ordinary token and
  nothing is masked.

Either way, the layer behind returns what the formulas give with that mask
(``reference/layer.py``: states carried and outputs held or zeroed at masked
steps), for every layer kind, flag and Bidirectional merge mode; the
embedding lookup itself is ``E[tokens]`` on the matrix set before the call.
Each example builds a small functional model (the mask travels as Keras
propagates it) and calls it eagerly; known divergences of masked loops apply
and are asserted against their models.
"""

from collections import OrderedDict
from dataclasses import replace

import numpy as np
from hypothesis import given, settings, strategies as st

from rnnspec.spec import adapter
from rnnspec.spec.cases import Case, keras_layer
from rnnspec.spec.conformance import assert_conforms
from rnnspec.spec.profiles import scaled_examples
from rnnspec.spec.runners import _cached
from rnnspec.spec.strategies import SEEDS, cases

#: mask values drawn: zero (the default) and values a real feature may take
MASK_VALUES = (0.0, -1.5, 2.0)

_MODELS = OrderedDict()


@st.composite
def masking_cases(draw):
    """A case (any layer, flags, Bidirectional) whose masked steps are set to ``mask_value`` in every
    feature; with more than one feature, some kept steps get ``mask_value`` in one feature only."""
    case = draw(cases(with_initial_state=False), label="case")
    value = draw(st.sampled_from(MASK_VALUES), label="mask_value")
    x = case.x.copy()
    # Masking always hands a mask on, all True where no step is masked
    mask = np.ones(x.shape[:2], bool) if case.mask is None else case.mask
    x[~mask] = value
    if case.features > 1 and draw(st.booleans(), label="partly_equal_steps"):
        x[..., 0] = np.where(mask, value, x[..., 0])   # one feature equal to mask_value: not masked
    return replace(case, x=x, mask=mask), value


@given(masking_cases())
@settings(max_examples=scaled_examples(0.5))
def test_masking_layer_masks_steps_equal_to_mask_value(drawn):
    """Masking(mask_value=v) in front of a layer masks exactly the steps whose features all equal v."""
    case, value = drawn
    c = case.config

    def build():
        masking = adapter.keras.layers.Masking(mask_value=value)
        return adapter.source_model(masking, keras_layer(c, case.features), (case.timesteps, case.features))

    def run():   # the model is built here: building it may be a listed crash of the masked layer
        model = _cached(_MODELS, ("masking", c, case.features, case.timesteps, value), build)
        adapter.set_weights(model, case.weights)
        return adapter.call(model, case.x)
    assert_conforms(case, run, path=f"Masking(mask_value={value}) -> layer, eager model call")


@st.composite
def embedding_cases(draw):
    """A case whose inputs are the embedding rows of drawn tokens (token 0 at the masked steps),
    with ``mask_zero`` drawn; ``(case, tokens, embedding matrix, mask_zero)``."""
    case = draw(cases(with_initial_state=False), label="case")
    input_dim = draw(st.integers(2, 8), label="input_dim")
    mask_zero = draw(st.booleans(), label="mask_zero")
    rng = np.random.default_rng(draw(SEEDS, label="token_seed"))
    tokens = rng.integers(1, input_dim, size=(case.batch, case.timesteps))
    if case.mask is not None:
        tokens[~case.mask] = 0
    matrix = rng.uniform(-1, 1, (input_dim, case.features)).astype(np.float32).astype(np.float64)
    x = matrix[tokens]                        # the embedding lookup: row `token` of the matrix
    # mask_zero=True always hands a mask on (all True without a token 0); mask_zero=False none
    return replace(case, x=x, mask=tokens != 0 if mask_zero else None), tokens, matrix, mask_zero


@given(embedding_cases())
@settings(max_examples=scaled_examples(0.5))
def test_embedding_mask_zero_masks_token_zero(drawn):
    """Embedding(mask_zero=True) in front of a layer masks the steps of token 0 (mask_zero=False: none)."""
    case, tokens, matrix, mask_zero = drawn
    c = case.config
    input_dim = matrix.shape[0]

    def build():
        embedding = adapter.keras.layers.Embedding(input_dim, case.features, mask_zero=mask_zero,
                                                   embeddings_initializer="zeros")
        return adapter.source_model(embedding, keras_layer(c, case.features), (case.timesteps,), dtype="int32")

    def run():   # the model is built here: building it may be a listed crash of the masked layer
        model = _cached(_MODELS, ("embedding", c, input_dim, case.features, case.timesteps, mask_zero), build)
        adapter.set_weights(model, [matrix] + list(case.weights))
        return adapter.call_tokens(model, tokens)
    assert_conforms(case, run, path=f"Embedding(mask_zero={mask_zero}) -> layer, eager model call")
