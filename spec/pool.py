"""A covering pool of layer configurations, so that traced graphs are reused.

Tracing a new graph costs 50-100 ms on TF and about a second on JAX, while a
call on an already-traced graph with fresh weights and inputs costs about a
millisecond. If Hypothesis drew every flag independently, nearly every
example would be a new graph. Instead the compiled-path properties draw a
*graph shape* -- the layer configuration plus input width, batch size,
timesteps, mask kind and whether an initial state is passed -- from a pool
built once per session, and draw fresh weights, inputs, mask patterns and
initial states for every example.

The pool is a covering array: every pair of values of any two dimensions
(say GRU with ``reset_after=False``) occurs in at least one entry, and every
triple of values of the dimensions that steer the loop over time (say
``unroll=True`` with ``go_backwards=True`` and ``zero_output_for_mask=True``)
does too. With ``$RNNSPEC_POOL_SIZE`` larger than that covering, the rest is
filled with random entries. Entry 0 is the default
layer, so Hypothesis shrinks towards it. The seed is ``$RNNSPEC_POOL_SEED``
(default 0, printed in the pytest header).

The eager-call property keeps drawing every flag independently (an eager
call costs the same for a new or a known configuration), so interactions
of any order are still explored there.
"""

import functools
import itertools
import os
import random
from dataclasses import dataclass, replace

from rnnspec.reference.activations import ACTIVATION_NAMES
from rnnspec.spec.cases import LayerConfig


@dataclass(frozen=True)
class GraphShape:
    """Everything that fixes one traced graph."""
    config: LayerConfig
    features: int
    batch: int
    timesteps: int
    mask: str            # a mask kind from rnnspec.spec.strategies.MASK_KINDS
    initial_state: bool


def dimensions(bidirectional, kinds=None):
    from rnnspec.spec.strategies import KINDS, MASK_KINDS, MERGE_MODES, RECURRENT_ACTIVATIONS
    dims = {
        "kind": tuple(kinds or KINDS), "units": (1, 2, 3, 4, 5, 6), "activation": ACTIVATION_NAMES,
        "recurrent_activation": RECURRENT_ACTIVATIONS, "use_bias": (True, False),
        "reset_after": (True, False), "implementation": (2, 1), "unit_forget_bias": (True, False),
        "return_sequences": (False, True), "return_state": (False, True), "unroll": (False, True),
        "features": (1, 2, 3, 4, 5), "batch": (1, 2, 3), "timesteps": (1, 2, 3, 4, 5, 6),
        "mask": MASK_KINDS, "initial_state": (False, True),
    }
    if bidirectional:
        dims["bidirectional"] = MERGE_MODES
    else:
        dims["go_backwards"] = (False, True)
        dims["zero_output_for_mask"] = (None, True, False)
    return dims


def _normalise(row):
    """Drop values that mean nothing for the drawn kind, so the pool holds real layers."""
    row = dict(row)
    if row["kind"] != "gru":
        row["reset_after"] = True
    if row["kind"] != "lstm":
        row["unit_forget_bias"] = True
    if row["kind"] == "simple_rnn":
        row["implementation"], row["recurrent_activation"] = 2, "sigmoid"
    if row["mask"] == "fully_masked_row" and row["batch"] == 1:
        row["batch"] = 2   # keep one row that is not masked
    if row["unroll"] and row["timesteps"] > MAX_UNROLLED_TIMESTEPS:
        row["timesteps"] = MAX_UNROLLED_TIMESTEPS
    return row


# An unrolled loop is one graph node per step: a 64-step unrolled LSTM costs
# seconds to trace (and to compile on JAX/XLA) for no extra coverage.
MAX_UNROLLED_TIMESTEPS = 8


def _shape(row):
    config_fields = {k: v for k, v in row.items() if k in LayerConfig.__dataclass_fields__}
    return GraphShape(LayerConfig(**config_fields), row["features"], row["batch"], row["timesteps"],
                      row["mask"], row["initial_state"])


