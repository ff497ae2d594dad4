"""Chapter 11 -- the RNN wrapper and its cells, Bidirectional's two halves, time_major.

The layers ``SimpleRNN``, ``LSTM`` and ``GRU`` are the ``RNN`` layer around
one cell (the RNN docstring: "cell: A RNN cell instance or a list of RNN cell
instances"). So:

- ``keras.layers.RNN(SimpleRNNCell(...))``, ``RNN(LSTMCell(...))`` and
  ``RNN(GRUCell(...))``, with the cell's arguments (units, activation,
  recurrent_activation, use_bias, GRU reset_after, implementation, LSTM
  unit_forget_bias) and the wrapper's flags (return_sequences, return_state,
  go_backwards, unroll, zero_output_for_mask) and a mask and initial state,
  compute exactly the formulas of the layer of the same name -- in training
  (without dropout) or not, with dropout rates that inference ignores, and
  stateful (``stateful=True``, built for the batch, states reset: the call
  starts from zeros or the given initial state).
- A user-defined cell written as the Keras guide shows (``MinimalRNNCell``:
  ``h' = x.W + h.U``, its output is its state) runs under the same loop:
  masks, go_backwards, initial_state, return_state.
- ``RNN([cells])`` and ``RNN(StackedRNNCells(cells))``: "the cells will be
  stacked on top of each other in the RNN" -- at each step the first cell
  reads the input, each next cell reads the output of the one below, and the
  layer's output is the top cell's. At a masked step no cell is applied
  (every state is carried), so the output equals the formulas run cell after
  cell; the returned states come per cell, in order (Keras nests them per
  cell: they are compared flattened), and ``initial_state`` takes one list
  of states per cell.
- ``Bidirectional(layer, backward_layer=...)``: the given layer handles the
  forward pass and ``backward_layer`` the backward one; it "should have
  properties matching those of the `layer` argument" (stateful,
  return_sequences, return_state) and a different ``go_backwards``, but may
  differ otherwise (the docstring's example gives it another activation).
  Each half computes its own formulas on the same input and mask; the
  backward half's sequence is reversed back in time before merging (as in
  ``reference/layer.py::run_bidirectional``), and with return_sequences
  masked steps give zeros in both halves "regardless of the layer's original
  `zero_output_for_mask` value". Without ``backward_layer`` it is "generated
  automatically" from the layer with the other ``go_backwards``: so over a
  layer with ``go_backwards=True`` the forward half runs backwards and the
  generated one forwards.
- Keras 2 only: ``time_major=True`` takes inputs and returns sequences in
  shape (timesteps, batch, ...) ("the inputs and outputs will be in shape
  `(timesteps, batch, ...)`"); the states stay (batch, units). Keras 3 has no
  such argument: the claim is ``unsupported`` there (conventions.toml).

Every example builds its layer (cached per configuration) and calls it
eagerly with fresh weights and data; known divergences of the loop (masks,
zero_output_for_mask, unroll) apply here as to the layers, per half for
Bidirectional, and are asserted against their models.
"""

from collections import OrderedDict
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rnnspec import reference
from rnnspec.reference.cells import MINIMAL_RNN
from rnnspec.spec import adapter
from rnnspec.spec.assertions import assert_matches_reference, output_names, tolerance
from rnnspec.spec.cases import Case, random_weights, reference_outputs
from rnnspec.spec.conformance import assert_conforms, assert_refused, assert_values, call_unless_listed_crash, modelled_outputs
from rnnspec.spec.divergences import divergence_for
from rnnspec.spec.profiles import scaled_examples
from rnnspec.spec.runners import _cached
from rnnspec.spec.strategies import (MERGE_MODES, NUMERIC_BATCH, NUMERIC_FEATURES, NUMERIC_TIMESTEPS, SEEDS,
                                     cases, layer_configs, masks)


def _hs():
    return adapter.conventions()["hard_sigmoid"]


def explicit(config):
    """The config with zero_output_for_mask passed explicitly (False where it was left at the default)."""
    return replace(config, zero_output_for_mask=bool(config.zero_output_for_mask))


