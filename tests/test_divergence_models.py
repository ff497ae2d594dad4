"""Properties of the known-divergence models in ``spec/divergence_models.py``.

No Keras is needed: the models are checked against the float64 reference and
against numbers measured once on the affected Keras.

(a) A model is as narrow as its bug: on every drawn example outside its
    entry's predicate it returns exactly what ``reference_outputs`` returns.
(b) It is not vacuous: inside the predicate it differs from the formulas on
    some drawn example (and never touches what its bug does not touch).
(c) On each entry's smallest reproducer (``[divergence.case]`` in
    ``spec/data/divergences.toml``) it returns the values measured on real
    Keras, which are also worked out by hand in the comments.
"""

import math
import tomllib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, find, given, settings, strategies as st

from rnnspec.reference.activations import HARD_SIGMOID_CONVENTIONS
from rnnspec.spec.cases import Case, LayerConfig, random_weights, reference_outputs
from rnnspec.spec.divergence_models import MODELS
from rnnspec.spec.divergences import PREDICATES
from rnnspec.spec.strategies import NUMERIC_FEATURES, NUMERIC_TIMESTEPS, SEEDS, cases, layer_configs

ENTRIES = tomllib.loads((Path(__file__).parent.parent / "spec" / "data" / "divergences.toml").read_text())["divergence"]
MODEL_ENTRIES = [e for e in ENTRIES if "model" in e]
RAISING_ENTRIES = [e for e in ENTRIES if e.get("case", {}).get("expect") == "raises"]
IDS = [e["id"] for e in MODEL_ENTRIES]
STATEFUL = "stateful_batch_one_broadcasts"
#: the stateful models (the torch one is the same broadcast, minus LSTM which crashes there)
STATEFUL_MODELS = (STATEFUL, "stateful_batch_one_broadcasts_except_lstm")
#: the models of a call's starting states (they change the returned states too, not only outputs)
STATE_MODELS = ("stored_states_win_over_initial_state", "stateful_predict_starts_from_traced_states")

