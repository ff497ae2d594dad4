"""Chapter 2c -- one optimizer step moves every weight by -learning_rate times its gradient.

The article trains ``recurrent layer -> Dense`` models with
``model.compile(optimizer=..., loss="mse")`` and ``fit``. One step of plain
SGD (``SGD(learning_rate)``, no momentum), here one ``train_on_batch(x, y)``,
must change every trainable weight ``w`` -- the recurrent layer's kernel,
recurrent kernel and bias (both halves of a Bidirectional) and the Dense
head's kernel and bias -- to

    w - learning_rate * dL/dw,   L = mean((Dense(layer(x)) - y)^2) over the batch

(``reference/training.py``: the Dense head and the mean squared error;
``reference/gradients.py``: backpropagation through time into the layer).
Chapter 2b checks the gradient of a weighted sum on the gradient paths rnnspec
calls itself; this claim checks what ``fit`` does end to end: the loss, its
reduction over the batch, the gradient reaching every weight (none frozen,
none missing, none doubled) and the update the optimizer applies, on the train
function Keras compiles (``jit_compile="auto"``; on torch, eager).

A masked input comes from a ``Masking(mask_value=0.0)`` layer (masked steps
of ``x`` set to 0.0), the documented way to mask a model's input, and is
read by a layer that returns its last output: a masked sequence output
would carry its mask into the loss, whose weighting is the loss's behavior,
not the layer's (out of scope here).

Pool ``training`` (``spec/pool.py``): every pair of flag values, single layers
and Bidirectional (concat, ave); one compiled model per entry, reused with
fresh weights, inputs, targets and learning rate for every example.

Known divergences: inside a raising one, the step must raise as listed;
inside a value one, the targets ``y`` at the batch rows (and timesteps) where
the divergence's model differs from the formulas are set to what the model
predicts there, so the loss is zero on every value the divergence touches and
the step is asserted against the reference (outcome: that divergence).
"""

from collections import OrderedDict
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rnnspec.reference.training import dense, dense_gradients, mean_squared_error_gradient, sgd_step
from rnnspec.spec import adapter, outcomes
from rnnspec.spec.assertions import describe, reproducer, tolerance
from rnnspec.spec.cases import gradient_names, keras_layer, reference_gradients, reference_outputs
from rnnspec.spec.conformance import call_unless_listed_crash, touched_values
from rnnspec.spec.divergences import divergence_for
from rnnspec.spec.pool import entries
from rnnspec.spec.profiles import examples_per_entry
from rnnspec.spec.runners import _cached
from rnnspec.spec.strategies import SEEDS, pool_cases

POOL = "training"
#: one float32 rounding of the updated weight (2^-23 relative)
FLOAT32_ULP = 2.0 ** -23

_MODELS = OrderedDict()


def _model_for(entry, case, head_units):
    def build():
        layer = keras_layer(case.config, case.features)
        return adapter.training_model(layer, timesteps=case.timesteps, features=case.features,
                                      head_units=head_units, masking=case.mask is not None)
    return _cached(_MODELS, (entry.index, head_units), build)


def _masked_input(case):
    """``x`` with every masked step set to the Masking layer's mask_value (0.0)."""
    if case.mask is None:
        return case
    return replace(case, x=np.where(np.asarray(case.mask, bool)[..., None], case.x, 0.0))


def expected_step(case, head, y, learning_rate, hard_sigmoid, entry):
    """``(weights before, weights after, gradients, targets, outcome id)`` of one SGD step by
    the formulas. Inside a value divergence, targets where its model differs are replaced."""
    kernel, bias = head
    h = reference_outputs(case, hard_sigmoid)[0]
    touched_id = None
    rows = np.zeros(np.shape(h)[:-1], bool)
    if entry is not None and "model" in entry:
        modelled, touched = touched_values(case, hard_sigmoid, entry)
        if np.any(touched[0]):
            rows = np.any(touched[0], axis=-1)         # a batch row (and timestep) whose output moved
            y = np.where(rows[..., None], dense(np.asarray(modelled[0]), kernel, bias), y)
            touched_id = entry["id"]
    # where the targets are what Keras predicts (the divergence's model), Keras's loss there is
    # zero and so is its gradient; everywhere else, the formulas' gradient of the mean
    d_prediction = np.where(rows[..., None], 0.0, mean_squared_error_gradient(dense(h, kernel, bias), y))
    d_kernel, d_bias, d_h = dense_gradients(h, kernel, d_prediction)
    layer_grads = [g for _, g in reference_gradients(case, hard_sigmoid, [d_h])[:len(case.weights)]]
    before = list(case.weights) + [kernel, bias]
    grads = layer_grads + [d_kernel, d_bias]
    return before, sgd_step(before, grads, learning_rate), grads, y, touched_id