def cell_arguments(c):
    """The cell's own arguments for ``c`` (the weights are set before every call: zeros initializers)."""
    kw = dict(activation=c.activation, use_bias=c.use_bias,
              kernel_initializer="zeros", recurrent_initializer="zeros")
    if c.kind != "simple_rnn":
        kw.update(recurrent_activation=c.recurrent_activation, implementation=c.implementation)
    if c.kind == "gru":
        kw["reset_after"] = c.reset_after
    if c.kind == "lstm":
        kw["unit_forget_bias"] = c.unit_forget_bias
    return kw


def wrapper_arguments(c):
    """The RNN wrapper's flags for ``c``, every one passed explicitly."""
    return dict(return_sequences=c.return_sequences, return_state=c.return_state, go_backwards=c.go_backwards,
                unroll=c.unroll, zero_output_for_mask=bool(c.zero_output_for_mask))


_LAYERS = OrderedDict()


def _layer(key, build):
    """A built layer, cached by ``key`` (everything that fixes it); each example sets its weights."""
    return _cached(_LAYERS, key, build)


def _set_and_call(layer, case):
    adapter.set_weights(layer, case.weights)
    return adapter.call(layer, case.x, mask=case.mask, initial_state=case.initial_state)


# --------------------------------------------------------------------------- one cell

@st.composite
def call_modes(draw):
    """How the example calls its RNN: ``training`` or not; at inference the cell may hold dropout
    rates (and, where the version has it, a dropout ``seed``), which inference ignores; and the
    wrapper may be ``stateful`` (built for the batch, its states reset before the call, so that the
    call starts from zeros or the given initial_state, as a first call does)."""
    training = draw(st.booleans(), label="training")
    rates = (0.0,) if training else (0.25, 0.5)
    mode = {"training": training, "stateful": draw(st.booleans(), label="stateful"),
            "dropout": draw(st.sampled_from(rates), label="dropout"),
            "recurrent_dropout": draw(st.sampled_from(rates), label="recurrent_dropout")}
    if adapter.conventions()["dropout_seed_argument"]:
        mode["seed"] = draw(st.integers(0, 2**16), label="seed")
    return mode


@pytest.mark.parametrize("kind", ("simple_rnn", "lstm", "gru"))
@given(data=st.data())
@settings(max_examples=scaled_examples(0.25))
def test_rnn_with_builtin_cell_matches_layer_formulas(kind, data):
    """RNN(SimpleRNNCell / LSTMCell / GRUCell) computes the formulas of SimpleRNN / LSTM / GRU: training
    or not (no dropout in training; dropout is ignored at inference), stateful from reset states or not."""
    case = data.draw(cases(configs=layer_configs(kinds=(kind,), bidirectional=False).map(explicit)), label="case")
    mode = data.draw(call_modes(), label="mode")
    c = case.config
    dropout = {k: mode[k] for k in ("dropout", "recurrent_dropout", "seed") if k in mode}
    stateful = mode["stateful"]

    def build():
        cell = adapter.make_cell(c.kind, c.units, **cell_arguments(c), **dropout)
        layer = adapter.rnn_layer(cell, stateful=stateful, **wrapper_arguments(c))
        return adapter.build(layer, case.batch if stateful else None, case.features)
    key = ("builtin", c, case.features, tuple(sorted(dropout.items())), stateful, case.batch if stateful else None)
    layer = _layer(key, build)
    if stateful:
        # reset_state() itself may be a listed crash (divergences.toml: jax-reset-state-numpy2-crash),
        # judged on the stateful layer alone, as spec/test_stateful.py does (no mask, no initial state)
        entry = divergence_for(Case(c, case.features, case.weights, case.x, stateful_batch=case.batch))
        if call_unless_listed_crash(entry, lambda: adapter.reset_states(layer) or True,
                                    what="reset_state()") is None:
            return

    def run():
        adapter.set_weights(layer, case.weights)
        return adapter.call(layer, case.x, mask=case.mask, initial_state=case.initial_state,
                            training=mode["training"])
    assert_conforms(replace(case, training=mode["training"]), run,
                    path=f"RNN({adapter.CELL_CLASSES[c.kind]}{', stateful' if stateful else ''}), eager call"
                         f"{', training' if mode['training'] else ''}")


def _minimal(config):
    return explicit(replace(config, **MINIMAL_RNN))


