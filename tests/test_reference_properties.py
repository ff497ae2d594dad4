"""Hypothesis properties of the float64 reference in ``reference/``.

These are laws the loop over time must obey whatever the weights are:
reversal, masking, state hand-over between calls, Bidirectional assembly,
and the agreement of parameter counts with weight shapes. Sizes are small
(units 1-4, features 1-3, timesteps 1-6, batch 1-3) and weights are drawn
in [-1, 1] with all entries distinct, so every gate block differs.
"""

from dataclasses import dataclass
from math import prod

import numpy as np
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from rnnspec.reference.cells import KINDS, CellSpec
from rnnspec.reference.layer import run_bidirectional, run_layer
from rnnspec.reference.structure import (
    bidirectional_param_count,
    param_count,
    stacked_param_counts,
    weight_shapes,
)

# Respect a Hypothesis profile loaded by rnnspec's plugin (dev / ci / thorough);
# without one (e.g. -p no:rnnspec), run 50 examples instead of Hypothesis's 100.
_PROFILE_LOADED = settings.default.max_examples != settings.get_profile("default").max_examples
FAST = settings(deadline=None) if _PROFILE_LOADED else settings(max_examples=50, deadline=None)

UNIT = st.floats(-1.0, 1.0, allow_nan=False, allow_infinity=False, allow_subnormal=False)


def same(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-12)


@dataclass
class Case:
    spec: CellSpec
    weights: tuple          # (kernel, recurrent_kernel, bias or None)
    x: np.ndarray           # (batch, timesteps, features)
    init: tuple             # initial states, each (batch, units)

    @property
    def batch(self):
        return self.x.shape[0]

    @property
    def timesteps(self):
        return self.x.shape[1]


@st.composite
def weights_for(draw, spec, features):
    """Kernel, recurrent kernel, bias in the shapes ``weight_shapes`` gives, entries distinct."""
    shapes = dict(weight_shapes(spec.kind, spec.units, features,
                                use_bias=spec.use_bias, reset_after=spec.reset_after))
    out = [draw(arrays(np.float64, shapes[name], elements=UNIT, unique=True))
           for name in ("kernel", "recurrent_kernel")]
    out.append(draw(arrays(np.float64, shapes["bias"], elements=UNIT, unique=True))
               if spec.use_bias else None)
    return tuple(out)


@st.composite
def cases(draw, max_timesteps=6, min_timesteps=1, random_init=None):
    kind = draw(st.sampled_from(KINDS))
    spec = CellSpec(
        kind,
        draw(st.integers(1, 4)),
        activation=draw(st.sampled_from(["tanh", "tanh", "relu", "hard_sigmoid"])),
        recurrent_activation=draw(st.sampled_from(["sigmoid", "sigmoid", "hard_sigmoid"])),
        use_bias=draw(st.booleans()),
        reset_after=draw(st.booleans()),
        hard_sigmoid=draw(st.sampled_from(["keras2", "keras3"])),
    )
    features = draw(st.integers(1, 3))
    timesteps = draw(st.integers(min_timesteps, max_timesteps))
    batch = draw(st.integers(1, 3))
    weights = draw(weights_for(spec, features))
    x = draw(arrays(np.float64, (batch, timesteps, features), elements=UNIT))
    if random_init is None:
        random_init = draw(st.booleans())
    if random_init:
        init = tuple(draw(arrays(np.float64, (batch, spec.units), elements=UNIT))
                     for _ in range(spec.n_states))
    else:
        init = tuple(np.zeros((batch, spec.units)) for _ in range(spec.n_states))
    return Case(spec, weights, x, init)


def run(case, x=None, **kw):
    kw.setdefault("initial_state", case.init)
    return run_layer(case.spec, case.x if x is None else x, *case.weights, **kw)


def states_equal(a, b):
    assert len(a) == len(b)
    for s, t in zip(a, b):
        same(s, t)


# ---------------------------------------------------------------------------
# Reversal
# ---------------------------------------------------------------------------

