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
from hypothesis import assume, given, settings, strategies as st

from rnnspec.spec import adapter, outcomes
from rnnspec.spec.cases import keras_layer, reference_outputs
from rnnspec.spec.conformance import assert_conforms, call_unless_listed_crash
from rnnspec.spec.divergences import divergence_for, listed
from rnnspec.spec.assertions import tolerance
from rnnspec.spec.profiles import scaled_examples
from rnnspec.spec.strategies import cases, layer_configs

RATES = st.sampled_from([0.0, 0.25, 0.5, 0.75])


def dropout_seeds():
    """A dropout ``seed`` where the version takes one (conventions.toml dropout_seed_argument), else None."""
    return st.integers(0, 2**16) if adapter.conventions()["dropout_seed_argument"] else st.none()


@given(cases(layer_configs(), with_initial_state=False), RATES, RATES, dropout_seeds())
def test_inference_ignores_dropout(case, dropout, recurrent_dropout, seed):
    """With training=False, dropout and recurrent_dropout change nothing (whatever the seed), and two calls agree."""
    layer = keras_layer(case.config, case.features, dropout=dropout or 0.5,
                        recurrent_dropout=recurrent_dropout, seed=seed)
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


# --------------------------------------------------------------------------- dropout, exactly
#
# The claims above only see that dropout does *something* in training. The claims below
# recover the masks Keras draws (rnnspec.spec.adapter.DropoutSpy instruments the backend's dropout
# primitive) and check them against the documented semantics (reference/dropout.py):
#
# - the masks drawn per call: as many as the version's convention says (conventions.toml
#   ``dropout_masks``), for the input and the recurrent state, once per call (not per step);
# - each mask entry is 0 (dropped) or 1/(1-rate) (kept, inverted dropout), at the mask's rate;
# - the outputs and final states equal the reference run with those masks applied at every
#   step -- input masks to x's linear transformation, recurrent masks to h's, one per gate
#   where the convention applies them per gate -- within the forward tolerance;
# - the dropped fraction is consistent with the rate (exact binomial test, below);
# - the same seed gives the same masks (Keras 3 documents ``seed``: "Random seed for dropout").

GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}
DROPOUT_RATES = st.sampled_from([0.0, 0.3, 0.5])
RECURRENT_RATES = st.sampled_from([0.0, 0.25, 0.6])


#: Keras 3.0-3.1 draw the recurrent mask at the rate ``dropout`` (divergences.toml)
RECURRENT_RATE_FINDING = "keras30-recurrent-dropout-drawn-at-input-rate"
#: Keras 3.0-3.7's GRU carries the dropped state in ``z * h`` (divergences.toml)
GRU_CARRY_FINDING = "keras3-gru-recurrent-dropout-reaches-carried-state"


#: Keras 2's fused LSTM/GRU path draws the input mask over the whole sequence (divergences.toml)
FUSED_PER_STEP_FINDING = "keras2-fused-dropout-mask-per-timestep"


def fused_per_step_finding(case):
    """The listed divergence whose model draws (batch, timesteps, features) input masks on Keras 2's
    fused path, where it applies to ``case`` (:func:`expected_dropout_masks`' fused path, dropout > 0)."""
    if not case.dropout or adapter.conventions()["dropout_masks"] != "keras2" or not _keras2_fused(case):
        return None
    return listed(FUSED_PER_STEP_FINDING)


def _keras2_fused(case):
    c = case.config
    return (c.kind != "simple_rnn" and c.activation == "tanh" and c.recurrent_activation == "sigmoid"
            and not case.recurrent_dropout and not c.unroll and c.use_bias
            and (c.kind != "gru" or c.reset_after))


#: Keras 3.0's SimpleRNN and GRU multiply their masks in place; on torch that mutates tensors (divergences.toml)
IN_PLACE_FINDING = "keras30-torch-dropout-masks-applied-in-place"


def in_place_finding(case):
    """The listed divergence whose model applies the masks in place, where it applies to ``case``."""
    if case.config.kind not in ("simple_rnn", "gru"):
        return None
    return listed(IN_PLACE_FINDING)


def gru_carry_finding(case):
    """The listed divergence whose model carries GRU's dropped state, where it applies to ``case``."""
    if case.config.kind != "gru" or not case.recurrent_dropout:
        return None
    return listed(GRU_CARRY_FINDING)


