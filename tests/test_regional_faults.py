"""Regional faults (faults/regional.py): each one bites inside its region and nowhere else.

For every regional fault, two hand-chosen examples with explicit weights:

- *inside* its region: some output changes when the fault is applied
  (non-equivalence: the fault is a real bug there, max |diff| > 1e-4, well
  above the spec's float32 tolerance);
- *outside* its region, next to it (same layer, one flag or size changed):
  every output is identical, bit for bit, with and without the fault
  (confinement).

Layers are built fresh inside and outside the fault (activations and call
signatures are resolved when a layer is built). The faults whose region is
decided at run time for a traced graph (timesteps unknown when traced) are
also checked through the compiled call the spec uses.
"""

from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np
import pytest

from rnnspec.faults.catalogue import CATALOGUE, get

adapter = pytest.importorskip("rnnspec.spec.adapter", reason="needs Keras")
if not adapter.IS_KERAS3:
    pytest.skip("the regional faults are implemented for Keras 3", allow_module_level=True)
if adapter.BACKEND != "tensorflow":
    # torch runs unmasked LSTM/GRU in a fused CPU kernel that bypasses the patched cell and
    # loop, and raises on unroll + go_backwards + mask: the hand-chosen examples assume TF
    pytest.skip("the regional faults are checked on the TensorFlow backend", allow_module_level=True)

from rnnspec.faults.regional import REGIONAL  # noqa: E402
from rnnspec.spec.cases import LayerConfig, keras_layer, random_weights  # noqa: E402


@dataclass
class Ex:
    config: LayerConfig
    features: int = 3
    batch: int = 2
    timesteps: int = 4
    seed: int = 0
    mask: Optional[list] = None
    initial_state: bool = False
    training: bool = False
    weight_scale: float = 1.0
    stateful: bool = False        # two calls of a stateful layer; both outputs compared
    compiled: bool = False        # the spec's compiled call (tf.function, unknown batch and time)
    notes: dict = field(default_factory=dict)


def _inputs(ex):
    rng = np.random.default_rng(ex.seed)
    weights = [w * ex.weight_scale for w in random_weights(ex.config, ex.features, rng)]
    x = rng.uniform(-1, 1, (ex.batch, ex.timesteps, ex.features)).astype(np.float32)
    init = None
    if ex.initial_state:
        init = [rng.uniform(-0.5, 0.5, (ex.batch, ex.config.units)).astype(np.float32)
                for _ in range(ex.config.n_states)]
    mask = None if ex.mask is None else np.array(ex.mask, bool)
    return weights, x, mask, init


def run(ex, fault=None):
    """The example's outputs (a list of float64 arrays), with ``fault`` applied or not."""
    weights, x, mask, init = _inputs(ex)
    with get(fault).active() if fault else nullcontext():
        if ex.stateful:
            layer = keras_layer(ex.config, ex.features, batch=ex.batch, stateful=True)
            adapter.set_weights(layer, weights)
            first = adapter.call(layer, x, mask=mask, training=ex.training)
            second = adapter.call(layer, x[:, ::-1], mask=mask, training=ex.training)
            return first + second
        layer = keras_layer(ex.config, ex.features)
        if ex.compiled:
            timesteps = ex.timesteps if ex.config.unroll else None
            fn = adapter.compiled_call(layer, has_mask=mask is not None,
                                       n_initial_states=len(init or ()), training=ex.training,
                                       timesteps=timesteps)
            return fn(weights, x, mask, init)
        adapter.set_weights(layer, weights)
        return adapter.call(layer, x, mask=mask, initial_state=init, training=ex.training)


C = LayerConfig
SEQ = dict(return_sequences=True)
RAGGED = [[1, 1, 0], [1, 1, 1]]             # row 0's last step masked
LEFT = [[0, 1, 1], [1, 1, 1]]               # every row's last step kept

