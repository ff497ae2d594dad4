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

from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rnnspec import reference
from rnnspec.spec import adapter
from rnnspec.spec.assertions import assert_matches_reference, tolerance
from rnnspec.spec.cases import Case, keras_layer, random_weights, reference_outputs
from rnnspec.spec.conformance import assert_values, call_unless_listed_crash, modelled_outputs
from rnnspec.spec.divergences import divergence_for
from rnnspec.spec.pool import entries
from rnnspec.spec.profiles import examples_per_entry
from rnnspec.spec.runners import _cached
from rnnspec.spec.strategies import SEEDS, masks


@st.composite
def stacks(draw, shape):
    """Fresh weights, inputs, mask pattern and Dense head for the stack ``shape`` (a
    ``rnnspec.spec.pool.StackShape``)."""
    layers, head, features = list(shape.layers), shape.head, shape.features
    rng = np.random.default_rng(draw(SEEDS, label="data_seed"))
    x = rng.uniform(-1, 1, (shape.batch, shape.timesteps, features)).astype(np.float32).astype(np.float64)
    mask = draw(masks(shape.batch, shape.timesteps, kinds=(shape.mask,)))
    if mask is not None:
        x[~mask] = 0.0   # what Masking(mask_value=0.0) will recognise
    width, weights = features, []
    for c in layers:
        weights.append(random_weights(c, width, rng))
        width = c.units * (2 if c.bidirectional == "concat" else 1)
    dense_in = width * shape.timesteps if head == "flatten" else width
    dense = [rng.standard_normal((dense_in, shape.dense_units)) / np.sqrt(dense_in),
             rng.uniform(-0.5, 0.5, shape.dense_units)]
    dense = [np.asarray(w, np.float32).astype(np.float64) for w in dense]
    return layers, head, features, x, mask, weights, dense


_MODELS = OrderedDict()


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


def _predict(entry, layers, head, features, x, mask, flat, dense_units):
    """``model.predict(x)`` with the weights ``flat`` on the entry's model, built once per entry
    (a new model traces a new predict function: about 0.4 s on TF; a known one is a call)."""
    def build():
        return _model(layers, head, features, x.shape[1], mask is not None, dense_units)
    model = _cached(_MODELS, entry.index, build)
    model.set_weights([np.asarray(w, np.float32) for w in flat])
    return adapter.to_numpy(adapter.invoke(model.predict, np.asarray(x, np.float32), verbose=0))


@pytest.mark.parametrize("entry", entries("stack"), ids=repr)
@given(data=st.data())
@settings(max_examples=examples_per_entry(0.5, "stack"))
def test_stack_predict_matches_reference(entry, data):
    """model.predict on a stack (Masking, RNN layers, Dense head) matches the formulas layer by layer.

    Over the ``stack`` pool (``spec/pool.py``: every pair of values of the top and lower layers'
    kind, units, activation, merge mode, go_backwards, unroll, depth, head, mask kind and sizes);
    each entry's model is built and traced once, with fresh weights and data every example.
    A traced ``model.predict`` still costs about 0.1 s a call on TF (its data adapter and batch
    loop), so the ``ci`` profile runs one example per entry: every pair of those values, where
    40 independently drawn stacks used to cover a random subset."""
    layers, head, features, x, mask, weights, dense = data.draw(stacks(entry.shape), label="stack")
    dense_units = dense[1].shape[0]
    # the divergence each layer falls in, judged on the layer's own configuration and mask
    layer_divergences = [divergence_for(Case(c, 1, [], x, mask=mask)) for c in layers]
    raising = next((e for e in layer_divergences if e is not None and "raises" in e), None)
    flat = [w for ws in weights for w in ws] + (dense if head != "none" else [])
    expected = _reference(layers, head, x, mask, weights, dense)
    shown = Case(layers[-1], features, flat, x, mask=mask)
    actual = call_unless_listed_crash(
        raising, lambda: _predict(entry, layers, head, features, x, mask, flat, dense_units),
        what="a layer of this stack")
    if actual is None:
        return
    # the whole stack is one example; the top layer's config names it in the report
    atol, rtol = tolerance()
    try:
        value_entries = [e if e is not None and "model" in e else None for e in layer_divergences]
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