def mask_rates(case):
    """``({"input": rate, "recurrent": rate}, entry)``: the rate each mask must be drawn at,
    and the listed divergence whose model sets them where it differs from the documented
    ``dropout`` / ``recurrent_dropout`` (None where the documented rates hold)."""
    documented = {"input": case.dropout, "recurrent": case.recurrent_dropout}
    entry = listed(RECURRENT_RATE_FINDING)
    if entry is not None and case.recurrent_dropout > 0 and case.dropout != case.recurrent_dropout:
        return {"input": case.dropout, "recurrent": case.dropout}, entry
    return documented, None


def asserted_mask_rates(entry):
    """Record the example: against the formulas, or the model of ``entry`` (mask_rates)."""
    if entry is None:
        outcomes.asserted_formulas()
    else:
        outcomes.asserted_model(entry["id"])


def expected_dropout_masks(case):
    """``({"input": n, "recurrent": n}, per_gate)``: how many masks one training call draws
    for each, and whether they are applied one per gate block (conventions.toml
    ``dropout_masks``, read in each version's source); None for a convention this chapter
    does not know (a new value in conventions.toml: a harness error below)."""
    convention = adapter.conventions()["dropout_masks"]
    c = case.config
    gated = c.kind != "simple_rnn"
    implementation_1 = gated and (c.implementation == 1 or case.recurrent_dropout > 0)
    if convention == "keras2":
        drawn, per_gate = GATES[c.kind], implementation_1 and not _keras2_fused(case)
    elif convention == "keras3-per-gate":
        per_gate = implementation_1
        drawn = GATES[c.kind] if per_gate else 1
    elif convention == "keras3-one-mask":
        drawn, per_gate = 1, False
    else:
        return None
    return {"input": drawn if case.dropout > 0 else 0,
            "recurrent": drawn if case.recurrent_dropout > 0 else 0}, per_gate


def check_masks(case, draws):
    """Count, shape, values and rate of each drawn mask; returns the keep masks applied per gate
    block, ``{"input": [keep] * gates or None, "recurrent": ...}``."""
    __tracebackhide__ = True
    counts, per_gate = expected_dropout_masks(case)
    c = case.config
    widths = {"input": case.features, "recurrent": c.units}
    shapes = {kind: (case.batch, widths[kind]) for kind in widths}
    if fused_per_step_finding(case) is not None:   # its model: one input mask per step
        shapes["input"] = (case.batch, case.timesteps, case.features)
    rates, entry = mask_rates(case)
    documented = {"input": case.dropout, "recurrent": case.recurrent_dropout}
    kinds = [k for k, _, _ in draws]
    assert kinds.count(None) == 0, f"dropout drawn outside the cell's mask getters: {kinds}"
    applied = {}
    for kind in ("input", "recurrent"):
        masks = [(r, m) for k, r, m in draws if k == kind]
        assert len(masks) == counts[kind], (
            f"{len(masks)} {kind} dropout masks drawn in one training call over {case.timesteps} steps, "
            f"expected {counts[kind]} ({adapter.conventions()['dropout_masks']} convention, "
            f"{'per gate' if per_gate else 'one for all gates'}); config {c.one_line(case.features)}")
        keeps = []
        for rate, m in masks:
            if entry is not None and abs(rate - rates[kind]) >= 1e-12 and abs(rate - documented[kind]) < 1e-12:
                raise outcomes.DivergenceFixed(f"fixed in this environment: {entry['id']!r}, but the {kind} "
                                               f"mask is drawn at the documented rate {rate}")
            assert abs(rate - rates[kind]) < 1e-12, (
                f"{kind} mask drawn at rate {rate}, not {rates[kind]}"
                + (f" (the model of {entry['id']!r}; documented: {documented[kind]})" if entry else ""))
            assert m.shape == shapes[kind], f"{kind} mask shape {m.shape}, expected {shapes[kind]}"
            scale = 1.0 / (1.0 - rates[kind])
            kept = np.abs(m - scale) <= 1e-6 * scale
            assert np.all(kept | (m == 0.0)), (
                f"{kind} mask entries must be exactly 0 or 1/(1-rate)={scale:.7g}; got {np.unique(m)}")
            keeps.append(kept)
        if not keeps:
            applied[kind] = None
        else:
            applied[kind] = keeps if per_gate else [keeps[0]] * GATES[c.kind]
    return applied


