"""Chapter 5b -- initializers, regularizers and constraints.

SimpleRNN, LSTM and GRU document three arguments per weight -- ``kernel``,
``recurrent_kernel`` and ``bias`` -- and one for their output:

- ``kernel_initializer`` ("Initializer for the `kernel` weights matrix ...
  Default: `"glorot_uniform"`"), ``recurrent_initializer`` ("... for the
  `recurrent_kernel` weights matrix ... Default: `"orthogonal"`") and
  ``bias_initializer`` ("Default: `"zeros"`") fill the weight with what the
  initializer names: ``Zeros``, ``Ones``, ``Constant(v)`` fill it with 0, 1, v;
  ``GlorotUniform`` draws from U(-limit, limit), limit = sqrt(6 / (fan_in +
  fan_out)), fan_in and fan_out the weight's two dimensions; ``Orthogonal(gain)``
  gives gain times a matrix with orthonormal rows when it has fewer rows than
  columns, and orthonormal columns otherwise ("If the matrix has fewer rows than
  columns then the output will have orthogonal rows"). The recurrent kernel
  (units, G*units) is one matrix: it has orthonormal rows, its gate blocks are
  not each orthogonal (the docstring names the weights matrix, not its blocks).
  A seeded initializer (``seed=s``) gives the same weights in two fresh layers.
  LSTM's ``unit_forget_bias=True`` "add[s] 1 to the bias of the forget gate at
  initialization. Setting it to `True` will also force
  `bias_initializer="zeros"`": the bias is then zeros with ones in the forget
  block, whatever ``bias_initializer`` says.
- ``kernel_regularizer``, ``recurrent_regularizer`` and ``bias_regularizer``
  add ``l1 * sum(|w|) + l2 * sum(w^2)`` of their weight to ``layer.losses``
  (``L1``, ``L2``, ``L1L2``; ``reference/regularizers.py``), one loss per
  regularized weight, in the weights' order.
- ``activity_regularizer`` ("Regularizer function applied to the output of the
  layer (its "activation")") adds the penalty of each tensor the call returns
  (the output, and each final state with ``return_state``) to ``layer.losses``.
  Whether that penalty is divided by the batch size the docstrings do not say:
  it is a version convention (``activity_regularizer_reduction`` in
  ``spec/data/conventions.toml``).
- ``kernel_constraint``, ``recurrent_constraint`` and ``bias_constraint``
  (``NonNeg``, ``MaxNorm(m, axis=0)``, ``UnitNorm(axis=0)``, ``MinMaxNorm``)
  hold after an optimizer step: one ``train_on_batch`` with plain SGD (chapter
  2c's machinery) leaves each constrained weight at ``constraint(w - lr *
  dL/dw)``, computed in float64 by the reference.

Each argument is drawn for the layers and for their cells inside ``RNN``
(``RNN(LSTMCell(..., kernel_regularizer=...))``): the cells document the same
arguments for the same weights.

The sizes are small: initializers run once per new shape (the orthogonal one a
QR decomposition, which JAX compiles per shape), and each constrained model is
compiled once and reused.
"""

from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st

from rnnspec.reference.regularizers import constrain, norms, penalty
from rnnspec.spec import adapter, outcomes
from rnnspec.spec import test_training as training_chapter
from rnnspec.spec.assertions import tolerance
from rnnspec.spec.cases import Case, LayerConfig, random_weights, reference_outputs
from rnnspec.spec.divergence_models import unit_forget_bias_keeps_bias_initializer
from rnnspec.spec.profiles import scaled_examples
from rnnspec.spec.divergences import listed
from rnnspec.spec.runners import _cached
from rnnspec.spec.strategies import KINDS, SEEDS

