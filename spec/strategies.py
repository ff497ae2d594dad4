"""Hypothesis strategies: configurations, weights, inputs, masks.

Structural draws (units, features, flags) shrink towards the smallest,
default layer. Weights and inputs come from a drawn seed through
:func:`rnnspec.spec.cases.random_weights`: fan-in scaled and different for every
gate (constant weights give every gate the same pre-activation and hide a
swapped gate order), reproducible from the seed, and printed in full by the
failure reproducer.
"""

import numpy as np
from hypothesis import strategies as st

from rnnspec.reference.activations import ACTIVATION_NAMES
from rnnspec.spec.cases import Case, LayerConfig, random_weights
from rnnspec.spec.tiers import TIERS

KINDS = ("simple_rnn", "lstm", "gru")
MERGE_MODES = ("concat", "sum", "mul", "ave", "none")
MASK_KINDS = ("none", "right_padded", "left_padded", "holes", "fully_masked_row")

# Sizes for numerical properties: small enough that each example is cheap
# and that traced graphs are reused, large enough to separate every gate.
NUMERIC_UNITS = st.integers(1, 6)
NUMERIC_FEATURES = st.integers(1, 5)
NUMERIC_TIMESTEPS = st.integers(1, 6)
NUMERIC_BATCH = st.integers(1, 3)
SEEDS = st.integers(0, 2**32 - 1)
# Gates must stay bounded for the float32/float64 comparison to mean anything:
# with recurrent_activation="linear" or "relu" a GRU's update gate z is
# unbounded and h' = z*h + (1-z)*h~ grows geometrically (measured: 6.8e42 after
# 10 steps, inf in float32). Keras accepts those, but no tolerance can compare
# them, so recurrent activations are drawn from the bounded ones.
RECURRENT_ACTIVATIONS = ("sigmoid", "hard_sigmoid", "tanh")


@st.composite
def layer_configs(draw, kinds=KINDS, bidirectional=None, units=NUMERIC_UNITS,
                  return_sequences=None, return_state=None, go_backwards=None,
                  allow_zero_output_for_mask=True):
    """A LayerConfig with every numerically relevant flag drawn."""
    kind = draw(st.sampled_from(kinds).map(str), label="kind")
    draw_bool = st.booleans()
    bidi = draw(st.sampled_from((None,) + MERGE_MODES)) if bidirectional is None else (
        draw(st.sampled_from(MERGE_MODES)) if bidirectional else None)
    config = LayerConfig(
        kind=kind,
        units=draw(units, label="units"),
        activation=draw(st.sampled_from(ACTIVATION_NAMES), label="activation"),
        recurrent_activation=draw(st.sampled_from(RECURRENT_ACTIVATIONS), label="recurrent_activation"),
        use_bias=draw(draw_bool, label="use_bias"),
        reset_after=draw(draw_bool, label="reset_after") if kind == "gru" else True,
        unit_forget_bias=draw(draw_bool, label="unit_forget_bias") if kind == "lstm" else True,
        implementation=draw(st.sampled_from((2, 1)), label="implementation") if kind != "simple_rnn" else 2,
        return_sequences=draw(draw_bool) if return_sequences is None else return_sequences,
        return_state=draw(draw_bool) if return_state is None else return_state,
        go_backwards=(draw(draw_bool) if go_backwards is None else go_backwards) if not bidi else False,
        unroll=draw(draw_bool, label="unroll"),
        zero_output_for_mask=(draw(st.sampled_from((None, True, False)), label="zero_output_for_mask")
                              if allow_zero_output_for_mask and not bidi else None),
        bidirectional=bidi,
    )
    return config


