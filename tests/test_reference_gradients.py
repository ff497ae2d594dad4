"""The analytic gradients of ``reference/gradients.py`` against finite differences of the forward pass.

- Random directional derivatives (as ``torch.autograd.gradcheck``'s fast
  mode): for a random direction ``v`` over every input that has a gradient
  (weights, x, initial states), ``<grad L, v>`` equals the central
  difference ``(L(p + eps v) - L(p - eps v)) / 2 eps`` of the float64 forward
  pass. Drawn by Hypothesis over every option the forward reference has:
  SimpleRNN/LSTM/GRU, both ``reset_after``, every activation and both
  ``hard_sigmoid`` conventions, bias or not, masks (right/left padded, holes,
  fully masked rows) with both ``zero_output_for_mask``, go_backwards,
  initial states, return_sequences/return_state, Bidirectional with every
  merge mode (through ``rnnspec.spec.cases.reference_gradients``, the bridge the
  Keras property uses), and stacks.
- Full gradients on tiny cases: every entry of every gradient against its
  own central difference.
- The check has power: a gradient with one deliberately wrong formula fails it.

Kinks (relu at 0, hard_sigmoid at its clip points) have measure zero: drawn
values land within ``eps`` of one with probability ~1e-6 per value.
"""

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import rnnspec.reference.activations as activations
from rnnspec.reference.activations import ACTIVATION_NAMES, activation, derivative
from rnnspec.reference.cells import CellSpec
from rnnspec.reference.gradients import (bidirectional_gradients, layer_gradients, stack_gradients,
                                 weighted_sum)
from rnnspec.reference.layer import run_bidirectional, run_layer, run_stack
from rnnspec.reference.structure import weight_shapes
from rnnspec.spec.cases import gradient_names, reference_gradients, reference_outputs
from rnnspec.spec.strategies import MASK_KINDS, cases, layer_configs, masks

_PROFILE_LOADED = settings.default.max_examples != settings.get_profile("default").max_examples
FAST = settings(deadline=None) if _PROFILE_LOADED else settings(max_examples=50, deadline=None)

EPS = 1e-6
RTOL = 1e-6     # central differences in float64 at eps 1e-6: truncation ~1e-12, rounding ~1e-10


def close(analytic, numeric, what):
    scale = max(1.0, abs(numeric))
    assert abs(analytic - numeric) <= RTOL * scale, (
        f"{what}: analytic {analytic:.12g}, central difference {numeric:.12g} "
        f"(|diff| {abs(analytic - numeric):.2e})")


def central_difference(loss, params, direction, eps=EPS):
    """(L(p + eps v) - L(p - eps v)) / (2 eps) for lists of arrays ``params`` and ``direction``."""
    plus = [p + eps * v for p, v in zip(params, direction)]
    minus = [p - eps * v for p, v in zip(params, direction)]
    return (loss(plus) - loss(minus)) / (2 * eps)


def directional_check(loss, params, grads, rng, names, what=""):
    """``<grads, v>`` against the central difference for a random direction ``v``, and
    for each named input alone (so a failure says which gradient is wrong)."""
    direction = [rng.standard_normal(np.shape(p)) for p in params]
    analytic = sum(float(np.sum(g * v)) for g, v in zip(grads, direction))
    try:
        close(analytic, central_difference(loss, params, direction), f"{what} all inputs")
    except AssertionError:
        for i, name in enumerate(names):   # name the gradient that differs
            only = [v if j == i else np.zeros_like(v) for j, v in enumerate(direction)]
            close(float(np.sum(grads[i] * direction[i])), central_difference(loss, params, only),
                  f"{what} gradient {name!r}")
        raise


def coefficients_like(values, rng):
    return [rng.uniform(-1.0, 1.0, np.shape(v)) for v in values]


# --------------------------------------------------------------------------- activations

@pytest.mark.parametrize("name", ACTIVATION_NAMES)
@pytest.mark.parametrize("convention", ["keras2", "keras3"])
def test_activation_derivatives(name, convention):
    x = np.linspace(-4.0, 4.0, 161) + 0.0123   # off the kinks (0, +-2.5, +-3)
    f, df = activation(name, convention), derivative(name, convention)
    numeric = (f(x + EPS) - f(x - EPS)) / (2 * EPS)
    np.testing.assert_allclose(df(x), numeric, rtol=1e-6, atol=1e-8)


def test_unknown_activation_has_no_derivative():
    with pytest.raises(ValueError):
        derivative("softsign")


# --------------------------------------------------------------------------- a Case, every option

def _case_params(case):
    return [*case.weights, case.x, *(case.initial_state or [])]