@pytest.mark.parametrize("entry", entries(POOL), ids=repr)
@given(data=st.data(), learning_rate=st.sampled_from([0.01, 0.1, 1.0]))
@settings(max_examples=examples_per_entry(0.5, POOL))
def test_one_sgd_step_moves_every_weight_by_minus_learning_rate_times_gradient(entry, data, learning_rate):
    """``train_on_batch`` with ``SGD(learning_rate)``: ``w <- w - learning_rate * dL/dw`` for every weight."""
    hard_sigmoid = adapter.conventions()["hard_sigmoid"]
    case = _masked_input(data.draw(pool_cases(entry), label="case"))
    head_units = 1 + entry.index % 3
    rng = np.random.default_rng(data.draw(SEEDS, label="head_seed"))
    units = case.config.units * (2 if case.config.bidirectional == "concat" else 1)
    head = [(rng.standard_normal((units, head_units)) / np.sqrt(units)).astype(np.float32).astype(np.float64),
            rng.uniform(-0.5, 0.5, head_units).astype(np.float32).astype(np.float64)]
    h_shape = np.shape(reference_outputs(case, hard_sigmoid)[0])
    y = rng.uniform(-1.0, 1.0, h_shape[:-1] + (head_units,)).astype(np.float32).astype(np.float64)
    entry_div = divergence_for(case)
    before, expected, grads, y, touched_id = expected_step(case, head, y, learning_rate, hard_sigmoid, entry_div)
    raising = entry_div if entry_div is not None and "raises" in entry_div else None
    actual = call_unless_listed_crash(
        raising, lambda: adapter.sgd_train_step(_model_for(entry, case, head_units), before, case.x, y, learning_rate),
        what="building the model or the training step")
    if actual is None:
        return
    atol, rtol = tolerance(quantity="gradient")
    names = gradient_names(case)[:len(case.weights)] + ["dense kernel", "dense bias"]
    assert_step(case, names, actual, expected, grads, learning_rate, atol=atol, rtol=rtol,
                head=head, y=y, touched_id=touched_id)
    if touched_id is not None:
        outcomes.asserted_model(touched_id)
    else:
        outcomes.asserted_formulas()


def assert_step(case, names, actual, expected, grads, learning_rate, *, atol, rtol, head, y, touched_id):
    """Every weight after the step within ``learning_rate * (atol + rtol |dL/dw|)`` (the gradient
    tolerance, scaled by the step) plus one float32 rounding of the new weight."""
    __tracebackhide__ = True
    problem = None
    if len(actual) != len(expected):
        problem = f"the model has {len(actual)} weights, the formulas {len(expected)} ({', '.join(names)})"
    else:
        for name, a, e, g in zip(names, actual, expected, grads):
            a, e, g = np.asarray(a), np.asarray(e), np.asarray(g)
            if a.shape != e.shape:
                problem = f"{name}.shape={a.shape}, but should be {e.shape}"
                break
            bound = learning_rate * (atol + rtol * np.abs(g)) + FLOAT32_ULP * np.abs(e)
            excess = np.abs(a - e) - bound
            if a.size and (not np.all(np.isfinite(a)) or excess.max() > 0):
                idx = np.unravel_index(np.nanargmax(np.where(np.isfinite(a), excess, np.inf)), a.shape)
                before = e[idx] + learning_rate * g[idx]
                problem = (f"after one SGD step (learning_rate={learning_rate}) {name}{[int(i) for i in idx]}="
                           f"{a[idx]:.7g}, but should be {e[idx]:.7g} = {before:.7g} - {learning_rate} * {g[idx]:.7g} "
                           f"(|diff|={abs(a[idx] - e[idx]):.2e} > {bound[idx]:.2e}; Keras moved it by "
                           f"{a[idx] - before:.7g})")
                break
    if problem:
        where = f"train_on_batch, SGD, mse" + (f"; targets set to the model of {touched_id!r} where it differs"
                                                if touched_id else "")
        raise AssertionError(f"{problem} [{where}]\n  config: {describe(case)}\n\n"
                             f"Reproducer (numpy + keras):\n{step_reproducer(case, head, y, learning_rate, expected)}")


def step_reproducer(case, head, y, learning_rate, expected):
    """The forward reproducer, then the model, one train_on_batch, and the weights the formulas give."""
    hard_sigmoid = adapter.conventions()["hard_sigmoid"]
    lines = [reproducer(case, reference_outputs(case, hard_sigmoid)), ""]
    body = [
        "# one SGD step on layer -> Dense (rnnspec spec/test_training.py)",
        f"inputs = keras.Input(shape=({case.timesteps}, {case.features}))",
        ("h = keras.layers.Masking(mask_value=0.0)(inputs)  # x is 0.0 at every masked step" if case.mask is not None
         else "h = inputs"),
        f"model = keras.Model(inputs, keras.layers.Dense({np.shape(head[1])[0]})(layer(h)))",
        f"model.compile(optimizer=keras.optimizers.SGD(learning_rate={learning_rate}, momentum=0.0), loss='mse')",
        "model.set_weights(layer.get_weights() + [np.array(" + repr(np.asarray(head[0], np.float32).tolist())
        + ", dtype='float32'), np.array(" + repr(np.asarray(head[1], np.float32).tolist()) + ", dtype='float32')])",
        "x_masked = np.where(mask[..., None], x, 0.0).astype('float32')" if case.mask is not None else "x_masked = x",
        f"y = np.array({np.asarray(y, np.float32).tolist()!r}, dtype='float32')",
        "model.train_on_batch(x_masked, y)",
        "# the weights after the step by the formulas (float64):",
        "expected = [" + ", ".join(f"np.array({np.asarray(e).tolist()!r})" for e in expected) + "]",
        "for w, e in zip(model.get_weights(), expected):",
        "    print(w.shape, 'max |keras - formula| =', np.max(np.abs(w - e)))",
    ]
    return "\n".join(lines) + "\n".join("    " + b for b in body)