def reference_with_masks(case, applied, *, gru_carries_dropped_state=False, masks_in_place=False):
    """The reference run with the recovered keep masks, kept units scaled at the rate each
    mask must be drawn at (:func:`mask_rates`); the switches: the models of
    :data:`GRU_CARRY_FINDING` and :data:`IN_PLACE_FINDING` (whose loop computes the first step
    twice, except backwards or unrolled)."""
    from rnnspec.reference.dropout import run_layer_with_dropout
    c = case.config
    spec = c.cell_spec(adapter.conventions()["hard_sigmoid"])
    w = case.weights
    rates, _ = mask_rates(case)
    res = run_layer_with_dropout(spec, case.x, w[0], w[1], w[2] if c.use_bias else None,
                                 input_keep=applied["input"], dropout=rates["input"],
                                 recurrent_keep=applied["recurrent"], recurrent_dropout=rates["recurrent"],
                                 go_backwards=c.go_backwards, gru_carries_dropped_state=gru_carries_dropped_state,
                                 masks_in_place=masks_in_place, twice_first=not (c.go_backwards or c.unroll))
    return [res.sequence] + list(res.states)


#: half of the exact-dropout examples keep the layer's defaults where a fused kernel path depends
#: on them (activation tanh, recurrent_activation sigmoid, unroll False, use_bias True, GRU
#: reset_after True, recurrent_dropout 0): there LSTM/GRU may take that path. Drawn uniformly,
#: the arguments reach it in about 1 of 500 examples (Keras 2's per-timestep masks there went
#: unseen in 300 thorough examples); with only the activations fixed, in about 1 of 8.
AT_DEFAULTS = st.booleans()


def exact_dropout_case(case, dropout, recurrent_dropout, at_defaults=False):
    changes = {"return_sequences": True, "return_state": True}
    if at_defaults:
        # use_bias and reset_after shape the drawn weights: keep the examples that drew the defaults
        assume(case.config.use_bias and (case.config.kind != "gru" or case.config.reset_after))
        changes.update(activation="tanh", recurrent_activation="sigmoid", unroll=False)
        recurrent_dropout = 0.0
    config = case.config.__class__(**{**case.config.__dict__, **changes})
    if not dropout and not recurrent_dropout:
        dropout = 0.3
    case.config, case.training, case.dropout, case.recurrent_dropout = config, True, dropout, recurrent_dropout
    return case


def check_exact_dropout(case, seed, *, compiled):
    __tracebackhide__ = True
    _known_convention(case)
    if compiled and not adapter.conventions()["dropout_masks_outside_loop"]:
        outcomes.harness_gap("Keras 2 draws the dropout masks inside the compiled tf.while_loop, "
                             "where the graph cannot return them (InaccessibleTensorError)")
        return
    entry = divergence_for(case)
    seed_kw = {"seed": seed} if adapter.conventions()["dropout_seed_argument"] else {}
    layer = keras_layer(case.config, case.features, dropout=case.dropout,
                        recurrent_dropout=case.recurrent_dropout, **seed_kw)
    adapter.set_weights(layer, case.weights)
    result = call_unless_listed_crash(
        entry, lambda: adapter.call_recording_dropout(layer, case.x, compiled=compiled), what="training=True")
    if result is None:
        return
    outputs, draws = result
    applied = check_masks(case, draws)
    documented = reference_with_masks(case, applied)
    carry, in_place = gru_carry_finding(case), in_place_finding(case)
    modelled = [e for e in (carry, in_place) if e is not None]
    expected = reference_with_masks(case, applied, gru_carries_dropped_state=carry is not None,
                                    masks_in_place=in_place is not None) if modelled else documented
    # the models count only where they differ from the formulas (e.g. a mask that keeps every unit)
    if modelled and all(np.allclose(e, d, rtol=0, atol=1e-9) for e, d in zip(expected, documented)):
        modelled = []
    ids = ", ".join(repr(e["id"]) for e in modelled)
    atol, rtol = tolerance()
    path = "compiled" if compiled else "eager"
    assert len(outputs) == len(expected), f"{len(outputs)} values returned, expected {len(expected)}"

    def close(values):
        return all(a.shape == e.shape and np.all(np.abs(np.asarray(a) - e) <= atol + rtol * np.abs(e))
                   for a, e in zip(outputs, values))

    if modelled and not close(expected) and close(documented):
        raise outcomes.DivergenceFixed(f"fixed in this environment: {ids}, but the outputs are the "
                                       f"documented formulas with the recovered masks")
    for name, a, e in zip(["sequence", "h", "c"], outputs, expected):
        diff = np.abs(np.asarray(a) - e)
        assert a.shape == e.shape and np.all(diff <= atol + rtol * np.abs(e)), (
            f"[{path}] {name} differs from the reference run with the recovered masks by up to "
            f"{diff.max():.3g} (atol {atol}, rtol {rtol}); dropout={case.dropout} "
            f"recurrent_dropout={case.recurrent_dropout}; config {case.config.one_line(case.features)}"
            + (f"; modelled by {ids}" if modelled else ""))
    for entry in modelled:
        outcomes.asserted_model(entry["id"])
    per_step = fused_per_step_finding(case)
    if per_step is not None:
        outcomes.asserted_model(per_step["id"])
    asserted_mask_rates(mask_rates(case)[1])