ARGUMENTS = ("kernel", "recurrent", "bias")
WEIGHT_OF = {"kernel": 0, "recurrent": 1, "bias": 2}
GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}
#: one float32 rounding (2^-23 relative)
FLOAT32_ULP = 2.0 ** -23
UNIT_FORGET_BIAS_FINDING = "lstm-unit-forget-bias-keeps-bias-initializer"
SIMPLE_RNN_ACTIVITY_FINDING = "keras3-simple-rnn-drops-activity-regularizer"
SEED_ZERO_FINDING = "keras30-initializer-seed-zero-is-unseeded"


_finding = listed


VIAS = ("layer", "cell")


def _recurrent(kind, units, via, **kwargs):
    """``SimpleRNN/LSTM/GRU(units, **kwargs)``, or (``via="cell"``) ``RNN`` around the kind's cell built
    with the same arguments: the cells document the same weight arguments and hold the same weights."""
    if via == "cell":
        return adapter.rnn_layer(adapter.make_cell(kind, units, **kwargs))
    return adapter.make_layer(kind, units, **kwargs)


def _class_name(kind, via):
    return adapter.CELL_CLASSES[kind] if via == "cell" else adapter.LAYER_CLASSES[kind]


def _flags(kind, unit_forget_bias):
    return {"unit_forget_bias": unit_forget_bias} if kind == "lstm" else {}


# --------------------------------------------------------------------------- initializers

@st.composite
def initializer_draws(draw):
    kind = draw(st.sampled_from(KINDS), label="kind")
    via = draw(st.sampled_from(VIAS), label="via")
    argument = draw(st.sampled_from(ARGUMENTS), label="argument")
    names = ("default", "zeros", "ones", "constant") + (("glorot_uniform", "orthogonal") if argument != "bias" else ())
    name = draw(st.sampled_from(names), label="initializer")
    params = {}
    if name == "constant":
        params["value"] = float(np.float32(draw(st.floats(-2, 2, allow_nan=False, width=32), label="value")))
    if name in ("glorot_uniform", "orthogonal"):
        params["seed"] = draw(st.integers(0, 2**16), label="seed")
    if name == "orthogonal":
        params["gain"] = draw(st.sampled_from((1.0, 0.5, 2.0)), label="gain")
    return dict(kind=kind, via=via, argument=argument, name=name, params=params,
                units=draw(st.integers(1, 3), label="units"), features=draw(st.integers(1, 2), label="features"),
                unit_forget_bias=draw(st.booleans(), label="unit_forget_bias"))


def _initialized(d):
    """A fresh layer built with the drawn initializer for its argument and "zeros" for the others."""
    kwargs = {f"{a}_initializer": "zeros" for a in ARGUMENTS if a != d["argument"]}
    if d["name"] != "default":
        kwargs[f"{d['argument']}_initializer"] = adapter.initializer(d["name"], **d["params"])
    layer = _recurrent(d["kind"], d["units"], d.get("via", "layer"), **kwargs, **_flags(d["kind"], d["unit_forget_bias"]))
    adapter.build(layer, None, d["features"])
    return adapter.get_weights(layer)[WEIGHT_OF[d["argument"]]]


def _documented_name(d):
    if d["name"] != "default":
        return d["name"]
    return {"kernel": "glorot_uniform", "recurrent": "orthogonal", "bias": "zeros"}[d["argument"]]


def _every_argument_once(test):
    """An explicit example per class and initializer argument ("ones"; the other two get "zeros"), so
    that every class passes each argument two different values in every profile (the argument
    coverage of spec/arguments.py); the LSTM bias one runs the unit_forget_bias finding."""
    for kind in KINDS:
        for via in VIAS:
            for argument in ARGUMENTS:
                test = example(d=dict(kind=kind, via=via, argument=argument, name="ones", params={}, units=2,
                                      features=1, unit_forget_bias=True))(test)
    return test