# fault -> (inside its region, outside it)
EXAMPLES = {
    "unroll_initial_state_dropped": (
        Ex(C("lstm", units=3, unroll=True), initial_state=True),
        Ex(C("lstm", units=3), initial_state=True)),
    "unroll_last_output_unmasked": (
        Ex(C("simple_rnn", units=3, unroll=True), timesteps=3, mask=RAGGED),
        Ex(C("simple_rnn", units=3, unroll=True, **SEQ), timesteps=3, mask=RAGGED)),
    "bidirectional_mul_backward_not_rereversed": (
        Ex(C("gru", units=2, bidirectional="mul", **SEQ)),
        Ex(C("gru", units=2, bidirectional="ave", **SEQ))),
    "bidirectional_unrolled_mask_reversed_for_forward": (
        Ex(C("gru", units=2, unroll=True, bidirectional="concat", **SEQ),
           mask=[[1, 1, 1, 0], [1, 1, 0, 0]]),
        Ex(C("gru", units=2, unroll=True, bidirectional="concat"),
           mask=[[1, 1, 1, 0], [1, 1, 0, 0]])),
    "fully_masked_row_length_clamped_to_one": (
        Ex(C("lstm", units=3, **SEQ), timesteps=3, mask=[[0, 0, 0], [1, 1, 0]]),
        Ex(C("lstm", units=3, **SEQ), timesteps=3, mask=[[1, 0, 0], [1, 1, 0]])),
    "mask_holes_compacted_to_span": (
        Ex(C("gru", units=3, **SEQ), mask=[[1, 0, 1, 1], [1, 1, 1, 1]]),
        Ex(C("gru", units=3, **SEQ), mask=[[0, 0, 1, 1], [1, 1, 1, 0]])),
    "final_state_not_held_at_masked_tail": (
        Ex(C("gru", units=3, return_state=True), timesteps=3, mask=RAGGED),
        Ex(C("gru", units=3, return_state=True), timesteps=3, mask=LEFT)),
    "stateful_masked_call_starts_from_zeros": (
        Ex(C("simple_rnn", units=3), timesteps=3, mask=RAGGED, stateful=True),
        Ex(C("simple_rnn", units=3), timesteps=3, stateful=True)),
    "gru_reset_after_false_ignored_impl2": (
        Ex(C("gru", units=3, reset_after=False, implementation=2)),
        Ex(C("gru", units=3, reset_after=False, implementation=1))),
    "gru_impl1_candidate_bias_outside_reset": (
        Ex(C("gru", units=3, implementation=1)),
        Ex(C("gru", units=3, implementation=2))),
    "relu_is_relu6": (
        Ex(C("simple_rnn", units=3, activation="relu", **SEQ), weight_scale=20.0),
        Ex(C("simple_rnn", units=3, activation="relu", **SEQ))),
    "sigmoid_table_clamped_beyond_3": (
        Ex(C("lstm", units=3, **SEQ), weight_scale=8.0),
        Ex(C("lstm", units=3, **SEQ))),
    "hard_sigmoid_lower_clip_missing": (
        Ex(C("lstm", units=3, recurrent_activation="hard_sigmoid", **SEQ), weight_scale=10.0),
        Ex(C("lstm", units=3, recurrent_activation="hard_sigmoid", **SEQ))),
    "lstm_recurrent_tail_tile_dropped": (
        Ex(C("lstm", units=40)),
        Ex(C("lstm", units=32))),
    "chunked_loop_resets_state_every_8": (
        Ex(C("gru", units=3, **SEQ), timesteps=12, compiled=True),
        Ex(C("gru", units=3, **SEQ), timesteps=8, compiled=True)),
    "training_ignores_go_backwards": (
        Ex(C("simple_rnn", units=3, go_backwards=True, **SEQ), training=True),
        Ex(C("simple_rnn", units=3, **SEQ), training=True)),
    "training_forces_sigmoid_recurrent_activation": (
        Ex(C("lstm", units=3, recurrent_activation="hard_sigmoid"), training=True),
        Ex(C("lstm", units=3, recurrent_activation="hard_sigmoid"))),
    "unrolled_backwards_zofm_states_not_held": (
        Ex(C("simple_rnn", units=3, unroll=True, go_backwards=True, zero_output_for_mask=True,
             return_state=True), timesteps=3, mask=[[1, 0, 1], [1, 1, 0]]),
        Ex(C("simple_rnn", units=3, unroll=True, go_backwards=True, zero_output_for_mask=False,
             return_state=True), timesteps=3, mask=[[1, 0, 1], [1, 1, 0]])),
    "single_step_ignores_initial_state": (
        Ex(C("lstm", units=3), timesteps=1, initial_state=True, compiled=True),
        Ex(C("lstm", units=3), timesteps=2, initial_state=True, compiled=True)),
    "go_backwards_reverses_state_list": (
        Ex(C("lstm", units=3, go_backwards=True), initial_state=True),
        Ex(C("lstm", units=3), initial_state=True)),
}

