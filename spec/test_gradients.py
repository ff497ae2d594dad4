"""Chapter 2b -- gradients equal the gradients of the documented formulas.

For the configurations the equivalence properties draw, the gradient that
Keras computes for the scalar loss

    L = sum over every returned value v (output, or each state) of sum(c_v * v)

with coefficients ``c_v`` drawn uniformly in [-1, 1], with respect to every
weight (kernel, recurrent_kernel, bias; Bidirectional: both halves), the
input ``x`` and every initial state, equals the float64 backpropagation
through time of ``reference/gradients.py`` (itself checked against finite
differences by ``tests/test_reference_gradients.py``), within the gradient
row of ``spec/data/tolerances.toml``. A forward pass that is right can still
train wrongly: a custom gradient with a wrong derivative, a stop_gradient on
one path, a mask that zeroes the value but lets the gradient through -- these
are invisible to chapter 2.

Paths: the compiled gradient users train with (``tf.GradientTape`` inside
``tf.function`` on TF, ``jax.jit(jax.grad)`` over ``stateless_call`` on JAX,
autograd on torch, which has no graph mode), parametrized over the
pairs-only ``xla`` pool of graph shapes (every pair of flag values; one traced
gradient per entry, fresh weights and data per example); and the eager
gradient with every flag drawn independently, single layers and
Bidirectional with every merge mode.

Known divergences (``spec/data/divergences.toml``): inside a raising entry
the gradient call must raise as listed; inside a value entry the
coefficients of the values the divergence touches (where its model differs
from the formulas) are set to zero, so the loss only sees values Keras
computes by the formulas, and its gradient is asserted against the
reference's (outcome: that divergence). Every example records one outcome.
"""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rnnspec.spec import adapter, outcomes
from rnnspec.spec.assertions import describe, reproducer, tolerance
from rnnspec.spec.cases import gradient_names, reference_gradients, reference_outputs
from rnnspec.spec.conformance import call_unless_listed_crash, touched_values
from rnnspec.spec.devices import TF32_TABLE_KEY, pool_params
from rnnspec.spec.divergences import divergence_for
from rnnspec.spec.profiles import examples_per_entry, scaled_examples
from rnnspec.spec.runners import COMPILED_PATHS, run_gradients
from rnnspec.spec.strategies import SEEDS, cases, pool_cases

def draw_coefficients(data, case, hard_sigmoid):
    """Coefficients uniform in [-1, 1] (float32-representable), one array per returned value."""
    rng = np.random.default_rng(data.draw(SEEDS, label="coefficient_seed"))
    return [rng.uniform(-1.0, 1.0, np.shape(v)).astype(np.float32).astype(np.float64)
            for v in reference_outputs(case, hard_sigmoid)]


def check_gradients(case, coefficients, *, compiled, device=("cpu", "off"), path_name=None):
    """Keras's gradients of ``L`` for ``case`` equal the reference's; one outcome recorded."""
    __tracebackhide__ = True
    hard_sigmoid = adapter.conventions()["hard_sigmoid"]
    where, tf32 = device
    compiled_as = (path_name or COMPILED_PATHS[0]) if compiled else False
    path = (f"compiled gradient ({compiled_as})" if compiled else "eager gradient") + f" on {where}"
    atol, rtol = tolerance(device=where, tf32=TF32_TABLE_KEY[tf32], quantity="gradient")
    entry = divergence_for(case)
    touched_id = None
    if entry is not None and "model" in entry:
        _, touched = touched_values(case, hard_sigmoid, entry)
        if any(np.any(t) for t in touched):
            coefficients = [np.where(t, 0.0, c) for t, c in zip(touched, coefficients)]
            touched_id = entry["id"]
            path += f"; only the values untouched by {entry['id']!r} weighted"
    expected = reference_gradients(case, hard_sigmoid, coefficients)

    def run():
        with adapter.tf32_policy(tf32):
            return run_gradients(case, coefficients, compiled=compiled_as, device=where)
    raising = entry if entry is not None and "raises" in entry else None
    actual = call_unless_listed_crash(raising, run, what="the gradient call")
    if actual is None:
        return      # raised as the listed divergence says (recorded by call_unless_listed_crash)
    assert_gradients(case, actual, expected, coefficients, atol=atol, rtol=rtol, path=path)
    if touched_id is not None:
        outcomes.asserted_model(touched_id)
    else:
        outcomes.asserted_formulas()