@given(d=initializer_draws())
@_every_argument_once
@settings(max_examples=scaled_examples(1))
def test_initializer_arguments_produce_what_they_name(d):
    """Each ``*_initializer`` fills its weight as its initializer documents (zeros, ones, Constant(v),
    GlorotUniform's limit, Orthogonal's orthonormal rows or columns times gain; a seed repeats)."""
    w = _initialized(d)
    name, params = _documented_name(d), d["params"]
    where = f"{_class_name(d['kind'], d.get('via', 'layer'))}({d['units']}, {d['argument']}_initializer={d['name']}{params or ''}" + (
        f", unit_forget_bias={d['unit_forget_bias']}" if d["kind"] == "lstm" else "") + f") on {d['features']} features"
    if name in ("zeros", "ones", "constant"):
        value = {"zeros": 0.0, "ones": 1.0}.get(name, params.get("value"))
        expected = np.full(w.shape, value)
        forget = d["kind"] == "lstm" and d["argument"] == "bias" and d["unit_forget_bias"]
        if forget:   # the docstring: ones in the forget block, and bias_initializer forced to zeros
            expected = unit_forget_bias_keeps_bias_initializer(d["units"], 0.0)
            entry = _finding(UNIT_FORGET_BIAS_FINDING) if value != 0.0 else None
            if entry is not None:
                modelled = unit_forget_bias_keeps_bias_initializer(d["units"], value)
                if np.array_equal(w, expected):
                    raise outcomes.DivergenceFixed(
                        f"fixed in this environment: {entry['id']!r}, but {where} gives the documented bias "
                        f"{w.tolist()}; remove the entry from spec/data/divergences.toml")
                assert np.array_equal(w, modelled), (
                    f"bias={w.tolist()}: neither the documented {expected.tolist()} nor the model of "
                    f"{entry['id']!r} {modelled.tolist()} [{where}]")
                outcomes.asserted_model(entry["id"])
                return
        assert np.array_equal(w, expected), f"weights={w.tolist()}, but should be {expected.tolist()} [{where}]"
    elif name == "glorot_uniform":
        limit = np.sqrt(6.0 / (w.shape[0] + w.shape[1]))
        assert np.all(np.abs(w) <= limit * (1 + FLOAT32_ULP)), (
            f"max |w|={np.abs(w).max():.7g} is outside GlorotUniform's limit sqrt(6/({w.shape[0]}+{w.shape[1]}))"
            f"={limit:.7g} [{where}]")
    else:
        gain = params.get("gain", 1.0)
        gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
        err = np.abs(gram - gain ** 2 * np.eye(gram.shape[0])).max()
        # float32 QR and matmul: a few float32 roundings per entry of the Gram matrix
        assert err <= 1e-5 * gain ** 2, (
            f"{'w w^T' if w.shape[0] <= w.shape[1] else 'w^T w'} differs from {gain}^2 I by {err:.3g} "
            f"(shape {w.shape}): not orthogonal {'rows' if w.shape[0] <= w.shape[1] else 'columns'} [{where}]")
    if "seed" in params:
        again = _initialized(d)
        entry = _finding(SEED_ZERO_FINDING) if params["seed"] == 0 else None
        if entry is not None and not np.array_equal(w, again):
            # its model: seed=0 is an unseeded initializer, so two fresh layers may differ (two
            # unseeded draws can still agree, e.g. an Orthogonal 1x1 of +-gain: then the example
            # equals the documented behavior and is asserted as such)
            outcomes.asserted_model(entry["id"])
            return
        assert np.array_equal(w, again), f"two fresh layers with seed={params['seed']} differ [{where}]"
    outcomes.asserted_formulas()


# --------------------------------------------------------------------------- regularizers

FACTORS = st.floats(1e-3, 1.0, allow_nan=False).map(lambda f: float(np.float32(f)))


@st.composite
def regularizer_factors(draw, label):
    """None, or ``(l1, l2)`` with the factors of L1, L2 or L1L2."""
    which = draw(st.sampled_from(("none", "l1", "l2", "l1l2")), label=label)
    if which == "none":
        return None
    l1 = draw(FACTORS) if which in ("l1", "l1l2") else 0.0
    l2 = draw(FACTORS) if which in ("l2", "l1l2") else 0.0
    return l1, l2


def _regularizer(factors):
    return None if factors is None else adapter.regularizer(*factors)


