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


def covering_pool(bidirectional=False, size=None, seed=None, kinds=None, values=None, triples=True, rules=None):
    """A list of GraphShapes: the default first, then a greedy covering, then random fill.

    ``values`` replaces the values of some dimensions (e.g. the wide tier's
    sizes), or adds one (``bidirectional`` next to ``go_backwards``);
    ``triples=False`` covers pairs only (for costly compiled paths); ``rules``
    maps a row to the row the pool holds instead, after the common ones (the
    pairs it rules out are not required).
    """
    def normalise(row):
        row = _normalise(row)
        return rules(row) if rules else row
    seed = pool_seed() if seed is None else seed
    rng = random.Random(f"{seed}-{bidirectional}-{kinds}" + (f"-{sorted(values.items())}-{triples}" if values else ""))
    dims = dimensions(bidirectional, kinds)
    dims.update(values or {})
    default = {name: vals[0] for name, vals in dims.items()}
    default.update(kind="lstm" if "lstm" in dims["kind"] else dims["kind"][0])
    for name, preferred in (("units", 4), ("features", 3), ("batch", 2), ("timesteps", 4)):
        if preferred in dims[name]:
            default[name] = preferred
    if bidirectional:
        default["bidirectional"] = "concat"
    triple_names = [n for n in sorted(dims) if n in CONTROL] if triples else []
    return [_shape(r) for r in covering_rows(dims, default, normalise, rng, triple_names=triple_names, size=size)]


def covering_rows(dims, default, normalise, rng, triple_names=(), size=None):
    """Rows (dicts: dimension -> value) covering every pair of values of any two dimensions of
    ``dims`` (and every triple of the ``triple_names``) that ``normalise`` allows: ``default``
    first, then greedily the candidate covering most of what is left, then random rows up to
    ``size`` (or ``$RNNSPEC_POOL_SIZE``)."""
    size = size or int(os.environ.get("RNNSPEC_POOL_SIZE", 0))
    names = sorted(dims)
    triple_names = list(triple_names)

    def _covers(row):
        covered = {((a, row[a]), (b, row[b])) for a, b in itertools.combinations(names, 2)}
        covered |= {tuple((n, row[n]) for n in trio) for trio in itertools.combinations(triple_names, 3)}
        return covered
    uncovered = set()
    combos = list(itertools.combinations(names, 2)) + list(itertools.combinations(triple_names, 3))
    for dims_combo in combos:
        for values in itertools.product(*(dims[n] for n in dims_combo)):
            wanted = dict(zip(dims_combo, values))
            row = normalise({**default, **wanted})
            if all(row[n] == v for n, v in wanted.items()):  # e.g. SimpleRNN with implementation=1 does not exist
                uncovered.add(tuple(wanted.items()))
    rows = [normalise(default)]
    uncovered -= _covers(rows[0])

    def random_row():
        return normalise({name: rng.choice(values) for name, values in dims.items()})

    while uncovered:
        # seed each candidate with one uncovered pair, then pick the best of a few
        candidates = []
        pending = sorted(uncovered, key=repr)
        for _ in range(40):
            row = random_row()
            row = normalise({**row, **dict(rng.choice(pending))})
            candidates.append(row)
        best = max(candidates, key=lambda r: len(_covers(r) & uncovered))
        if not _covers(best) & uncovered:
            break   # the rest are pairs that normalisation rules out (e.g. SimpleRNN + implementation=1)
        rows.append(best)
        uncovered -= _covers(best)
    while len(rows) < size:
        rows.append(random_row())
    return rows


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

