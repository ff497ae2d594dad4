"""Chapter 6 -- stacked layers, a Dense head, Masking, and ``model.predict``.

The article's deep vertical RNNs: each layer below the top returns its
sequence (``return_sequences=True``) and feeds it to the next one; a Dense
layer on a sequence-returning top layer goes behind ``TimeDistributed`` (one
Dense per step) or ``Flatten`` (one Dense on all steps at once).

- A ``Masking`` layer in front masks every step whose features all equal
  the mask value; the mask travels up the stack unchanged (also past a
  ``go_backwards`` layer, whose sequence is in processing order: Keras
  passes the mask on as it is).
- ``model.predict`` -- the compiled path users run -- returns what the
  formulas, applied layer by layer, give.
"""

import numpy as np
from hypothesis import given, strategies as st

from rnnspec import reference
from rnnspec.spec import adapter
from rnnspec.spec.assertions import assert_matches_reference, tolerance
from rnnspec.spec.cases import Case, keras_layer, random_weights, reference_outputs
from rnnspec.spec.conformance import assert_values, call_unless_listed_crash, modelled_outputs
from rnnspec.spec.divergences import divergence_for
from rnnspec.spec.strategies import NUMERIC_FEATURES, SEEDS, layer_configs, masks


@st.composite
def stacks(draw):
    depth = draw(st.integers(2, 3), label="depth")
    layers = []
    for i in range(depth):
        top = i == depth - 1
        config = draw(layer_configs(return_state=False, allow_zero_output_for_mask=False,
                                    return_sequences=None if top else True,
                                    units=st.integers(1, 4)))
        if config.bidirectional == "none":  # two outputs: not stackable in a Sequential
            config = config.__class__(**{**config.__dict__, "bidirectional": "concat"})
        layers.append(config)
    head = draw(st.sampled_from(["none", "dense", "time_distributed", "flatten"]), label="head")
    if head in ("time_distributed", "flatten") and not layers[-1].return_sequences:
        head = "dense"
    if head == "dense" and layers[-1].return_sequences:
        head = "time_distributed"
    features = draw(NUMERIC_FEATURES, label="features")
    batch, timesteps = draw(st.integers(1, 3)), draw(st.integers(1, 5))
    rng = np.random.default_rng(draw(SEEDS, label="data_seed"))
    x = rng.uniform(-1, 1, (batch, timesteps, features)).astype(np.float32).astype(np.float64)
    mask = draw(masks(batch, timesteps, kinds=("none", "right_padded", "left_padded", "holes")))
    if mask is not None:
        x[~mask] = 0.0   # what Masking(mask_value=0.0) will recognise
    width, weights = features, []
    for c in layers:
        weights.append(random_weights(c, width, rng))
        width = c.units * (2 if c.bidirectional == "concat" else 1)
    dense_units = draw(st.integers(1, 3), label="dense_units")
    dense_in = width * timesteps if head == "flatten" else width
    dense = [rng.standard_normal((dense_in, dense_units)) / np.sqrt(dense_in), rng.uniform(-0.5, 0.5, dense_units)]
    return layers, head, features, x, mask, weights, dense


def _reference(layers, head, x, mask, weights, dense, entries=None):
    """The formulas layer by layer; with ``entries`` (one per layer, or None), each
    layer inside a listed value divergence computes that divergence's model."""
    hs = adapter.conventions()["hard_sigmoid"]
    y = x
    for i, (c, w) in enumerate(zip(layers, weights)):
        case = Case(c, y.shape[-1], w, y, mask=mask)
        entry = entries[i] if entries else None
        y = (modelled_outputs(case, hs, entry) if entry else reference_outputs(case, hs))[0]
    if head == "flatten":
        y = y.reshape(y.shape[0], -1)
    if head != "none":
        y = reference.layer.dense(y, *dense)
    return y


def _model(layers, head, features, timesteps, mask_used, dense_units):
    keras = adapter.keras
    seq = [keras.Input((timesteps, features))]
    if mask_used:
        seq.append(keras.layers.Masking(mask_value=0.0))
    width = features
    for c in layers:
        seq.append(keras_layer(c, width))
        width = c.units * (2 if c.bidirectional == "concat" else 1)
    if head == "flatten":
        seq.append(keras.layers.Flatten())
    if head == "time_distributed":
        seq.append(keras.layers.TimeDistributed(keras.layers.Dense(dense_units)))
    elif head in ("dense", "flatten"):
        seq.append(keras.layers.Dense(dense_units))
    return keras.Sequential(seq)