@FAST
@given(cases())
def test_go_backwards_is_forward_on_reversed_input(case):
    """go_backwards on x equals the forward pass on x reversed in time.

    Final states agree, and the backward run's sequence (in processing order)
    equals the forward-on-reversed sequence, step for step.
    """
    back = run(case, go_backwards=True)
    fwd_rev = run(case, x=case.x[:, ::-1])
    same(back.sequence, fwd_rev.sequence)
    same(back.last_output, fwd_rev.last_output)
    states_equal(back.states, fwd_rev.states)


@FAST
@given(cases(), st.data())
def test_go_backwards_with_mask_is_forward_on_reversed_input_and_mask(case, data):
    """With a mask, go_backwards equals the forward pass on x and mask both reversed."""
    mask = data.draw(arrays(np.bool_, (case.batch, case.timesteps)))
    zero = data.draw(st.booleans())
    back = run(case, go_backwards=True, mask=mask, zero_output_for_mask=zero)
    fwd_rev = run(case, x=case.x[:, ::-1], mask=mask[:, ::-1], zero_output_for_mask=zero)
    same(back.sequence, fwd_rev.sequence)
    states_equal(back.states, fwd_rev.states)


# ---------------------------------------------------------------------------
# Masking
# ---------------------------------------------------------------------------

@FAST
@given(cases(), st.data())
def test_right_padded_row_matches_truncated_run(case, data):
    """A row masked from step k on ends as if it had been cut to its first k steps.

    Each row gets its own k in [0, T]; its final states and its last_output
    (zero_output_for_mask=False) equal those of the unmasked run on
    x[row, :k]. Its sequence up to k equals the truncated run's sequence.
    For k = 0 that is the initial state and a zero output.
    """
    T = case.timesteps
    ks = [data.draw(st.integers(0, T), label=f"k[{r}]") for r in range(case.batch)]
    mask = np.array([[t < k for t in range(T)] for k in ks])
    masked = run(case, mask=mask, zero_output_for_mask=False)
    for r, k in enumerate(ks):
        row_init = tuple(s[r:r + 1] for s in case.init)
        short = run(case, x=case.x[r:r + 1, :k], initial_state=row_init)
        states_equal(tuple(s[r:r + 1] for s in masked.states), short.states)
        same(masked.last_output[r:r + 1], short.last_output)
        same(masked.sequence[r:r + 1, :k], short.sequence)


@FAST
@given(cases(), st.data())
def test_left_padded_row_backwards_matches_truncated_run(case, data):
    """go_backwards over a row masked before step j ends as if the row were x[:, j:].

    (The backward pass meets the padding last, so it acts like right padding.)
    """
    T = case.timesteps
    j = data.draw(st.integers(0, T))
    mask = np.array([[t >= j for t in range(T)]] * case.batch)
    masked = run(case, mask=mask, go_backwards=True)
    short = run(case, x=case.x[:, j:], go_backwards=True)
    states_equal(masked.states, short.states)
    same(masked.last_output, short.last_output)


@FAST
@given(cases(), st.data())
def test_masked_steps_zero_or_repeat(case, data):
    """Masked outputs are exactly zero with zero_output_for_mask=True; otherwise
    they repeat the previous emitted output (zeros before the first unmasked step).

    The flag changes nothing else: unmasked outputs, final states and the last output (the
    docstring: it "is only used when `return_sequences` is `True`") agree.
    """
    mask = data.draw(arrays(np.bool_, (case.batch, case.timesteps)))
    go_back = data.draw(st.booleans())
    zeroed = run(case, mask=mask, go_backwards=go_back, zero_output_for_mask=True)
    held = run(case, mask=mask, go_backwards=go_back, zero_output_for_mask=False)
    proc_mask = mask[:, ::-1] if go_back else mask       # mask in processing order

    assert np.all(zeroed.sequence[~proc_mask] == 0.0)
    same(zeroed.sequence[proc_mask], held.sequence[proc_mask])
    states_equal(zeroed.states, held.states)

    for r in range(case.batch):
        prev = np.zeros(case.spec.units)
        for t in range(case.timesteps):
            if not proc_mask[r, t]:
                assert np.array_equal(held.sequence[r, t], prev)
            prev = held.sequence[r, t]
    same(held.last_output, held.sequence[:, -1])
    same(zeroed.last_output, held.last_output)