def _one_training_step(row):
    """The training-step pool's rules (spec/test_training.py): a Bidirectional wrapper takes
    no inner ``go_backwards`` here, and a masked input is read by a layer that returns only
    its last output (a masked sequence output would carry its mask into the loss, whose
    normalisation is the loss's behavior, not the recurrent layer's)."""
    if row["bidirectional"]:
        # as in every other pool and strategy: no inner go_backwards, no explicit
        # zero_output_for_mask (Keras's Bidirectional overrides it on both halves with
        # return_sequences; the reference does not model that yet -- issue #10)
        row["go_backwards"] = False
        row["zero_output_for_mask"] = None
    if row["mask"] != "none":
        row["return_sequences"] = False
    return row


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
    # one train_on_batch per example (spec/test_training.py): a traced train step costs about
    # 0.3 s on TF CPU, so pairs only, single layers and two merge modes (merge_mode=None
    # returns two tensors, which a Dense head does not take), masks from a Masking layer
    "training": dict(bidirectional=False, triples=False, rules=_one_training_step,
                     values={"units": (1, 4), "features": (1, 3), "batch": (1, 3), "timesteps": (1, 4),
                             "activation": ("tanh", "relu"), "recurrent_activation": ("sigmoid", "hard_sigmoid"),
                             "return_state": (False,), "initial_state": (False,),
                             "mask": ("none", "right_padded", "holes"), "bidirectional": (None, "concat", "ave")}),
    # model.predict on stacks of layers (spec/test_composition.py): StackShapes, see stack_pool
    "stack": dict(triples=False),
}


@dataclass(frozen=True)
class StackShape:
    """Everything that fixes one traced ``model.predict`` of a stack (spec/test_composition.py):
    the layers bottom to top (all but the top return sequences), the head, the input shape,
    the mask kind (from a Masking layer) and the Dense head's width."""
    layers: tuple
    head: str            # none, dense, time_distributed, flatten
    features: int
    batch: int
    timesteps: int
    mask: str
    dense_units: int

    def row(self):
        top, lower = self.layers[-1], self.layers[0]
        row = {f"top_{k}": getattr(top, k) for k in STACK_LAYER_DIMS}
        row.update({f"lower_{k}": getattr(lower, k) for k in STACK_LAYER_DIMS})
        row.update(depth=len(self.layers), top_return_sequences=top.return_sequences, head=self.head,
                   features=self.features, batch=self.batch, timesteps=self.timesteps, mask=self.mask,
                   dense_units=self.dense_units)
        return row


#: per-layer dimensions of the stack pool (for the top layer and the layers below it)
STACK_LAYER_DIMS = {"kind": ("lstm", "simple_rnn", "gru"), "units": (2, 4), "activation": ("tanh", "relu"),
                    "bidirectional": (None, "concat", "ave"), "go_backwards": (False, True),
                    "unroll": (False, True)}


def _stack_rules(row):
    for half in ("top", "lower"):
        if row[f"{half}_bidirectional"]:
            row[f"{half}_go_backwards"] = False
    # a Dense on a sequence goes behind TimeDistributed or Flatten; on a last output it is plain
    if row["head"] in ("time_distributed", "flatten") and not row["top_return_sequences"]:
        row["head"] = "dense"
    if row["head"] == "dense" and row["top_return_sequences"]:
        row["head"] = "time_distributed"
    return row


def stack_pool(seed=None):
    """Stacks of 2-3 layers with every pair of values of the dimensions in the StackShape's row
    covered (the middle layer of a 3-stack is a copy of the lowest)."""
    from rnnspec.spec.strategies import KINDS
    dims = {f"{half}_{k}": v for half in ("top", "lower") for k, v in STACK_LAYER_DIMS.items()}
    dims.update(depth=(2, 3), top_return_sequences=(False, True),
                head=("none", "dense", "time_distributed", "flatten"), features=(1, 3), batch=(1, 3),
                timesteps=(2, 5), mask=("none", "right_padded", "left_padded", "holes"), dense_units=(1, 3))
    assert set(STACK_LAYER_DIMS["kind"]) == set(KINDS)
    default = {name: vals[0] for name, vals in dims.items()}
    default.update(top_bidirectional=None, lower_bidirectional=None, top_units=4, lower_units=4)
    rng = random.Random(f"{pool_seed() if seed is None else seed}-stack")
    shapes = []
    for row in covering_rows(dims, default, _stack_rules, rng):
        def layer(half, top):
            return LayerConfig(**{k: row[f"{half}_{k}"] for k in STACK_LAYER_DIMS},
                               return_sequences=row["top_return_sequences"] if top else True)
        lower = layer("lower", False)
        layers = (lower,) * (row["depth"] - 1) + (layer("top", True),)
        shapes.append(StackShape(layers, row["head"], row["features"], row["batch"], row["timesteps"],
                                 row["mask"], row["dense_units"]))
    return shapes


@functools.cache
def named_pool(name):
    if name == "stack":
        return stack_pool()
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
    if hasattr(shape, "row"):
        return shape.row()
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