# Dimensions that steer the loop over time. Their bugs tend to need three
# settings at once (e.g. unroll + go_backwards + zero_output_for_mask), so the
# pool covers every *triple* of their values, and every pair of the rest.
CONTROL = ("kind", "unroll", "go_backwards", "zero_output_for_mask", "return_sequences",
           "return_state", "mask", "initial_state", "bidirectional")


def _pairs(row, names, triples=True):
    covered = {((a, row[a]), (b, row[b])) for a, b in itertools.combinations(names, 2)}
    if triples:
        control = [n for n in names if n in CONTROL]
        covered |= {tuple((n, row[n]) for n in trio) for trio in itertools.combinations(control, 3)}
    return covered


def covering_pool(bidirectional=False, size=None, seed=None, kinds=None, values=None, triples=True):
    """A list of GraphShapes: the default first, then a greedy covering, then random fill.

    ``values`` replaces the values of some dimensions (e.g. the wide tier's
    sizes); ``triples=False`` covers pairs only (for costly compiled paths).
    """
    size = size or int(os.environ.get("RNNSPEC_POOL_SIZE", 0))
    seed = pool_seed() if seed is None else seed
    rng = random.Random(f"{seed}-{bidirectional}-{kinds}" + (f"-{sorted(values.items())}-{triples}" if values else ""))
    dims = dimensions(bidirectional, kinds)
    dims.update(values or {})
    names = sorted(dims)
    default = {name: vals[0] for name, vals in dims.items()}
    default.update(kind="lstm" if "lstm" in dims["kind"] else dims["kind"][0])
    for name, preferred in (("units", 4), ("features", 3), ("batch", 2), ("timesteps", 4)):
        if preferred in dims[name]:
            default[name] = preferred
    if bidirectional:
        default["bidirectional"] = "concat"
    _covers = functools.partial(_pairs, triples=triples)
    uncovered = set()
    combos = list(itertools.combinations(names, 2))
    if triples:
        combos += list(itertools.combinations([n for n in names if n in CONTROL], 3))
    for dims_combo in combos:
        for values in itertools.product(*(dims[n] for n in dims_combo)):
            wanted = dict(zip(dims_combo, values))
            row = _normalise({**default, **wanted})
            if all(row[n] == v for n, v in wanted.items()):  # e.g. SimpleRNN with implementation=1 does not exist
                uncovered.add(tuple(wanted.items()))
    rows = [_normalise(default)]
    uncovered -= _covers(rows[0], names)

    def random_row():
        return _normalise({name: rng.choice(values) for name, values in dims.items()})

    while uncovered:
        # seed each candidate with one uncovered pair, then pick the best of a few
        candidates = []
        pending = sorted(uncovered, key=repr)
        for _ in range(40):
            row = random_row()
            row = _normalise({**row, **dict(rng.choice(pending))})
            candidates.append(row)
        best = max(candidates, key=lambda r: len(_covers(r, names) & uncovered))
        if not _covers(best, names) & uncovered:
            break   # the rest are pairs that normalisation rules out (e.g. SimpleRNN + implementation=1)
        rows.append(best)
        uncovered -= _covers(best, names)
    while len(rows) < size:
        rows.append(random_row())
    return [_shape(r) for r in rows]


def pool_seed():
    return int(os.environ.get("RNNSPEC_POOL_SEED", 0))


def simpler_configs(config):
    """Configs one flag closer to the default, for minimising a failing example."""
    default = LayerConfig(kind=config.kind, units=config.units, use_bias=config.use_bias,
                          reset_after=config.reset_after, bidirectional=config.bidirectional)
    for name in ("unroll", "go_backwards", "zero_output_for_mask", "return_state", "return_sequences",
                 "implementation", "activation", "recurrent_activation", "unit_forget_bias"):
        if getattr(config, name) != getattr(default, name):
            yield name, replace(config, **{name: getattr(default, name)})


# --------------------------------------------------------------------------- named pools, run entry by entry