@given(cases(configs=layer_configs(kinds=("simple_rnn",), bidirectional=False).map(_minimal)))
@settings(max_examples=scaled_examples(0.25))
def test_rnn_with_user_cell_matches_its_formula(case):
    """RNN(MinimalRNNCell) -- the Keras guide's cell, h' = x.W + h.U -- runs the RNN loop's semantics."""
    c = case.config
    layer = _layer(("user", c, case.features),
                   lambda: adapter.build(adapter.user_cell_layer(c.units, **wrapper_arguments(c)), None, case.features))
    assert_conforms(case, lambda: _set_and_call(layer, case), path="RNN(MinimalRNNCell), eager call")


# --------------------------------------------------------------------------- stacked cells

@st.composite
def stacked_cases(draw):
    """2-3 cells (each its own kind and arguments), the wrapper's flags, how they are stacked,
    weights per cell, inputs, a mask, and (without a mask) an initial state per cell."""
    n = draw(st.integers(2, 3), label="cells")
    cells = [draw(layer_configs(bidirectional=False), label=f"cell {i}") for i in range(n)]
    top = explicit(cells[-1])          # the wrapper's flags are drawn with the top cell
    cells = [replace(cell, **{k: getattr(top, k) for k in wrapper_arguments(top)}) for cell in cells[:-1]] + [top]
    stacked_as = draw(st.sampled_from(["list", "StackedRNNCells"]), label="stacked_as")
    features, batch, timesteps = draw(NUMERIC_FEATURES), draw(NUMERIC_BATCH), draw(NUMERIC_TIMESTEPS)
    rng = np.random.default_rng(draw(SEEDS, label="data_seed"))
    weights, width = [], features
    for cell in cells:
        weights.append(random_weights(cell, width, rng))
        width = cell.units
    x = rng.uniform(-1, 1, (batch, timesteps, features)).astype(np.float32).astype(np.float64)
    mask = draw(masks(batch, timesteps))
    init = None
    # with a mask, the JAX scan's held first output is a known divergence of a single layer
    # (jax-masked-output-before-first-step-is-initial-state), not modelled for stacks: drawn apart
    if mask is None and draw(st.booleans(), label="initial_state"):
        init = [[rng.uniform(-0.5, 0.5, (batch, cell.units)).astype(np.float32).astype(np.float64)
                 for _ in range(cell.n_states)] for cell in cells]
    return stacked_as, cells, features, weights, x, mask, init


def _stacked_expectation(cells, features, weights, x, mask, init):
    """``(top case, expected, modelled, entry, names)``: the formulas cell after cell. Each cell
    below the top runs over the whole sequence (no cell is applied at a masked step, so the
    top cell never reads what a lower one emits there); its sequence, put back in input order,
    is the next cell's input. The top cell's values come from its own case, so that a known
    divergence of the loop is modelled on it."""
    hs = _hs()
    top = cells[-1]
    per_cell_states, names, y, width = [], ["output"], x, features
    for i, (cell, w) in enumerate(zip(cells[:-1], weights[:-1])):
        res = reference.run_layer(cell.cell_spec(hs), y, w[0], w[1], w[2] if cell.use_bias else None,
                                  mask=mask, initial_state=init[i] if init else None,
                                  go_backwards=top.go_backwards)
        y = res.sequence[:, ::-1] if top.go_backwards else res.sequence
        per_cell_states.append(list(res.states))
        width = cell.units
    top_case = Case(replace(top, return_state=True), width, weights[-1], y, mask=mask,
                    initial_state=init[-1] if init else None)
    entry = divergence_for(top_case)
    formulas = reference_outputs(top_case, hs)
    modelled = modelled_outputs(top_case, hs, entry) if entry is not None and "model" in entry else formulas
    per_cell_states_f = per_cell_states + [formulas[1:]]
    per_cell_states_m = per_cell_states + [modelled[1:]]
    expected, model_values = [formulas[0]], [modelled[0]]
    if top.return_state:
        for i, (cell, sf, sm) in enumerate(zip(cells, per_cell_states_f, per_cell_states_m)):
            expected += sf
            model_values += sm
            names += [f"cell {i} state {s}" for s in (["h", "c"] if cell.kind == "lstm" else ["h"])]
    shown = Case(top, width, weights[-1], y, mask=mask, initial_state=top_case.initial_state)
    return shown, expected, model_values, entry, names