# The models are cheap: at least 200 examples per property, more if the loaded profile asks for more
# (its other settings -- derandomize, database -- apply).
PROPERTY = settings(settings.default, deadline=None, max_examples=max(settings.default.max_examples, 200),
                    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
FIND = settings(deadline=None, database=None, max_examples=2000,
                suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
HARD_SIGMOIDS = st.sampled_from(sorted(HARD_SIGMOID_CONVENTIONS))


@st.composite
def stateful_cases(draw):
    """A call of a stateful layer built for batch B: x with 1 row (or B rows), from stored states (B, units)."""
    config = draw(layer_configs(bidirectional=False, allow_zero_output_for_mask=False))
    f, b, t = draw(NUMERIC_FEATURES), draw(st.integers(1, 4)), draw(NUMERIC_TIMESTEPS)
    rows = draw(st.sampled_from((1, b)))
    rng = np.random.default_rng(draw(SEEDS))
    weights = random_weights(config, f, rng)
    x = rng.uniform(-1, 1, (rows, t, f)).astype(np.float32).astype(np.float64)
    stored = [rng.uniform(-0.5, 0.5, (b, config.units)) for _ in range(config.n_states)]
    mask = None
    if draw(st.booleans()):
        mask = rng.random((rows, t)) < 0.7
    return Case(config, f, weights, x, mask=mask, initial_state=stored, stateful_batch=b)


@st.composite
def stored_state_cases(draw):
    """A stateful layer's call given initial_state, its stored states drawn (all zero, or not)."""
    case = draw(cases(configs=layer_configs(bidirectional=False), with_initial_state=False))
    rng = np.random.default_rng(draw(SEEDS))
    given = [rng.uniform(-0.5, 0.5, (case.batch, case.config.units)) for _ in range(case.config.n_states)]
    stored = [rng.uniform(-0.5, 0.5, (case.batch, case.config.units)) * draw(st.sampled_from((0.0, 1.0)))
              for _ in range(case.config.n_states)]
    return replace(case, initial_state=given, stored_states=stored)


def any_case():
    """Cases for every model: the spec's own draws, stateful calls, and stateful calls given initial_state."""
    return st.one_of(cases(), stateful_cases(), stored_state_cases())


def _same(a, b):
    return len(a) == len(b) and all(np.shape(x) == np.shape(y) and np.array_equal(x, y) for x, y in zip(a, b))


def _differs(a, b, atol=1e-6):
    return len(a) != len(b) or any(np.shape(x) != np.shape(y) or not np.allclose(x, y, rtol=0, atol=atol)
                                   for x, y in zip(a, b))


def test_every_value_entry_names_a_model_and_every_model_is_named():
    assert sorted(e["model"] for e in MODEL_ENTRIES) == sorted(MODELS)
    for e in MODEL_ENTRIES:
        assert e["predicate"] in PREDICATES and "raises" not in e


def test_raising_entries_carry_a_raises_table():
    import re
    for e in RAISING_ENTRIES:
        table = e["raises"]
        assert table["exception"] and all(isinstance(n, str) and n.isidentifier() for n in table["exception"])
        re.compile(table["message"])
        assert "model" not in e


# --------------------------------------------------------------------------- (a) as narrow as the bug

@pytest.mark.parametrize("entry", MODEL_ENTRIES, ids=IDS)
@PROPERTY
@given(data=st.data(), hard_sigmoid=HARD_SIGMOIDS)
def test_model_is_the_formulas_outside_its_predicate(entry, data, hard_sigmoid):
    """Outside its entry's predicate, a model returns exactly what the formulas return."""
    predicate = PREDICATES[entry["predicate"]]
    case = data.draw(any_case().filter(lambda c: not predicate(c)), label="case")
    assert _same(MODELS[entry["model"]](case, hard_sigmoid), reference_outputs(case, hard_sigmoid))


# --------------------------------------------------------------------------- (b) not vacuous

@pytest.mark.parametrize("entry", MODEL_ENTRIES, ids=IDS)
def test_model_differs_from_the_formulas_inside_its_predicate(entry):
    """Inside its predicate, a model differs from the formulas on some drawn example."""
    predicate, model = PREDICATES[entry["predicate"]], MODELS[entry["model"]]
    if entry["model"] in STATEFUL_MODELS:
        # The formulas refuse a batch-1 call of a layer built for B > 1; the model returns B rows.
        found = find(stateful_cases().filter(predicate), lambda c: model(c, "keras3")[0].shape[0] != c.batch,
                     settings=FIND)
        assert found.batch == 1 and model(found, "keras3")[0].shape[0] == found.stateful_batch > 1
        return
    drawn = {"stored_states_win_over_initial_state": stored_state_cases(),
             "stateful_predict_starts_from_traced_states": stateful_cases()}.get(entry["model"], cases())
    found = find(drawn.filter(predicate),
                 lambda c: _differs(model(c, "keras3"), reference_outputs(c, "keras3")), settings=FIND)
    assert predicate(found)


@pytest.mark.parametrize("entry", [e for e in MODEL_ENTRIES if e["model"] not in STATEFUL_MODELS + STATE_MODELS],
                         ids=[e["id"] for e in MODEL_ENTRIES if e["model"] not in STATEFUL_MODELS + STATE_MODELS])
@PROPERTY
@given(data=st.data(), hard_sigmoid=HARD_SIGMOIDS)
def test_model_differs_only_in_the_outputs(entry, data, hard_sigmoid):
    """The masking bugs change emitted outputs only: the returned states are the formulas' exactly."""
    predicate = PREDICATES[entry["predicate"]]
    case = data.draw(cases(configs=layer_configs(return_state=True)).filter(predicate), label="case")
    n = case.config.n_states
    modelled, formulas = MODELS[entry["model"]](case, hard_sigmoid), reference_outputs(case, hard_sigmoid)
    assert _same(modelled[-n:], formulas[-n:])
    assert [o.shape for o in modelled] == [o.shape for o in formulas]


@PROPERTY
@given(case=cases(configs=layer_configs(bidirectional=False, return_sequences=True)).filter(
    PREDICATES["initial_state_emitted_before_first_unmasked_step"]), hard_sigmoid=HARD_SIGMOIDS)
def test_jax_scan_model_emits_h0_before_the_first_unmasked_step(case, hard_sigmoid):
    """Before a row's first unmasked step (in processing order) the JAX scan model emits h0 -- the
    first initial state, h for LSTM, not c -- and the formulas' output everywhere after it."""
    seq = MODELS["jax_scan_holds_first_state"](case, hard_sigmoid)[0]
    formulas = reference_outputs(case, hard_sigmoid)[0]
    processed = case.mask[:, ::-1] if case.config.go_backwards else case.mask
    before_first = np.cumsum(processed, axis=1) == 0
    h0 = np.broadcast_to(case.initial_state[0][:, None, :], seq.shape)
    assert np.array_equal(seq[before_first], h0[before_first])
    assert np.array_equal(seq[~before_first], formulas[~before_first])


@PROPERTY
@given(case=stateful_cases().filter(PREDICATES["stateful_call_with_batch_one"]), hard_sigmoid=HARD_SIGMOIDS)
def test_stateful_model_is_every_row_the_same_input(case, hard_sigmoid):
    """Broadcast: row i of the output is the formulas for the one input row from stored state row i."""
    out = MODELS[STATEFUL](case, hard_sigmoid)
    for i in range(case.stateful_batch):
        row = replace(case, initial_state=[s[i:i + 1] for s in case.initial_state], stateful_batch=None)
        expected = reference_outputs(row, hard_sigmoid)
        assert all(np.allclose(o[i:i + 1], e, rtol=0, atol=1e-12) for o, e in zip(out, expected))


# --------------------------------------------------------------------------- (c) the reproducers, by hand

def _reproducer(entry_id):
    raw = next(e for e in ENTRIES if e["id"] == entry_id)["case"]
    return Case(LayerConfig(**raw["config"]), raw["features"], [np.array(w, np.float64) for w in raw["weights"]],
                np.array(raw["x"], np.float64),
                mask=np.array(raw["mask"], bool) if "mask" in raw else None,
                initial_state=[np.array(s, np.float64) for s in raw["initial_state"]] if "initial_state" in raw else None,
                stateful_batch=raw.get("stateful_batch"))


def _model_for(entry_id):
    return MODELS[next(e for e in ENTRIES if e["id"] == entry_id)["model"]]


MEASURED_TOL = 1e-6   # Keras computes in float32


def test_reproducer_unroll_backwards_zero_output_mask():
    # SimpleRNN(1, kernel 1, recurrent 0, no bias), go_backwards, unroll, zero_output_for_mask;
    # x = [0.6, 0.8], mask [1, 0]. Processed last to first: step x=0.8 is masked (held: zeros),
    # then x=0.6 gives tanh(0.6) = 0.5370. Sequence in processing order [0, 0.5370]; the formulas
    # keep it (processing-order mask [0, 1]). TF zeroes it by the input-order mask [1, 0]:
    # [0, 0]. Measured: TF 2.21/Keras 3.15.1 and TF 2.15/Keras 2.15.0 return [[[0.0], [0.0]]].
    case = _reproducer("unroll-backwards-zero-output-mask")
    (seq,) = reference_outputs(case, "keras3")
    np.testing.assert_allclose(seq, [[[0.0], [math.tanh(0.6)]]], atol=1e-12)
    (modelled,) = _model_for("unroll-backwards-zero-output-mask")(case, "keras3")
    np.testing.assert_allclose(modelled, [[[0.0], [0.0]]], atol=MEASURED_TOL)
    # Its states are right: return_state gives h = tanh(0.6) (measured 0.5370496 on TF 2.21 and 2.15).
    with_state = replace(case, config=replace(case.config, return_state=True))
    _, h = _model_for("unroll-backwards-zero-output-mask")(with_state, "keras3")
    np.testing.assert_allclose(h, [[0.5370495915]], atol=MEASURED_TOL)


def test_reproducer_jax_unroll_ignores_zero_output_for_mask():
    # SimpleRNN(1, kernel 1, recurrent 0), unroll, zero_output_for_mask; x = [0.6, 0.8], mask [1, 0]:
    # step 1 gives tanh(0.6) = 0.5370, step 2 is masked and holds it instead of emitting 0.
    # Measured on JAX (Keras 3.15.1, CPU): [[[0.5370496], [0.5370496]]].
    case = _reproducer("jax-unroll-ignores-zero-output-for-mask")
    (seq,) = _model_for("jax-unroll-ignores-zero-output-for-mask")(case, "keras3")
    np.testing.assert_allclose(seq, [[[math.tanh(0.6)], [math.tanh(0.6)]]], atol=1e-12)
    np.testing.assert_allclose(seq, [[[0.5370495915], [0.5370495915]]], atol=MEASURED_TOL)
    (formulas,) = reference_outputs(case, "keras3")
    np.testing.assert_allclose(formulas, [[[math.tanh(0.6)], [0.0]]], atol=1e-12)


def test_reproducer_jax_masked_output_before_first_step_is_initial_state():
    # SimpleRNN(1, kernel 1, recurrent 0), x = [0.6, 0.8, 0.3], mask [0, 1, 0], h0 = 0.25:
    # step 1 is masked before any unmasked step: JAX emits h0 = 0.25 (the formulas: 0);
    # step 2 gives tanh(0.8) = 0.6640; step 3 holds it.
    # Measured on JAX (Keras 3.15.1, CPU): [[[0.25], [0.6640369], [0.6640369]]].
    case = _reproducer("jax-masked-output-before-first-step-is-initial-state")
    (seq,) = _model_for("jax-masked-output-before-first-step-is-initial-state")(case, "keras3")
    np.testing.assert_allclose(seq, [[[0.25], [math.tanh(0.8)], [math.tanh(0.8)]]], atol=1e-12)
    np.testing.assert_allclose(seq, [[[0.25], [0.6640368700], [0.6640368700]]], atol=MEASURED_TOL)
    (formulas,) = reference_outputs(case, "keras3")
    np.testing.assert_allclose(formulas, [[[0.0], [math.tanh(0.8)], [math.tanh(0.8)]]], atol=1e-12)


def _sig(v):
    return 1.0 / (1.0 + math.exp(-v))


def _lstm_by_hand(W, U, b, xs, h, c):
    """A scalar LSTM, written out per unit and gate (columns i, f, c~, o), over the steps ``xs``."""
    units = len(h)
    for x in xs:
        z = [sum(x[k] * W[k][j] for k in range(len(x))) + sum(h[k] * U[k][j] for k in range(units)) + b[j]
             for j in range(4 * units)]
        i = [_sig(z[j]) for j in range(units)]
        f = [_sig(z[units + j]) for j in range(units)]
        g = [math.tanh(z[2 * units + j]) for j in range(units)]
        o = [_sig(z[3 * units + j]) for j in range(units)]
        c = [f[j] * c[j] + i[j] * g[j] for j in range(units)]
        h = [o[j] * math.tanh(c[j]) for j in range(units)]
    return h, c


def test_reproducer_stateful_batch_one_broadcast():
    # LSTM(2), stateful, built for batch 3. First call: zeros (3, 2, 2). With x = 0 and h = c = 0
    # every pre-activation is its bias, c~ = tanh(0) = 0, so c = f*0 + i*0 = 0 and h = 0: the
    # stored states stay zero. Second call: x of batch 1. Keras 3.3-3.11 broadcasts x against the
    # stored (3, 2) states and returns (3, 2): every row the formulas for x from the stored states.
    # Measured on Keras 3.10.0 / TF 2.19.1: stored h = c = 0 (3 rows),
    #   output = [0.0819475, 0.1013242] on each of the 3 rows.
    case = _reproducer("stateful-batch-one-broadcast")
    W, U, b = (w.tolist() for w in case.weights)
    h, c = _lstm_by_hand(W, U, b, [[0.0, 0.0]] * 2, [0.0, 0.0], [0.0, 0.0])
    np.testing.assert_allclose(h, MEASURED_STORED_H, atol=MEASURED_TOL)
    np.testing.assert_allclose(c, MEASURED_STORED_C, atol=MEASURED_TOL)
    stored = [np.tile(np.array(h), (3, 1)), np.tile(np.array(c), (3, 1))]
    by_hand, _ = _lstm_by_hand(W, U, b, case.x[0].tolist(), h, c)
    (out,) = _model_for("stateful-batch-one-broadcast")(replace(case, initial_state=stored), "keras3")
    assert out.shape == (3, 2)
    np.testing.assert_allclose(out, np.tile(by_hand, (3, 1)), atol=1e-12)
    np.testing.assert_allclose(out, np.tile(MEASURED_OUTPUT, (3, 1)), atol=MEASURED_TOL)


MEASURED_STORED_H = [0.0, 0.0]
MEASURED_STORED_C = [0.0, 0.0]
MEASURED_OUTPUT = [0.0819474682, 0.1013241708]


def test_reproducer_zero_output_for_mask_zeroes_last_output():
    # SimpleRNN(1, kernel 1, recurrent 0, no bias), zero_output_for_mask, return_sequences=False;
    # x = [0.6, 0.8], mask [1, 0]: the last unmasked step gives tanh(0.6) = 0.5370, which the
    # docstring's "only used when return_sequences is True" makes the last output; Keras zeroes it.
    # Measured: TF 2.21/Keras 3.15.1, TF 2.15/Keras 2.15.0, JAX/Keras 3.15.1 return [[0.0]].
    case = _reproducer("zero-output-for-mask-zeroes-last-output")
    (formulas,) = reference_outputs(case, "keras3")
    np.testing.assert_allclose(formulas, [[math.tanh(0.6)]], atol=1e-12)
    (modelled,) = _model_for("zero-output-for-mask-zeroes-last-output")(case, "keras3")
    np.testing.assert_allclose(modelled, [[0.0]], atol=MEASURED_TOL)


@PROPERTY
@given(case=stored_state_cases(), hard_sigmoid=HARD_SIGMOIDS)
def test_stored_states_model_starts_from_the_stored_states(case, hard_sigmoid):
    """keras2-stateful-initial-state-ignored: the call is the formulas from the stored states when any
    of them is non-zero, from initial_state when they are all zero."""
    modelled = MODELS["stored_states_win_over_initial_state"](case, hard_sigmoid)
    nonzero = any(np.any(s != 0) for s in case.stored_states)
    start = case.stored_states if nonzero else case.initial_state
    assert _same(modelled, reference_outputs(replace(case, initial_state=start, stored_states=None), hard_sigmoid))


def test_reproducer_keras2_stateful_initial_state_ignored():
    # SimpleRNN(1, kernel 1, recurrent 0.5, no bias), stateful: the call on first_x = [0.6] stores
    # h = tanh(0.6) = 0.5370; the call on x = [0.8] with initial_state [[0.25]] must give
    # tanh(0.8 + 0.5 * 0.25) = tanh(0.925) = 0.7283, Keras 2 starts from the stored h instead:
    # tanh(0.8 + 0.5 * 0.5370) = tanh(1.0685) = 0.7889 (measured 0.7889048 on TF 2.15 / Keras 2.15.0 by
    # spec/test_known_divergences.py, which asserts Keras against this model).
    raw = next(e for e in ENTRIES if e["id"] == "keras2-stateful-initial-state-ignored")["case"]
    case = replace(_reproducer("keras2-stateful-initial-state-ignored"), stored_states=[np.array([[math.tanh(0.6)]])])
    assert raw["first_x"] == [[[0.6]]]
    (expected,) = reference_outputs(case, "keras2")
    np.testing.assert_allclose(expected, [[math.tanh(0.8 + 0.5 * 0.25)]], atol=1e-12)
    (modelled,) = _model_for("keras2-stateful-initial-state-ignored")(case, "keras2")
    np.testing.assert_allclose(modelled, [[math.tanh(0.8 + 0.5 * math.tanh(0.6))]], atol=1e-12)


# --------------------------------------------------------------------------- the dropout models' switches

def test_the_dropout_model_switches_are_the_formulas_where_nothing_is_dropped():
    """reference/dropout.py's divergence switches (a per-step input mask, the GRU carrying the dropped
    state, masks applied in place) change nothing where every unit is kept at rate 0, and a
    per-step mask that is the same at every step is the one mask of the formulas."""
    import numpy as np
    from rnnspec.reference.dropout import run_layer_with_dropout
    from rnnspec.spec.cases import LayerConfig, random_weights
    rng = np.random.default_rng(3)
    for kind in ("simple_rnn", "gru", "lstm"):
        cfg = LayerConfig(kind=kind, units=3)
        w = random_weights(cfg, 4, rng)
        x = rng.standard_normal((2, 5, 4))
        n = {"simple_rnn": 1, "lstm": 4, "gru": 3}[kind]
        spec = cfg.cell_spec("keras3")
        ones = [np.ones((2, 4), bool)] * n
        base = run_layer_with_dropout(spec, x, *w, input_keep=ones, recurrent_keep=[np.ones((2, 3), bool)] * n)
        switched = run_layer_with_dropout(spec, x, *w, input_keep=[np.ones((2, 5, 4), bool)] * n,
                                          recurrent_keep=[np.ones((2, 3), bool)] * n,
                                          gru_carries_dropped_state=True, masks_in_place=True)
        np.testing.assert_array_equal(base.sequence, switched.sequence)
        keep = [rng.random((2, 4)) > 0.5] * n
        one = run_layer_with_dropout(spec, x, *w, input_keep=keep, dropout=0.5)
        per_step = run_layer_with_dropout(spec, x, *w, input_keep=[np.repeat(k[:, None], 5, 1) for k in keep],
                                          dropout=0.5)
        np.testing.assert_allclose(one.sequence, per_step.sequence, rtol=0, atol=1e-15)