def assert_gradients(case, actual, expected, coefficients, *, atol, rtol, path):
    """Each named gradient equal within ``atol + rtol * |reference|``, elementwise; a failure says
    which gradient, where, by how much, and prints a reproducer."""
    __tracebackhide__ = True
    problem = None
    if len(actual) != len(expected):
        problem = f"returned {len(actual)} gradients, expected {len(expected)} ({', '.join(n for n, _ in expected)})"
    else:
        for (name, e), a in zip(expected, actual):
            a, e = np.asarray(a, np.float64), np.asarray(e, np.float64)
            if a.shape != e.shape:
                problem = f"dL/d {name}.shape={a.shape}, but should be {e.shape}"
                break
            excess = np.abs(a - e) - (atol + rtol * np.abs(e))
            if a.size and (not np.all(np.isfinite(a)) or excess.max() > 0):
                idx = np.unravel_index(np.nanargmax(np.where(np.isfinite(a), excess, np.inf)), a.shape)
                problem = (f"dL/d {name}{list(int(i) for i in idx)}={a[idx]:.7g}, but should be {e[idx]:.7g} "
                           f"(|diff|={abs(a[idx] - e[idx]):.2e} > atol {atol:g} + rtol {rtol:g}; "
                           f"max |diff| over dL/d {name} {np.nanmax(np.abs(a - e)):.2e})")
                others = [n for (n, ee), aa in zip(expected, actual)
                          if np.size(ee) and np.max(np.abs(np.asarray(aa) - ee) - (atol + rtol * np.abs(ee))) > 0]
                problem += f"; gradients that differ: {', '.join(others)}"
                break
    if problem:
        raise AssertionError(f"{problem} [{path}]\n  config: {describe(case)}\n\n"
                             f"Reproducer (numpy + keras):\n{gradient_reproducer(case, coefficients, expected)}")


def gradient_reproducer(case, coefficients, expected):
    """The forward reproducer, then the loss and its gradient on the backend under test."""
    hard_sigmoid = adapter.conventions()["hard_sigmoid"]
    lines = [reproducer(case, reference_outputs(case, hard_sigmoid)), ""]
    call = "layer(x" + (", mask=mask" if case.mask is not None else "") + \
        (", initial_state=initial_state" if case.initial_state is not None else "") + ")"
    body = ["# the loss L = sum(c * value) over every returned value, and its gradient",
            "coefficients = [" + ", ".join(f"np.array({np.asarray(c, np.float32).tolist()!r}, dtype='float32')"
                                           for c in coefficients) + "]"]
    if adapter.BACKEND == "tensorflow":
        body += ["import tensorflow as tf",
                 "x = tf.constant(x)",
                 "with tf.GradientTape() as tape:",
                 "    tape.watch(x)",
                 f"    out = {call}",
                 "    out = list(out) if isinstance(out, (list, tuple)) else [out]",
                 "    loss = sum(tf.reduce_sum(c * o) for c, o in zip(coefficients, out))",
                 "grads = tape.gradient(loss, list(layer.weights) + [x])"]
    elif adapter.BACKEND == "torch":
        body += ["import torch",
                 "x = torch.tensor(x, requires_grad=True)",
                 f"out = {call}",
                 "out = list(out) if isinstance(out, (list, tuple)) else [out]",
                 "loss = sum((torch.tensor(c) * o).sum() for c, o in zip(coefficients, out))",
                 "grads = torch.autograd.grad(loss, [w.value for w in layer.weights] + [x])"]
    else:
        body += ["import jax",
                 "def loss(weights, x):",
                 f"    out, _ = layer.stateless_call(weights, [], {call[len('layer('):-1]})",
                 "    out = list(out) if isinstance(out, (list, tuple)) else [out]",
                 "    return sum((c * o).sum() for c, o in zip(coefficients, out))",
                 "d_weights, d_x = jax.grad(loss, argnums=(0, 1))([w.value for w in layer.weights], x)",
                 "grads = list(d_weights) + [d_x]"]
    body += ["# float64 gradients of the documented formulas (rnnspec reference/gradients.py):",
             "expected = {" + ", ".join(f"{n!r}: np.array({np.asarray(e).tolist()!r})" for n, e in expected) + "}",
             f"for name, g in zip({gradient_names(case)[:len(case.weights) + 1]!r}, grads):",
             "    print('dL/d', name, 'max |keras - formula| =', np.max(np.abs(np.asarray(g, 'float64') - expected[name])))"]
    return "\n".join(lines) + "\n".join("    " + b for b in body)


@pytest.mark.parametrize("device,entry", pool_params("xla"))
@given(data=st.data())
@settings(max_examples=examples_per_entry(1, "xla"))
def test_layer_gradients_match_reference(device, entry, data):
    """A single SimpleRNN/LSTM/GRU layer: the compiled gradient matches the reference's BPTT.

    Over the pairs-only pool (``xla`` in ``spec/pool.py``, every pair of flag values in 29
    graph shapes): tracing a gradient graph costs about 0.6 s on TF CPU, so the 59 entries of
    the ``single`` pool would cost 35 s of a ci run; the eager property below draws every
    flag independently, Bidirectional included."""
    case = data.draw(pool_cases(entry), label="case")
    check_gradients(case, draw_coefficients(data, case, adapter.conventions()["hard_sigmoid"]),
                    compiled=True, device=device)


@given(data=st.data(), case=cases())
@settings(max_examples=scaled_examples(1))
def test_eager_gradients_match_reference(data, case):
    """The eager gradient, every flag drawn independently (Bidirectional with every merge mode too)."""
    check_gradients(case, draw_coefficients(data, case, adapter.conventions()["hard_sigmoid"]), compiled=False)