def _with_params(case, params):
    nw = len(case.weights)
    init = list(params[nw + 1:]) if case.initial_state is not None else None
    return replace(case, weights=list(params[:nw]), x=params[nw], initial_state=init)


def _check_case(case, convention, seed, what="", zero_output_override=None):
    rng = np.random.default_rng(seed)
    coefs = coefficients_like(reference_outputs(case, convention), rng)
    grads = [g for _, g in reference_gradients(case, convention, coefs)]
    names = gradient_names(case)
    assert len(grads) == len(_case_params(case)) == len(names)
    for g, p in zip(grads, _case_params(case)):
        assert np.shape(g) == np.shape(p)

    def loss(params):
        return weighted_sum(reference_outputs(_with_params(case, params), convention), coefs)
    directional_check(loss, _case_params(case), grads, rng, names, what=what or case.config.one_line())


@given(case=cases(), convention=st.sampled_from(["keras2", "keras3"]), seed=st.integers(0, 2**32 - 1))
@FAST
def test_case_gradients_match_central_differences(case, convention, seed):
    """Every configuration the equivalence properties draw (single layers and Bidirectional)."""
    _check_case(case, convention, seed)


@given(config=layer_configs(bidirectional=True), data=st.data(), seed=st.integers(0, 2**32 - 1))
@FAST
def test_bidirectional_gradients_match_central_differences(config, data, seed):
    """Bidirectional, every merge mode, with masks and initial states."""
    case = data.draw(cases(configs=st.just(config)))
    _check_case(case, "keras3", seed)


# --------------------------------------------------------------------------- one layer, every coefficient

@st.composite
def layer_setups(draw):
    kind = draw(st.sampled_from(["simple_rnn", "lstm", "gru"]))
    spec = CellSpec(kind=kind, units=draw(st.integers(1, 3)),
                    activation=draw(st.sampled_from(ACTIVATION_NAMES)),
                    recurrent_activation=draw(st.sampled_from(ACTIVATION_NAMES)),
                    use_bias=draw(st.booleans()), reset_after=draw(st.booleans()),
                    hard_sigmoid=draw(st.sampled_from(["keras2", "keras3"])))
    features, batch, timesteps = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 5))
    mask = draw(masks(batch, timesteps, kinds=MASK_KINDS))
    options = dict(go_backwards=draw(st.booleans()), zero_output_for_mask=draw(st.booleans()))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shapes = weight_shapes(kind, spec.units, features, use_bias=spec.use_bias, reset_after=spec.reset_after)
    weights = [rng.uniform(-1.0, 1.0, s) for _, s in shapes]
    if not spec.use_bias:
        weights.append(None)
    x = rng.uniform(-1.0, 1.0, (batch, timesteps, features))
    init = [rng.uniform(-0.5, 0.5, (batch, spec.units)) for _ in range(spec.n_states)] \
        if draw(st.booleans()) else None
    return spec, weights, x, init, mask, options, rng


@given(setup=layer_setups())
@FAST
def test_layer_gradients_with_every_coefficient(setup):
    """``layer_gradients`` with the sequence, the last output and every state weighted at once."""
    spec, weights, x, init, mask, options, rng = setup
    has_bias = weights[2] is not None
    result = run_layer(spec, x, *weights, initial_state=init, mask=mask, **options)
    d_seq, d_last, *d_states = coefficients_like([result.sequence, result.last_output, *result.states], rng)
    g = layer_gradients(spec, x, *weights, initial_state=init, mask=mask, **options,
                        d_sequence=d_seq, d_last=d_last, d_states=d_states)
    names = ["kernel", "recurrent_kernel"] + (["bias"] if has_bias else []) + ["x"]
    params = [w for w in weights if w is not None] + [x]
    grads = [g[n] for n in names]
    if init is not None:
        names += [f"initial_state {i}" for i in range(len(init))]
        params += list(init)
        grads += g["initial_state"]

    nw = 3 if has_bias else 2

    def loss(p):
        w = list(p[:nw]) + ([] if has_bias else [None])
        r = run_layer(spec, p[nw], *w, initial_state=list(p[nw + 1:]) or None, mask=mask, **options)
        return weighted_sum([r.sequence, r.last_output, *r.states], [d_seq, d_last, *d_states])
    directional_check(loss, params, grads, rng, names, what=f"{spec} {options}")


# --------------------------------------------------------------------------- stacks

@given(kind=st.sampled_from(["simple_rnn", "lstm", "gru"]), depth=st.integers(2, 3),
       data=st.data(), seed=st.integers(0, 2**32 - 1))