def _assert_losses(actual, expected, names, where):
    __tracebackhide__ = True
    atol, rtol = tolerance()
    assert len(actual) == len(expected), (
        f"layer.losses has {len(actual)} entries {actual}, but should have {len(expected)} ({', '.join(names)}) [{where}]")
    for name, a, e in zip(names, actual, expected):
        assert abs(a - e) <= atol + rtol * abs(e), (
            f"loss of {name} = {a:.7g}, but should be {e:.7g} (|diff| {abs(a - e):.2e}) [{where}]")


def _two_regularizers_each(test):
    """Two explicit examples per layer and cell, each argument regularized differently in the two (the
    argument coverage of spec/arguments.py: a class passes each argument two different values)."""
    for kind in KINDS:
        for via in VIAS:
            for kernel, recurrent, bias in (((0.5, 0.0), (0.0, 0.25), (0.125, 0.5)), ((0.0, 0.5), None, (0.25, 0.0))):
                test = example(kind=kind, via=via, units=2, features=2, use_bias=True, kernel=kernel,
                               recurrent=recurrent, bias=bias, seed=1)(test)
    return test


@given(kind=st.sampled_from(KINDS), via=st.sampled_from(VIAS), units=st.integers(1, 4), features=st.integers(1, 3),
       use_bias=st.booleans(), kernel=regularizer_factors("kernel_regularizer"),
       recurrent=regularizer_factors("recurrent_regularizer"), bias=regularizer_factors("bias_regularizer"),
       seed=SEEDS)
@_two_regularizers_each
@settings(max_examples=scaled_examples(0.5))
def test_weight_regularizers_add_their_penalty_to_losses(kind, via, units, features, use_bias, kernel, recurrent, bias,
                                                         seed):
    """Each weight regularizer adds ``l1 * sum(|w|) + l2 * sum(w^2)`` of its weight to ``layer.losses``
    (of the layer, or of ``RNN`` around the cell that holds them)."""
    factors = {"kernel": kernel, "recurrent": recurrent, "bias": bias}
    layer = _recurrent(kind, units, via, use_bias=use_bias, kernel_initializer="zeros",
                       recurrent_initializer="zeros",
                       **{f"{a}_regularizer": _regularizer(f) for a, f in factors.items()})
    adapter.build(layer, None, features)
    weights = random_weights(LayerConfig(kind=kind, units=units, use_bias=use_bias), features,
                             np.random.default_rng(seed))
    adapter.set_weights(layer, weights)
    regularized = [(a, i) for i, a in enumerate(ARGUMENTS[:len(weights)]) if factors[a] is not None]
    expected = [penalty(weights[i], *factors[a]) for a, i in regularized]
    where = f"{_class_name(kind, via)}({units}, use_bias={use_bias}) regularizers {factors}"
    _assert_losses(adapter.layer_losses(layer), expected, [f"{a} ({factors[a]})" for a, _ in regularized], where)
    outcomes.asserted_formulas()


@given(kind=st.sampled_from(KINDS), units=st.integers(2, 3), batch=st.sampled_from((1, 3)),
       return_sequences=st.booleans(), return_state=st.booleans(),
       factors=regularizer_factors("activity_regularizer").filter(lambda f: f is not None), seed=SEEDS)