#: The pools the properties use, by name: a report can rebuild a pool from its
#: name (the same seed gives the same pool) to say which pairs and triples ran.
_FUSED = {"activation": ("tanh",), "recurrent_activation": ("sigmoid",), "use_bias": (True,),
          "reset_after": (True,), "unroll": (False,), "mask": ("none", "right_padded"),
          "units": (1, 4, 20, 64), "features": (1, 3, 32), "batch": (1, 3, 8), "timesteps": (1, 4, 16)}

POOLS = {
    # the tiny tier: every pair of values, every triple of the loop-steering ones
    "single": dict(bidirectional=False),
    "bidirectional": dict(bidirectional=True),
    "lstm-gru": dict(kinds=("lstm", "gru")),
    # XLA compiles every graph shape (~0.8 s each on TF CPU): pairs only, fewer sizes
    "xla": dict(bidirectional=False, triples=False,
                values={"units": (1, 4), "features": (1, 3), "batch": (1, 3), "timesteps": (1, 4)}),
    # the wide and long tier (spec/tiers.py): widths to 256, lengths to 64, batches to 8; pairs only.
    # Widths mix multiples of 32 with others (20, 48): kernels tile in blocks, and a tile
    # bug shows only where the width is not a multiple of the block.
    "wide": dict(bidirectional=False, triples=False,
                 values={"units": (8, 20, 48, 64, 256), "features": (1, 8, 32), "batch": (1, 4, 8),
                         "timesteps": (8, 16, 32, 64), "activation": ("tanh", "relu", "sigmoid"),
                         "recurrent_activation": ("sigmoid", "hard_sigmoid")}),
    # where the backend's fused kernel may run: cuDNN on a GPU (spec/data/cudnn.toml),
    # torch's fused CPU path, JAX's scan GRU. The covering pools above reach these
    # settings (tanh, sigmoid, a bias, no unroll, reset_after, no mask) in one entry of
    # 59, so a fault in a fused kernel's weight conversion would walk through them.
    # Masks: none (every backend's kernel) or right-padded (TF's cuDNN takes those).
    "fused-kernel": dict(bidirectional=False, kinds=("lstm", "gru"), values=_FUSED),
    "fused-kernel-bidirectional": dict(bidirectional=True, kinds=("lstm", "gru"), values=_FUSED),
}


@functools.cache
def named_pool(name):
    return covering_pool(**POOLS[name])


@dataclass(frozen=True)
class PoolEntry:
    """One entry of a named pool, as a test parameter (``pool07``)."""
    pool_name: str
    index: int
    shape: GraphShape

    def __repr__(self):
        return f"pool{self.index:02d}"


def entries(name):
    """Every entry of the named pool, in order: properties are parametrized over them,
    so that every entry runs in every profile (Hypothesis draws the data)."""
    return [PoolEntry(name, i, s) for i, s in enumerate(named_pool(name))]


def _row(shape):
    row = {k: getattr(shape.config, k) for k in LayerConfig.__dataclass_fields__}
    row.update(features=shape.features, batch=shape.batch, timesteps=shape.timesteps,
               mask=shape.mask, initial_state=shape.initial_state)
    return row


def coverage(shapes, run_indices, triples=True):
    """``{"pairs": [run, total], "triples": [run, total]}``: the value pairs of any two
    dimensions, and triples of the loop-steering ones, that the entries ``run_indices``
    executed, against those the whole pool covers."""
    rows = [_row(s) for s in shapes]
    names = sorted(k for k in rows[0] if len({repr(r[k]) for r in rows}) > 1)

    def covered(selected):
        combos = set().union(*(_pairs(r, names, triples) for r in selected)) if selected else set()
        return {c for c in combos if len(c) == 2}, {c for c in combos if len(c) == 3}

    all_pairs, all_triples = covered(rows)
    run_pairs, run_triples = covered([rows[i] for i in run_indices if i < len(rows)])
    return {"pairs": [len(run_pairs), len(all_pairs)], "triples": [len(run_triples), len(all_triples)]}