def _known_convention(case):
    """Every version's mask convention is read from its source (conventions.toml); a value
    this chapter does not know is a defect of rnnspec, never an unsupported feature."""
    if expected_dropout_masks(case) is None:
        raise RuntimeError(f"conventions.toml dropout_masks={adapter.conventions()['dropout_masks']!r} "
                           f"for Keras {adapter.KERAS_VERSION}: a value spec/test_dropout.py does not know")


@given(cases(layer_configs(bidirectional=False), features=st.integers(2, 5), batch=st.integers(2, 4),
             with_masks=False, with_initial_state=False),
       DROPOUT_RATES, RECURRENT_RATES, st.integers(0, 2**16), AT_DEFAULTS)
@settings(max_examples=scaled_examples(0.5))
def test_training_dropout_is_exact(case, dropout, recurrent_dropout, seed, at_defaults):
    """Eager training call: the masks drawn are the convention's, 0 or 1/(1-rate), drawn once per
    call, and the outputs and final states are the reference's with those masks at every step."""
    check_exact_dropout(exact_dropout_case(case, dropout, recurrent_dropout, at_defaults), seed, compiled=False)


@given(cases(layer_configs(bidirectional=False), features=st.integers(2, 5), batch=st.integers(2, 4),
             with_masks=False, with_initial_state=False),
       DROPOUT_RATES, RECURRENT_RATES, st.integers(0, 2**16), AT_DEFAULTS)
@settings(max_examples=scaled_examples(0.15))
def test_compiled_training_dropout_is_exact(case, dropout, recurrent_dropout, seed, at_defaults):
    """The same on the compiled path (tf.function / jax.jit; the masks traced are returned by the
    graph); on torch the eager call, which is what Keras 3 runs there."""
    check_exact_dropout(exact_dropout_case(case, dropout, recurrent_dropout, at_defaults), seed, compiled=True)


#: false-alarm probability of the binomial claim, per run (both kinds and every rate together)
FALSE_ALARM = 1e-6
BINOMIAL_RATES = (0.25, 0.6)


def _binomial_pmf(n, rate):
    from math import lgamma, log
    k = np.arange(n + 1)
    lg = np.array([lgamma(i + 1) for i in range(n + 1)])
    with np.errstate(divide="ignore"):
        logs = lg[n] - lg - lg[::-1] + k * log(rate) + (n - k) * log(1 - rate) if 0 < rate < 1 else None
    return np.exp(logs)


def binomial_tails(k, n, rate):
    """``(P(X <= k), P(X >= k))`` for X ~ Binomial(n, rate), in float64 (no scipy in the Keras envs)."""
    pmf = _binomial_pmf(n, rate)
    return float(pmf[:k + 1].sum()), float(pmf[k:].sum())