@FAST
def test_stack_gradients_match_central_differences(kind, depth, data, seed):
    """``run_stack``: each layer's dL/dx is the gradient of the sequence the layer below returned."""
    rng = np.random.default_rng(seed)
    batch, timesteps, features = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 4)), 2
    mask = data.draw(masks(batch, timesteps))
    layers, width = [], features
    for _ in range(depth):
        spec = CellSpec(kind=kind, units=data.draw(st.integers(1, 3)),
                        activation=data.draw(st.sampled_from(ACTIVATION_NAMES)),
                        reset_after=data.draw(st.booleans()))
        shapes = weight_shapes(kind, spec.units, width, reset_after=spec.reset_after)
        weights = tuple(rng.uniform(-1.0, 1.0, s) for _, s in shapes)
        options = dict(go_backwards=data.draw(st.booleans()), zero_output_for_mask=data.draw(st.booleans()))
        layers.append((spec, weights, options))
        width = spec.units
    x = rng.uniform(-1.0, 1.0, (batch, timesteps, features))
    top = run_stack(layers, x, mask=mask)
    d_seq, d_last, *d_states = coefficients_like([top.sequence, top.last_output, *top.states], rng)
    grads = stack_gradients(layers, x, mask=mask, d_sequence=d_seq, d_last=d_last, d_states=d_states)
    names = [f"layer {n} {w}" for n in range(depth) for w in ("kernel", "recurrent_kernel", "bias")] + ["x"]
    params = [w for _, ws, _ in layers for w in ws] + [x]
    flat = [g[w] for g in grads for w in ("kernel", "recurrent_kernel", "bias")] + [grads[0]["x"]]

    def loss(p):
        rebuilt = [(s, tuple(p[3 * n:3 * n + 3]), o) for n, (s, _, o) in enumerate(layers)]
        r = run_stack(rebuilt, p[-1], mask=mask)
        return weighted_sum([r.sequence, r.last_output, *r.states], [d_seq, d_last, *d_states])
    directional_check(loss, params, flat, rng, names, what=f"stack of {depth} {kind}")


# --------------------------------------------------------------------------- full gradients, tiny cases

def _full_check(loss, params, grads, names):
    for i, (p, g, name) in enumerate(zip(params, grads, names)):
        for idx in np.ndindex(np.shape(p)):
            unit = [np.zeros_like(q) for q in params]
            unit[i][idx] = 1.0
            close(float(g[idx]), central_difference(loss, params, unit), f"d/d {name}{list(idx)}")


@pytest.mark.parametrize("kind,reset_after", [("simple_rnn", True), ("lstm", True), ("gru", True), ("gru", False)])
@pytest.mark.parametrize("merge_mode", [None, "concat", "sum", "mul", "ave"])
def test_full_bidirectional_gradient_on_a_tiny_case(kind, reset_after, merge_mode):
    """Every entry of every gradient of a tiny Bidirectional layer with a mask and initial states."""
    rng = np.random.default_rng(7)
    spec = CellSpec(kind=kind, units=2, reset_after=reset_after)
    shapes = [s for _, s in weight_shapes(kind, 2, 2, reset_after=reset_after)]
    fw = [rng.uniform(-1, 1, s) for s in shapes]
    bw = [rng.uniform(-1, 1, s) for s in shapes]
    x = rng.uniform(-1, 1, (2, 3, 2))
    init_fw = [rng.uniform(-0.5, 0.5, (2, 2)) for _ in range(spec.n_states)]
    init_bw = [rng.uniform(-0.5, 0.5, (2, 2)) for _ in range(spec.n_states)]
    mask = np.array([[True, False, True], [False, True, True]])
    n = spec.n_states

    def outputs(p, return_sequences):
        out, fs, bs = run_bidirectional(spec, p[6], p[0:3], p[3:6], merge_mode=merge_mode,
                                        return_sequences=return_sequences, mask=mask,
                                        initial_state=(p[7:7 + n], p[7 + n:]))
        return (list(out) if merge_mode is None else [out]) + list(fs) + list(bs)

    for return_sequences in (False, True):
        params = fw + bw + [x] + init_fw + init_bw
        coefs = coefficients_like(outputs(params, return_sequences), rng)
        d_out = coefs[:2] if merge_mode is None else coefs[0]
        rest = coefs[2:] if merge_mode is None else coefs[1:]
        g = bidirectional_gradients(spec, x, fw, bw, merge_mode=merge_mode, return_sequences=return_sequences,
                                    mask=mask, initial_state=(init_fw, init_bw), d_output=d_out,
                                    d_forward_states=rest[:n], d_backward_states=rest[n:])
        grads = [g["forward"][w] for w in ("kernel", "recurrent_kernel", "bias")] + \
                [g["backward"][w] for w in ("kernel", "recurrent_kernel", "bias")] + [g["x"]] + \
                g["forward"]["initial_state"] + g["backward"]["initial_state"]
        names = [f"{h} {w}" for h in ("forward", "backward") for w in ("kernel", "recurrent_kernel", "bias")] + \
                ["x"] + [f"forward initial_state {i}" for i in range(n)] + \
                [f"backward initial_state {i}" for i in range(n)]
        _full_check(lambda p: weighted_sum(outputs(p, return_sequences), coefs), params, grads, names)