@settings(max_examples=scaled_examples(0.5))
def test_activity_regularizer_penalizes_each_returned_tensor(kind, units, batch, return_sequences, return_state,
                                                             factors, seed):
    """``activity_regularizer`` adds the penalty of each returned tensor to ``layer.losses``, divided
    by the batch size where the version's convention says so."""
    reduction = adapter.conventions()["activity_regularizer_reduction"]
    config = LayerConfig(kind=kind, units=units, return_sequences=return_sequences, return_state=return_state)
    features, timesteps = 2, 3
    rng = np.random.default_rng(seed)
    case = Case(config, features, random_weights(config, features, rng),
                rng.uniform(-1, 1, (batch, timesteps, features)).astype(np.float32).astype(np.float64))
    layer = adapter.make_layer(kind, units, activity_regularizer=adapter.regularizer(*factors),
                               **config.keras_kwargs(), kernel_initializer="zeros", recurrent_initializer="zeros")
    adapter.build(layer, None, features)
    adapter.set_weights(layer, case.weights)
    adapter.call(layer, case.x)
    outputs = reference_outputs(case, adapter.conventions()["hard_sigmoid"])
    scale = 1.0 / batch if reduction == "batch_mean" else 1.0
    expected = [penalty(o, *factors) * scale for o in outputs]
    names = ["output"] + [f"state {i}" for i in range(len(outputs) - 1)]
    where = (f"{config.one_line(features)} batch={batch} activity_regularizer={factors}, "
             f"reduction {reduction!r} (conventions.toml)")
    actual = adapter.layer_losses(layer)
    entry = _finding(SIMPLE_RNN_ACTIVITY_FINDING) if kind == "simple_rnn" else None
    if entry is not None:   # its model: no activity loss at all
        if actual and len(actual) == len(expected):
            _assert_losses(actual, expected, names, where)
            raise outcomes.DivergenceFixed(f"fixed in this environment: {entry['id']!r}, but {where} adds the "
                                           f"documented losses; remove the entry from spec/data/divergences.toml")
        assert actual == [], (f"layer.losses={actual}: neither the documented {expected} nor the model of "
                              f"{entry['id']!r} (no loss) [{where}]")
        outcomes.asserted_model(entry["id"])
        return
    _assert_losses(actual, expected, names, where)
    outcomes.asserted_formulas()


# --------------------------------------------------------------------------- constraints

#: constraint schemes: (kernel, recurrent, bias), each ``(name, params)`` or None; every argument
#: takes at least two different constraints across the schemes
SCHEMES = (
    (("max_norm", {"max_value": 0.5, "axis": 0}), ("unit_norm", {"axis": 0}), ("non_neg", {})),
    (("non_neg", {}), ("min_max_norm", {"min_value": 0.8, "max_value": 1.2, "rate": 0.5, "axis": 0}),
     ("max_norm", {"max_value": 0.3, "axis": 0})),
    (("min_max_norm", {"min_value": 0.2, "max_value": 0.4, "rate": 1.0, "axis": 0}), None,
     ("unit_norm", {"axis": 0})),
)
UNITS, FEATURES, TIMESTEPS, BATCH, HEAD = 2, 2, 3, 2, 1
_MODELS = OrderedDict()


def _constrained_model(kind, scheme, via="layer"):
    def build():
        kwargs = {f"{a}_constraint": None if c is None else adapter.constraint(c[0], **c[1])
                  for a, c in zip(ARGUMENTS, SCHEMES[scheme])}
        layer = _recurrent(kind, UNITS, via, kernel_initializer="zeros", recurrent_initializer="zeros", **kwargs)
        adapter.build(layer, None, FEATURES)
        return adapter.training_model(layer, timesteps=TIMESTEPS, features=FEATURES, head_units=HEAD, masking=False)
    return _cached(_MODELS, (kind, scheme, via), build)