@given(stacked_cases())
@settings(max_examples=scaled_examples(0.25))
def test_stacked_cells_apply_cell_after_cell(stacked):
    """RNN([cells]) and RNN(StackedRNNCells(cells)) apply the cells one after the other at each step;
    the states come back per cell, in order."""
    stacked_as, cells, features, weights, x, mask, init = stacked
    top = cells[-1]

    def build():
        built = [adapter.make_cell(c.kind, c.units, **cell_arguments(c)) for c in cells]
        cell = built if stacked_as == "list" else adapter.stacked_cells(built)
        return adapter.build(adapter.rnn_layer(cell, **wrapper_arguments(top)), None, features)
    layer = _layer(("stacked", stacked_as, tuple(cells), features), build)
    shown, expected, modelled, entry, names = _stacked_expectation(cells, features, weights, x, mask, init)
    flat_weights = [w for ws in weights for w in ws]

    def run():
        adapter.set_weights(layer, flat_weights)
        return adapter.call_nested(layer, x, mask=mask, initial_state=init)
    path = f"RNN({'[cells]' if stacked_as == 'list' else 'StackedRNNCells(cells)'}) of " + \
        ", ".join(adapter.CELL_CLASSES[c.kind] for c in cells) + ", eager call"
    actual = call_unless_listed_crash(entry if entry is not None and "raises" in entry else None, run,
                                      what="this stacked RNN")
    if actual is None:
        return
    atol, rtol = tolerance()
    if entry is not None and "model" in entry:
        assert_values(shown, actual, expected, modelled, entry["id"], atol=atol, rtol=rtol, path=path, names=names)
    else:
        assert_matches_reference(shown, actual, expected, path=path, names=names)


# --------------------------------------------------------------------------- Bidirectional's halves

@st.composite
def bidirectional_pairs(draw, explicit_backward):
    """A forward layer config, the backward half's config, a merge_mode, weights per half, data.

    ``explicit_backward``: the backward layer is drawn (same kind and return flags, its own units
    where the merge allows, activations, bias, unroll) with the other go_backwards; else the
    forward layer has go_backwards=True and the backward half is its copy with go_backwards=False."""
    fw = explicit(draw(layer_configs(bidirectional=False), label="layer"))
    mode = draw(st.sampled_from(MERGE_MODES), label="merge_mode")
    if explicit_backward:
        bw = explicit(draw(layer_configs(kinds=(fw.kind,), bidirectional=False,
                                         return_sequences=fw.return_sequences, return_state=fw.return_state),
                           label="backward_layer"))
        if mode not in ("concat", "none"):
            bw = replace(bw, units=fw.units)
        bw = replace(bw, go_backwards=not fw.go_backwards)
    else:
        fw = replace(fw, go_backwards=True)
        bw = replace(fw, go_backwards=False)
    features, batch, timesteps = draw(NUMERIC_FEATURES), draw(NUMERIC_BATCH), draw(NUMERIC_TIMESTEPS)
    rng = np.random.default_rng(draw(SEEDS, label="data_seed"))
    wf, wb = random_weights(fw, features, rng), random_weights(bw, features, rng)
    x = rng.uniform(-1, 1, (batch, timesteps, features)).astype(np.float32).astype(np.float64)
    mask = draw(masks(batch, timesteps))
    init = None
    if draw(st.booleans(), label="initial_state"):
        init = [rng.uniform(-0.5, 0.5, (batch, c.units)).astype(np.float32).astype(np.float64)
                for c in (fw, bw) for _ in range(c.n_states)]
    return fw, bw, mode, features, wf, wb, x, mask, init


def _half(config, features, weights, x, mask, init):
    """One half as the layer it is: its own flags, return_state on, and zero_output_for_mask set to
    return_sequences as Bidirectional sets it. ``(case, entry, formulas, modelled)``."""
    hs = _hs()
    half = replace(config, return_state=True, zero_output_for_mask=config.return_sequences, bidirectional=None)
    case = Case(half, features, weights, x, mask=mask, initial_state=init)
    entry = divergence_for(case)
    formulas = reference_outputs(case, hs)
    modelled = modelled_outputs(case, hs, entry) if entry is not None and "model" in entry else formulas
    return case, entry, formulas, modelled


