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

import itertools
import os
import random
from dataclasses import dataclass, replace

from reference.activations import ACTIVATION_NAMES
from spec.cases import LayerConfig


@dataclass(frozen=True)
class GraphShape:
    """Everything that fixes one traced graph."""
    config: LayerConfig
    features: int
    batch: int
    timesteps: int
    mask: str            # a mask kind from spec.strategies.MASK_KINDS
    initial_state: bool


def dimensions(bidirectional, kinds=None):
    from spec.strategies import KINDS, MASK_KINDS, MERGE_MODES, RECURRENT_ACTIVATIONS
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
    return row


def _shape(row):
    config_fields = {k: v for k, v in row.items() if k in LayerConfig.__dataclass_fields__}
    return GraphShape(LayerConfig(**config_fields), row["features"], row["batch"], row["timesteps"],
                      row["mask"], row["initial_state"])


# Dimensions that steer the loop over time. Their bugs tend to need three
# settings at once (e.g. unroll + go_backwards + zero_output_for_mask), so the
# pool covers every *triple* of their values, and every pair of the rest.
CONTROL = ("kind", "unroll", "go_backwards", "zero_output_for_mask", "return_sequences",
           "return_state", "mask", "initial_state", "bidirectional")


def _pairs(row, names):
    covered = {((a, row[a]), (b, row[b])) for a, b in itertools.combinations(names, 2)}
    control = [n for n in names if n in CONTROL]
    covered |= {tuple((n, row[n]) for n in trio) for trio in itertools.combinations(control, 3)}
    return covered


def covering_pool(bidirectional=False, size=None, seed=None, kinds=None):
    """A list of GraphShapes: the default first, then a greedy pairwise covering, then random fill."""
    size = size or int(os.environ.get("RNNSPEC_POOL_SIZE", 0))
    seed = pool_seed() if seed is None else seed
    rng = random.Random(f"{seed}-{bidirectional}-{kinds}")
    dims = dimensions(bidirectional, kinds)
    names = sorted(dims)
    default = {name: values[0] for name, values in dims.items()}
    default.update(kind="lstm" if "lstm" in dims["kind"] else dims["kind"][0], units=4, features=3, batch=2, timesteps=4)
    if bidirectional:
        default["bidirectional"] = "concat"
    uncovered = set()
    combos = list(itertools.combinations(names, 2))
    combos += list(itertools.combinations([n for n in names if n in CONTROL], 3))
    for dims_combo in combos:
        for values in itertools.product(*(dims[n] for n in dims_combo)):
            wanted = dict(zip(dims_combo, values))
            row = _normalise({**default, **wanted})
            if all(row[n] == v for n, v in wanted.items()):  # e.g. SimpleRNN with implementation=1 does not exist
                uncovered.add(tuple(wanted.items()))
    rows = [_normalise(default)]
    uncovered -= _pairs(rows[0], names)

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
        best = max(candidates, key=lambda r: len(_pairs(r, names) & uncovered))
        if not _pairs(best, names) & uncovered:
            break   # the rest are pairs that normalisation rules out (e.g. SimpleRNN + implementation=1)
        rows.append(best)
        uncovered -= _pairs(best, names)
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