@FAST
@given(cases(random_init=True), st.data())
def test_fully_masked_row_keeps_initial_state(case, data):
    """A row whose every step is masked keeps its initial state and emits zeros.

    Other rows of the batch (random masks) do not disturb it.
    """
    mask = data.draw(arrays(np.bool_, (case.batch, case.timesteps)))
    row = data.draw(st.integers(0, case.batch - 1))
    mask[row] = False
    res = run(case, mask=mask, go_backwards=data.draw(st.booleans()),
              zero_output_for_mask=data.draw(st.booleans()))
    for s, s0 in zip(res.states, case.init):
        assert np.array_equal(s[row], s0[row])
    assert np.all(res.sequence[row] == 0.0)
    assert np.all(res.last_output[row] == 0.0)


# ---------------------------------------------------------------------------
# States
# ---------------------------------------------------------------------------

@FAST
@given(cases(), st.booleans())
def test_unmasked_h_state_is_last_output(case, go_back):
    """With no mask, the returned h equals last_output equals sequence[:, -1]."""
    res = run(case, go_backwards=go_back)
    assert len(res.states) == case.spec.n_states
    assert res.sequence.shape == (case.batch, case.timesteps, case.spec.units)
    same(res.states[0], res.last_output)
    same(res.last_output, res.sequence[:, -1])


@FAST
@given(cases(), st.data())
def test_chained_runs_equal_one_run(case, data):
    """Running x[:, :k] then x[:, k:] from the first run's states equals one run on x.

    This is what a stateful layer does across batches: sequences concatenate,
    final states agree.
    """
    k = data.draw(st.integers(0, case.timesteps))
    whole = run(case)
    first = run(case, x=case.x[:, :k])
    second = run(case, x=case.x[:, k:], initial_state=first.states)
    same(np.concatenate([first.sequence, second.sequence], axis=1), whole.sequence)
    states_equal(second.states, whole.states)


@FAST
@given(cases(), st.data())
def test_chained_runs_with_mask_carry_states(case, data):
    """With a mask, chaining still hands over the states exactly (outputs may differ,
    since a new call starts its held output from zeros)."""
    k = data.draw(st.integers(0, case.timesteps))
    mask = data.draw(arrays(np.bool_, (case.batch, case.timesteps)))
    whole = run(case, mask=mask)
    first = run(case, x=case.x[:, :k], mask=mask[:, :k])
    second = run(case, x=case.x[:, k:], mask=mask[:, k:], initial_state=first.states)
    states_equal(second.states, whole.states)


@FAST
@given(cases(), st.data())
def test_batch_rows_are_independent(case, data):
    """Each batch row gives the same result when run on its own."""
    mask = data.draw(arrays(np.bool_, (case.batch, case.timesteps)))
    res = run(case, mask=mask)
    for r in range(case.batch):
        one = run(case, x=case.x[r:r + 1], mask=mask[r:r + 1],
                  initial_state=tuple(s[r:r + 1] for s in case.init))
        same(res.sequence[r:r + 1], one.sequence)
        states_equal(tuple(s[r:r + 1] for s in res.states), one.states)


# ---------------------------------------------------------------------------
# Bidirectional
# ---------------------------------------------------------------------------