def _merged(fw_values, bw_values, mode, return_sequences, return_state):
    """Bidirectional's values from its halves' ``[output, *states]``: the backward sequence reversed
    back in time, merged; then the forward states and the backward states."""
    y_b = bw_values[0][:, ::-1] if return_sequences else bw_values[0]
    merged = reference.layer.merge(fw_values[0], y_b, None if mode == "none" else mode)
    values = list(merged) if isinstance(merged, list) else [merged]
    return values + (list(fw_values[1:]) + list(bw_values[1:]) if return_state else [])


def _check_bidirectional(fw, bw, mode, features, wf, wb, x, mask, init, backward_layer):
    """Build Bidirectional(forward, backward_layer=...) and assert it against its halves' formulas."""
    n_fw = fw.n_states
    shown = Case(replace(fw, bidirectional=mode), features, wf + wb, x, mask=mask, initial_state=init)
    # building without backward_layer is judged on the configuration alone (no mask, no initial state)
    build_entry = None if backward_layer else divergence_for(Case(replace(fw, bidirectional=mode), features, [], x))

    def build():
        def inner(c):
            return adapter.make_layer(c.kind, c.units, kernel_initializer="zeros", recurrent_initializer="zeros",
                                      **c.keras_kwargs())
        merge_mode = None if mode == "none" else mode
        return adapter.build(adapter.bidirectional_with_backward_layer(
            inner(fw), inner(bw) if backward_layer else None, merge_mode=merge_mode), None, features)
    layer = call_unless_listed_crash(build_entry if build_entry is not None and "raises" in build_entry else None,
                                     build, what="building this Bidirectional layer")
    if layer is None:
        return
    halves = [_half(fw, features, wf, x, mask, init[:n_fw] if init else None),
              _half(bw, features, wb, x, mask, init[n_fw:] if init else None)]
    expected = _merged(halves[0][2], halves[1][2], mode, fw.return_sequences, fw.return_state)
    modelled = _merged(halves[0][3], halves[1][3], mode, fw.return_sequences, fw.return_state)
    raising = next((h[1] for h in halves if h[1] is not None and "raises" in h[1]), None)
    value_ids = sorted({h[1]["id"] for h in halves if h[1] is not None and "model" in h[1]})
    names = output_names(shown.config)
    path = ("Bidirectional(layer, backward_layer=...)" if backward_layer else
            "Bidirectional(layer with go_backwards=True)") + ", eager call"
    actual = call_unless_listed_crash(raising, lambda: _set_and_call(layer, shown), what="a half of this Bidirectional")
    if actual is None:
        return
    atol, rtol = tolerance()
    if value_ids:
        assert_values(shown, actual, expected, modelled, "+".join(value_ids), atol=atol, rtol=rtol, path=path,
                      names=names)
    else:
        assert_matches_reference(shown, actual, expected, path=path, names=names)


@given(bidirectional_pairs(explicit_backward=True))
@settings(max_examples=scaled_examples(0.25))
def test_bidirectional_with_backward_layer_runs_each_half(pair):
    """Bidirectional(layer, backward_layer=other): each half computes its own layer's formulas, merged."""
    _check_bidirectional(*pair, backward_layer=True)


@given(bidirectional_pairs(explicit_backward=False))
@settings(max_examples=scaled_examples(0.15))
def test_bidirectional_over_backwards_layer_generates_forward_half(pair):
    """Bidirectional over a go_backwards=True layer: that layer is the forward half, and the generated
    backward half runs forwards (its sequence reversed back, as always)."""
    _check_bidirectional(*pair, backward_layer=False)


# --------------------------------------------------------------------------- time_major (Keras 2)

@pytest.mark.skipif(not adapter.conventions()["accepts_time_major"],
                    reason=f"unsupported: Keras {adapter.KERAS_VERSION}'s RNN layers have no time_major argument "
                           "(conventions.toml accepts_time_major)")
@given(case=cases(configs=layer_configs(bidirectional=False).map(explicit), with_masks=False),
       time_major=st.booleans())