def _reproducer(layers, head, x, mask, flat_weights, dense_units):
    keras_name = "keras" if adapter.IS_KERAS3 else "tensorflow.keras"
    lines = ["import numpy as np", f"import {keras_name} as keras" if adapter.IS_KERAS3 else "from tensorflow import keras",
             f"layers = [keras.Input({x.shape[1:]!r})]"]
    if mask is not None:
        lines.append("layers.append(keras.layers.Masking(mask_value=0.0))")
    for c in layers:
        rnn = f"keras.layers.{adapter.LAYER_CLASSES[c.kind]}({c.units}, " + \
              ", ".join(f"{k}={v!r}" for k, v in c.keras_kwargs().items()) + ")"
        if c.bidirectional:
            rnn = f"keras.layers.Bidirectional({rnn}, merge_mode={c.bidirectional!r})"
        lines.append(f"layers.append({rnn})")
    if head == "flatten":
        lines.append("layers.append(keras.layers.Flatten())")
    if head == "time_distributed":
        lines.append(f"layers.append(keras.layers.TimeDistributed(keras.layers.Dense({dense_units})))")
    elif head in ("dense", "flatten"):
        lines.append(f"layers.append(keras.layers.Dense({dense_units}))")
    lines.append("model = keras.Sequential(layers)")
    lines.append("model.set_weights([" + ", ".join(
        f"np.array({np.asarray(w, np.float32).tolist()!r}, dtype='float32')" for w in flat_weights) + "])")
    lines.append(f"x = np.array({np.asarray(x, np.float32).tolist()!r}, dtype='float32')")
    lines.append("print(model.predict(x, verbose=0))")
    return "\n".join("    " + line for line in lines)


@given(stacks())
def test_stack_predict_matches_reference(stack):
    """model.predict on a stack (Masking, RNN layers, Dense head) matches the formulas layer by layer."""
    layers, head, features, x, mask, weights, dense = stack
    dense_units = dense[1].shape[0]
    # the divergence each layer falls in, judged on the layer's own configuration and mask
    entries = [divergence_for(Case(c, 1, [], x, mask=mask)) for c in layers]
    raising = next((e for e in entries if e is not None and "raises" in e), None)
    model = _model(layers, head, features, x.shape[1], mask is not None, dense_units)
    flat = [w for ws in weights for w in ws] + (dense if head != "none" else [])
    model.set_weights([np.asarray(w, np.float32) for w in flat])
    expected = _reference(layers, head, x, mask, weights, dense)
    shown = Case(layers[-1], features, flat, x, mask=mask)
    actual = call_unless_listed_crash(
        raising, lambda: adapter.to_numpy(adapter.invoke(model.predict, np.asarray(x, np.float32), verbose=0)),
        what="a layer of this stack")
    if actual is None:
        return
    # the whole stack is one example; the top layer's config names it in the report
    atol, rtol = tolerance()
    try:
        value_entries = [e if e is not None and "model" in e else None for e in entries]
        if any(value_entries):
            modelled = _reference(layers, head, x, mask, weights, dense, value_entries)
            ids = sorted({e["id"] for e in value_entries if e})
            assert_values(shown, [actual], [expected], [modelled], "+".join(ids), atol=atol, rtol=rtol,
                          path=f"model.predict, head={head}", names=["output"])
        else:
            assert_matches_reference(shown, [actual], [expected], path=f"model.predict, head={head}")
    except AssertionError as failure:
        if getattr(failure, "rnnspec_outcome", None):
            raise
        first = str(failure).splitlines()[0]
        configs = "\n".join(f"  layer {i}: {c.one_line()}" for i, c in enumerate(layers))
        raise AssertionError(f"{first}\n{configs}\n  head: {head}, mask: {mask is not None}\n\n"
                             f"Reproducer (numpy + keras):\n"
                             f"{_reproducer(layers, head, x, mask, flat, dense_units)}") from None