@FAST
@given(cases(random_init=False), st.data())
def test_bidirectional_sequence_is_forward_and_rereversed_backward(case, data):
    """Bidirectional (concat, return_sequences) at t is
    concat(forward.sequence[:, t], backward.sequence[:, T-1-t]), where backward
    is the go_backwards layer with its own weights; states are the halves' states.
    """
    features = case.x.shape[-1]
    bw_weights = data.draw(weights_for(case.spec, features))
    mask = data.draw(st.none() | arrays(np.bool_, (case.batch, case.timesteps)))
    out, fw_states, bw_states = run_bidirectional(
        case.spec, case.x, case.weights, bw_weights,
        merge_mode="concat", return_sequences=True, mask=mask)
    # Bidirectional sets zero_output_for_mask = return_sequences on both halves.
    fw = run_layer(case.spec, case.x, *case.weights, mask=mask, zero_output_for_mask=True)
    bw = run_layer(case.spec, case.x, *bw_weights, mask=mask, go_backwards=True,
                   zero_output_for_mask=True)
    T, u = case.timesteps, case.spec.units
    assert out.shape == (case.batch, T, 2 * u)
    for t in range(T):
        same(out[:, t], np.concatenate([fw.sequence[:, t], bw.sequence[:, T - 1 - t]], axis=-1))
    states_equal(fw_states, fw.states)
    states_equal(bw_states, bw.states)


@FAST
@given(cases(random_init=False), st.data())
def test_bidirectional_last_output_is_both_halves_last(case, data):
    """Without return_sequences, concat(forward.last_output, backward.last_output);
    the backward half's last output is the one for input step 0."""
    bw_weights = data.draw(weights_for(case.spec, case.x.shape[-1]))
    out, _, _ = run_bidirectional(case.spec, case.x, case.weights, bw_weights)
    fw = run_layer(case.spec, case.x, *case.weights)
    bw = run_layer(case.spec, case.x, *bw_weights, go_backwards=True)
    same(out, np.concatenate([fw.last_output, bw.last_output], axis=-1))
    same(bw.last_output, bw.sequence[:, -1])


# ---------------------------------------------------------------------------
# Structure
# ---------------------------------------------------------------------------

@FAST
@given(st.sampled_from(KINDS), st.integers(1, 300), st.integers(1, 300),
       st.booleans(), st.booleans())
def test_param_count_is_sum_of_weight_sizes(kind, units, features, use_bias, reset_after):
    """param_count is the sum over weight_shapes of the product of each shape;
    Bidirectional doubles it; a one-layer stack is that one layer."""
    flags = dict(use_bias=use_bias, reset_after=reset_after)
    shapes = weight_shapes(kind, units, features, **flags)
    total = sum(prod(shape) for _, shape in shapes)
    assert param_count(kind, units, features, **flags) == total
    assert bidirectional_param_count(kind, units, features, **flags) == 2 * total
    assert stacked_param_counts(kind, [units], features, **flags) == [total]
    gates = {"simple_rnn": 1, "lstm": 4, "gru": 3}[kind]
    bias_rows = (2 if kind == "gru" and reset_after else 1) if use_bias else 0
    assert total == gates * units * (features + units + bias_rows)


@FAST
@given(st.sampled_from(KINDS), st.lists(st.integers(1, 64), min_size=1, max_size=4),
       st.integers(1, 64), st.booleans())
def test_stacked_counts_feed_widths_upward(kind, units_per_layer, features, bidirectional):
    """Layer i of a stack counts as one layer whose input width is layer i-1's output width."""
    counts = stacked_param_counts(kind, units_per_layer, features, bidirectional=bidirectional)
    width = features
    for units, count in zip(units_per_layer, counts):
        one = param_count(kind, units, width)
        assert count == (2 * one if bidirectional else one)
        width = units * (2 if bidirectional else 1)


@FAST
@given(cases(random_init=False))
def test_weights_of_weight_shapes_run(case):
    """Weights in exactly the shapes weight_shapes gives are accepted by the cells,
    and the output has the layer's unit width."""
    res = run(case)
    assert res.sequence.shape == (case.batch, case.timesteps, case.spec.units)
    assert np.all(np.isfinite(res.sequence))