@settings(max_examples=scaled_examples(0.25))
def test_time_major_inputs_and_outputs(case, time_major):
    """RNN(cell, time_major=True) reads (timesteps, batch, features) and returns its sequence as
    (timesteps, batch, units); the states stay (batch, units). time_major=False is batch-major."""
    c = case.config

    def build():
        cell = adapter.make_cell(c.kind, c.units, **cell_arguments(c))
        return adapter.build(adapter.rnn_layer(cell, time_major=time_major, **wrapper_arguments(c)), None, case.features)
    layer = _layer(("time_major", time_major, c, case.features), build)
    assert_conforms(case, lambda: _call_time_major(layer, case, time_major),
                    path=f"RNN({adapter.CELL_CLASSES[c.kind]}, time_major={time_major}), eager call")


def _call_time_major(layer, case, time_major):
    """Set the weights and call on ``case.x`` (transposed to (T, B, F) when ``time_major``); the outputs
    in batch-major order, after checking that a time-major sequence came back (T, B, units)."""
    c = case.config
    adapter.set_weights(layer, case.weights)
    x = np.transpose(case.x, (1, 0, 2)) if time_major else case.x
    out = adapter.call(layer, x, initial_state=case.initial_state)
    if time_major and c.return_sequences:
        want = (case.timesteps, case.batch, c.units)
        assert out[0].shape == want, f"time-major output.shape={out[0].shape}, but should be {want}"
        out[0] = np.transpose(out[0], (1, 0, 2))
    return out


@pytest.mark.skipif(not adapter.conventions()["accepts_time_major"],
                    reason=f"unsupported: Keras {adapter.KERAS_VERSION}'s RNN layers have no time_major argument "
                           "(conventions.toml accepts_time_major)")
@pytest.mark.parametrize("time_major", (False, True))
@pytest.mark.parametrize("kind", ("simple_rnn", "lstm", "gru"))
@given(data=st.data())
@settings(max_examples=scaled_examples(0.05))
def test_time_major_layers(kind, time_major, data):
    """SimpleRNN / LSTM / GRU(time_major=True) read and return time-major sequences, as RNN does."""
    case = data.draw(cases(configs=layer_configs(kinds=(kind,), bidirectional=False).map(explicit),
                           with_masks=False), label="case")
    c = case.config

    def build():
        layer = adapter.make_layer(c.kind, c.units, time_major=time_major, kernel_initializer="zeros",
                                   recurrent_initializer="zeros", **c.keras_kwargs())
        return adapter.build(layer, None, case.features)
    layer = _layer(("time_major_layer", time_major, c, case.features), build)
    assert_conforms(case, lambda: _call_time_major(layer, case, time_major),
                    path=f"{adapter.LAYER_CLASSES[c.kind]}(time_major={time_major}), eager call")


#: the requirements the Bidirectional docstring puts on ``backward_layer``: "the same values for
#: `stateful`, `return_states`, `return_sequences`, etc." and "different `go_backwards`"
BACKWARD_LAYER_MISMATCHES = ("go_backwards", "return_sequences", "return_state", "stateful")


@given(fw=layer_configs(bidirectional=False).map(explicit), mismatch=st.sampled_from(BACKWARD_LAYER_MISMATCHES),
       mode=st.sampled_from(MERGE_MODES))
@settings(max_examples=scaled_examples(0.25))
def test_bidirectional_refuses_a_mismatched_backward_layer(fw, mismatch, mode):
    """A backward_layer that breaks a documented requirement is refused: "A `ValueError` will be
    raised if these requirements are not met"."""
    flags = dict(fw.keras_kwargs(), stateful=False)
    backward = dict(flags, go_backwards=not fw.go_backwards)
    if mismatch == "go_backwards":
        backward["go_backwards"] = fw.go_backwards
    else:
        backward[mismatch] = not flags.get(mismatch, False)

    def inner(kw):
        return adapter.make_layer(fw.kind, fw.units, kernel_initializer="zeros", recurrent_initializer="zeros", **kw)
    layer, backward_layer = inner(flags), inner(backward)
    assert_refused(lambda: adapter.bidirectional_with_backward_layer(
        layer, backward_layer, merge_mode=None if mode == "none" else mode))