# the same checks on the other execution path, for the faults whose region is decided
# at run time in a traced graph, or on the unrolled path
EXTRA = {
    "chunked_loop_resets_state_every_8 eager": (
        "chunked_loop_resets_state_every_8",
        replace(EXAMPLES["chunked_loop_resets_state_every_8"][0], compiled=False, timesteps=9),
        replace(EXAMPLES["chunked_loop_resets_state_every_8"][1], compiled=False)),
    "chunked_loop_resets_state_every_8 go_backwards unrolled": (
        "chunked_loop_resets_state_every_8",
        Ex(C("lstm", units=2, go_backwards=True, unroll=True, **SEQ), timesteps=10, compiled=True),
        Ex(C("lstm", units=2, go_backwards=True, unroll=True, **SEQ), timesteps=6, compiled=True)),
    "single_step_ignores_initial_state eager": (
        "single_step_ignores_initial_state",
        replace(EXAMPLES["single_step_ignores_initial_state"][0], compiled=False),
        replace(EXAMPLES["single_step_ignores_initial_state"][1], compiled=False)),
    "fully_masked_row_length_clamped_to_one compiled": (
        "fully_masked_row_length_clamped_to_one",
        replace(EXAMPLES["fully_masked_row_length_clamped_to_one"][0], compiled=True),
        replace(EXAMPLES["fully_masked_row_length_clamped_to_one"][1], compiled=True)),
}
for _name in ("relu_is_relu6", "sigmoid_table_clamped_beyond_3", "hard_sigmoid_lower_clip_missing",
              "gru_reset_after_false_ignored_impl2", "mask_holes_compacted_to_span"):
    EXTRA[f"{_name} compiled"] = (_name, replace(EXAMPLES[_name][0], compiled=True),
                                  replace(EXAMPLES[_name][1], compiled=True))

CASES = {name: (name, inside, outside) for name, (inside, outside) in EXAMPLES.items()}
CASES.update(EXTRA)


def test_every_regional_fault_has_examples():
    assert len(REGIONAL) >= 15
    assert sorted(EXAMPLES) == sorted(REGIONAL)
    catalogued = {f.name: f for f in CATALOGUE}
    for name in REGIONAL:
        f = catalogued[name]           # registered in the catalogue
        assert f.region != "global" and len(f.region) > 20, f"{name}: say where it acts"
        assert len(f.imitates) > 30 and "\n" not in f.imitates


@pytest.mark.parametrize("case", sorted(CASES))
def test_changes_results_inside_its_region(case):
    name, inside, _ = CASES[case]
    clean, faulty = run(inside), run(inside, name)
    assert len(clean) == len(faulty)
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(clean, faulty))
    assert diff > 1e-4, f"{name}: no output changed inside its region (max |diff| {diff:.2e})"


@pytest.mark.parametrize("case", sorted(CASES))
def test_leaves_results_alone_outside_its_region(case):
    name, _, outside = CASES[case]
    clean, faulty = run(outside), run(outside, name)
    assert len(clean) == len(faulty)
    for i, (a, b) in enumerate(zip(clean, faulty)):
        assert a.shape == b.shape and np.array_equal(a, b), (
            f"{name}: output {i} changed outside its region (max |diff| {np.max(np.abs(a - b)):.2e})")