@pytest.mark.parametrize("kind", ["simple_rnn", "lstm", "gru"])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
def test_full_layer_gradient_on_a_tiny_case(kind, go_backwards, zero_output_for_mask):
    """Every entry, with a mask that holds outputs (a hole, a masked first step, a fully masked row)."""
    rng = np.random.default_rng(3)
    spec = CellSpec(kind=kind, units=2, activation="relu", recurrent_activation="hard_sigmoid",
                    reset_after=False)
    shapes = [s for _, s in weight_shapes(kind, 2, 2, reset_after=False)]
    weights = [rng.uniform(-1, 1, s) for s in shapes]
    x = rng.uniform(-1, 1, (3, 4, 2))
    init = [rng.uniform(-0.5, 0.5, (3, 2)) for _ in range(spec.n_states)]
    mask = np.array([[False, True, False, True], [True, True, False, False], [False] * 4])
    options = dict(mask=mask, go_backwards=go_backwards, zero_output_for_mask=zero_output_for_mask)
    r = run_layer(spec, x, *weights, initial_state=init, **options)
    coefs = coefficients_like([r.sequence, r.last_output, *r.states], rng)
    g = layer_gradients(spec, x, *weights, initial_state=init, **options, d_sequence=coefs[0],
                        d_last=coefs[1], d_states=coefs[2:])

    def loss(p):
        rr = run_layer(spec, p[3], *p[:3], initial_state=p[4:], **options)
        return weighted_sum([rr.sequence, rr.last_output, *rr.states], coefs)
    names = ["kernel", "recurrent_kernel", "bias", "x"] + [f"initial_state {i}" for i in range(spec.n_states)]
    _full_check(loss, weights + [x] + init,
                [g["kernel"], g["recurrent_kernel"], g["bias"], g["x"]] + g["initial_state"], names)


# --------------------------------------------------------------------------- the check can fail

def _fixed_case(kind="lstm", **flags):
    from rnnspec.spec.cases import Case, LayerConfig, random_weights
    rng = np.random.default_rng(11)
    config = LayerConfig(kind=kind, units=3, return_sequences=True, return_state=True, **flags)
    x = rng.uniform(-1, 1, (2, 4, 2))
    init = [rng.uniform(-0.5, 0.5, (2, 3)) for _ in range(config.n_states)]
    mask = np.array([[True, False, True, True], [True, True, True, False]])
    return Case(config=config, features=2, weights=random_weights(config, 2, rng), x=x, mask=mask,
                initial_state=init)


def test_a_wrong_activation_derivative_is_detected(monkeypatch):
    """sigmoid' off by 1%: the directional check fails, and names a gradient."""
    case = _fixed_case("lstm")
    _check_case(case, "keras3", seed=0)    # the right formula passes
    right = activations._DERIVATIVES["sigmoid"]
    monkeypatch.setitem(activations._DERIVATIVES, "sigmoid", lambda x: 1.01 * right(x))
    with pytest.raises(AssertionError, match="gradient 'kernel'"):
        _check_case(case, "keras3", seed=0)


def test_a_wrong_mask_rule_is_detected(monkeypatch):
    """A backward pass that forgets the held outputs (as if zero_output_for_mask were on) is detected."""
    import rnnspec.reference.gradients as gradients
    case = _fixed_case("gru", reset_after=False)
    _check_case(case, "keras3", seed=1)
    right = gradients.layer_gradients

    def forgetting(*args, **kwargs):
        kwargs["zero_output_for_mask"] = True
        return right(*args, **kwargs)
    monkeypatch.setattr(gradients, "layer_gradients", forgetting)
    with pytest.raises(AssertionError, match="central difference"):
        _check_case(case, "keras3", seed=1)


def test_a_wrong_gru_reset_path_is_detected(monkeypatch):
    """GRU (reset_after=True) backward with the reset gate's gradient dropped is detected."""
    import rnnspec.reference.cells as cells
    case = _fixed_case("gru")
    _check_case(case, "keras3", seed=2)
    monkeypatch.setattr(cells.CellSpec, "sigma_prime",
                        property(lambda self: (lambda x: 0.0 * x)))
    with pytest.raises(AssertionError):
        _check_case(case, "keras3", seed=2)