def binomial_power(n, rate, alpha, shift_probability=0.999):
    """The smallest |rate error| (grid 1e-4) that the equal-tailed binomial test at level
    ``alpha`` detects with probability ``shift_probability``."""
    cdf = np.cumsum(_binomial_pmf(n, rate))
    lo = int(np.searchsorted(cdf, alpha / 2))               # reject k < lo
    hi = int(np.searchsorted(cdf, 1 - alpha / 2)) + 1       # reject k >= hi (approximately)
    for d in np.arange(1e-4, 0.5, 1e-4):
        up, down = np.cumsum(_binomial_pmf(n, min(rate + d, 0.999))), np.cumsum(_binomial_pmf(n, max(rate - d, 1e-3)))
        if min(1 - up[hi - 1], down[lo - 1] if lo > 0 else 0.0) >= shift_probability:
            return float(d)
    return None


def test_dropped_fraction_matches_rate():
    """One LSTM training call, implementation 1 (per-gate masks on Keras >= 3.8; Keras 2 draws 4
    per rate too): every drawn mask entry is dropped with probability `rate`. Pooled over the
    masks of each kind: an exact equal-tailed binomial test, false alarm <= 1e-6 per run (Bonferroni
    over the two kinds). With 4 masks of 128 x 64 = 32768 entries per kind the test detects a
    rate off by 0.0197 (rate 0.25) / 0.0221 (rate 0.6) with probability 0.999 (binomial_power(32768, rate, 5e-7))."""
    from dataclasses import replace
    from rnnspec.spec.cases import Case, LayerConfig, random_weights
    rng = np.random.default_rng(7)
    config = LayerConfig(kind="lstm", units=64, implementation=1, return_sequences=True)
    case = Case(config, 64, random_weights(config, 64, rng), rng.standard_normal((128, 2, 64)),
                training=True, dropout=BINOMIAL_RATES[0], recurrent_dropout=BINOMIAL_RATES[1])
    _known_convention(case)
    layer = keras_layer(config, 64, dropout=case.dropout, recurrent_dropout=case.recurrent_dropout)
    _, draws = adapter.call_recording_dropout(layer, case.x)
    alpha = FALSE_ALARM / 2
    rates, entry = mask_rates(case)
    for kind, rate in rates.items():
        masks = [m for k, _, m in draws if k == kind]
        assert masks, f"no {kind} masks drawn"
        n = sum(m.size for m in masks)
        dropped = int(sum((m == 0).sum() for m in masks))
        below, above = binomial_tails(dropped, n, rate)
        assert min(below, above) >= alpha / 2, (
            f"{kind} dropout: {dropped} of {n} entries dropped ({dropped / n:.4f}), rate {rate}: "
            f"P(X <= k) = {below:.2e}, P(X >= k) = {above:.2e}, below {alpha / 2:.1e} (equal-tailed binomial test)"
            + (f"; the rate is the model of {entry['id']!r}" if entry else ""))
    asserted_mask_rates(entry)


@given(st.sampled_from(["simple_rnn", "lstm", "gru"]), st.integers(0, 2**16))
@settings(max_examples=scaled_examples(0.05))
def test_same_seed_same_masks(kind, seed):
    """Two layers built with the same ``seed`` draw the same masks on their first training call
    (Keras 3: "seed: Random seed for dropout"); Keras 2.15's layers have no seed argument."""
    if not adapter.conventions()["dropout_seed_argument"]:
        # evidence: the signature (conventions.toml dropout_seed_argument; the contract chapter
        # holds the documented arguments to the installed signature)
        outcomes.unsupported(f"Keras {adapter.KERAS_VERSION}'s {kind} has no `seed` argument "
                             f"(its signature and docstring name none)")
        return
    from rnnspec.spec.cases import LayerConfig
    config = LayerConfig(kind=kind, units=8, return_sequences=True)
    x = np.random.default_rng(seed).standard_normal((4, 3, 6))
    runs = []
    for _ in range(2):
        layer = keras_layer(config, 6, dropout=0.5, recurrent_dropout=0.5, seed=seed)
        runs.append([m for _, _, m in adapter.call_recording_dropout(layer, x)[1]])
    assert len(runs[0]) == len(runs[1]) and all(np.array_equal(a, b) for a, b in zip(*runs)), \
        f"seed={seed}: two {kind} layers with the same seed drew different dropout masks"
    outcomes.asserted_formulas()