@st.composite
def masks(draw, batch, timesteps, kinds=MASK_KINDS):
    """A (batch, timesteps) boolean mask, True = keep, or None."""
    kind = draw(st.sampled_from(kinds), label="mask")
    if kind == "none":
        return None
    if kind == "holes":
        flat = draw(st.lists(st.booleans(), min_size=batch * timesteps, max_size=batch * timesteps))
        return np.array(flat, bool).reshape(batch, timesteps)
    lengths = draw(st.lists(st.integers(1, timesteps), min_size=batch, max_size=batch), label="lengths")
    steps = np.arange(timesteps)[None, :]
    lengths = np.array(lengths)[:, None]
    if kind == "right_padded":
        return steps < lengths
    if kind == "left_padded":
        return steps >= timesteps - lengths
    mask = steps < lengths
    mask[draw(st.integers(0, batch - 1), label="masked_row")] = False
    return mask


@st.composite
def cases(draw, configs=None, features=NUMERIC_FEATURES, timesteps=NUMERIC_TIMESTEPS,
          batch=NUMERIC_BATCH, with_masks=True, with_initial_state=True):
    """A full example: a config, its weights, inputs, and optionally a mask and initial state."""
    config = draw(configs if configs is not None else layer_configs(), label="config")
    f = draw(features, label="features")
    b = draw(batch, label="batch")
    t = draw(timesteps, label="timesteps")
    rng = np.random.default_rng(draw(SEEDS, label="data_seed"))
    weights = random_weights(config, f, rng)
    x = rng.uniform(-1.0, 1.0, (b, t, f)).astype(np.float32).astype(np.float64)
    mask = draw(masks(b, t)) if with_masks else None
    init = None
    if with_initial_state and draw(st.booleans(), label="initial_state"):
        init = [rng.uniform(-0.5, 0.5, (b, config.units)).astype(np.float32).astype(np.float64)
                for _ in range(config.n_states)]
    return Case(config=config, features=f, weights=weights, x=x, mask=mask, initial_state=init)


def _case_of_shape(draw, shape, salt=0, tier=TIERS["tiny"]):
    """Fresh weights, inputs, mask pattern and initial state for a fixed graph shape."""
    config, b, t, f = shape.config, shape.batch, shape.timesteps, shape.features
    rng = np.random.default_rng([draw(SEEDS, label="data_seed"), salt])
    weights = random_weights(config, f, rng, **tier.weight_scales())
    x = rng.uniform(-1.0, 1.0, (b, t, f)).astype(np.float32).astype(np.float64)
    mask = draw(masks(b, t, kinds=(shape.mask,)))
    init = None
    if shape.initial_state:
        init = [rng.uniform(-0.5, 0.5, (b, config.units)).astype(np.float32).astype(np.float64)
                for _ in range(config.n_states)]
    return Case(config=config, features=f, weights=weights, x=x, mask=mask, initial_state=init)


@st.composite
def pool_cases(draw, entry, tier="tiny"):
    """A case of the pool entry ``entry`` (``rnnspec.spec.pool.PoolEntry``) with the data of ``tier``
    (``spec/tiers.py``); the entry's index salts the data seed, so that entries run side by
    side do not share inputs."""
    return _case_of_shape(draw, entry.shape, salt=entry.index, tier=TIERS[tier])


@st.composite
def pooled_cases(draw, pool):
    """A case whose graph shape is drawn from the list ``pool`` (bench/ and tools/)."""
    index = draw(st.integers(0, len(pool) - 1), label="pool_index")
    return _case_of_shape(draw, pool[index], salt=index)


# --------------------------------------------------------------------------- structure

@st.composite
def structure_configs(draw, kinds=KINDS):
    """Sizes and flags for parameter-count and shape claims (no numerics: large sizes are cheap)."""
    return dict(
        kind=draw(st.sampled_from(kinds), label="kind"),
        units=draw(st.integers(1, 512), label="units"),
        features=draw(st.integers(1, 512), label="features"),
        use_bias=draw(st.booleans(), label="use_bias"),
        reset_after=draw(st.booleans(), label="reset_after"),
        return_sequences=draw(st.booleans(), label="return_sequences"),
        return_state=draw(st.booleans(), label="return_state"),
        go_backwards=draw(st.booleans(), label="go_backwards"),
        stateful=draw(st.booleans(), label="stateful"),
        unroll=draw(st.booleans(), label="unroll"),
    )