def _constraint_bound(name, params, pre, pre_bound, post):
    """How far float32 Keras may be from the float64 ``post = constraint(pre)``, given ``pre`` is
    known to ``pre_bound`` elementwise: NonNeg is elementwise (the same bound); a norm constraint
    scales each column by desired/n, whose Jacobian has norm <= max(1, desired/n), so the column's
    perturbation norm, doubled, plus one float32 rounding per operation and Keras's fuzz factor
    (1e-7 added to n)."""
    if name == "non_neg":
        return pre_bound
    n = norms(pre, params.get("axis", 0))
    post_n = norms(post, params.get("axis", 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.where(n > 0, np.maximum(1.0, post_n / np.where(n > 0, n, 1.0)), 1.0)
        fuzz = np.where(n > 0, np.abs(post) * 1e-7 / np.where(n > 0, n, 1.0), 0.0)
    spread = np.sqrt(np.sum(pre_bound ** 2, axis=params.get("axis", 0), keepdims=True))
    return 2 * gain * spread + 8 * FLOAT32_ULP * np.abs(post) + 2 * fuzz


def _two_schemes_each(test):
    """Two explicit examples per layer and cell, in schemes 0 and 1, which constrain every argument
    differently (the argument coverage of spec/arguments.py)."""
    for kind in KINDS:
        for via in VIAS:
            for scheme in (0, 1):
                test = example(kind=kind, via=via, scheme=scheme, learning_rate=1.0, seed=scheme)(test)
    return test


@given(kind=st.sampled_from(KINDS), via=st.sampled_from(VIAS), scheme=st.integers(0, len(SCHEMES) - 1),
       learning_rate=st.sampled_from([0.1, 1.0]), seed=SEEDS)
@_two_schemes_each
@settings(max_examples=scaled_examples(0.3))
def test_constraints_hold_after_one_sgd_step(kind, via, scheme, learning_rate, seed):
    """After one ``train_on_batch`` with SGD, each constrained weight (of the layer, or of the cell
    inside ``RNN``) is ``constraint(w - lr * dL/dw)`` and every other weight ``w - lr * dL/dw``."""
    hard_sigmoid = adapter.conventions()["hard_sigmoid"]
    config = LayerConfig(kind=kind, units=UNITS)
    rng = np.random.default_rng(seed)
    case = Case(config, FEATURES, random_weights(config, FEATURES, rng),
                rng.uniform(-1, 1, (BATCH, TIMESTEPS, FEATURES)).astype(np.float32).astype(np.float64))
    head = [(rng.standard_normal((UNITS, HEAD)) / np.sqrt(UNITS)).astype(np.float32).astype(np.float64),
            rng.uniform(-0.5, 0.5, HEAD).astype(np.float32).astype(np.float64)]
    y = rng.uniform(-1.0, 1.0, (BATCH, HEAD)).astype(np.float32).astype(np.float64)
    before, stepped, grads, y, _ = training_chapter.expected_step(case, head, y, learning_rate, hard_sigmoid, None)
    actual = adapter.sgd_train_step(_constrained_model(kind, scheme, via), before, case.x, y, learning_rate)
    atol, rtol = tolerance(quantity="gradient")
    constraints = list(SCHEMES[scheme]) + [None, None]
    names = ["kernel", "recurrent_kernel", "bias", "dense kernel", "dense bias"]
    assert len(actual) == len(stepped), f"the model has {len(actual)} weights, expected {len(stepped)}"
    for name, a, pre, g, c in zip(names, actual, stepped, grads, constraints):
        pre_bound = learning_rate * (atol + rtol * np.abs(g)) + FLOAT32_ULP * np.abs(pre)
        expected, bound = pre, pre_bound
        if c is not None:
            expected = constrain(c[0], pre, **c[1])
            bound = _constraint_bound(c[0], c[1], pre, pre_bound, expected)
        excess = np.abs(np.asarray(a) - expected) - bound
        if np.asarray(a).shape != expected.shape or not np.all(np.isfinite(a)) or excess.max() > 0:
            idx = np.unravel_index(np.argmax(excess), expected.shape)
            raise AssertionError(
                f"after one SGD step (learning_rate={learning_rate}) {name}{[int(i) for i in idx]}="
                f"{np.asarray(a)[idx]:.7g}, but should be {expected[idx]:.7g} = "
                f"{c[0] if c else 'no constraint'}{c[1] if c else ''} of w - lr*g = {pre[idx]:.7g} "
                f"(|diff| {abs(np.asarray(a)[idx] - expected[idx]):.2e} > {bound[idx]:.2e}) "
                f"[{adapter.LAYER_CLASSES[kind]}({UNITS}) -> Dense({HEAD}), constraints {SCHEMES[scheme]}]")
    outcomes.asserted_formulas()
