"""Parameter counts and weight shapes, from the article.

A cell with ``G`` gate blocks (SimpleRNN 1, GRU 3, LSTM 4), ``u`` units and
``f`` input features holds::

    kernel            (f, G*u)
    recurrent_kernel  (u, G*u)
    bias              (G*u,)      -- GRU with reset_after=True: (2, G*u)

so ``params = G * (f*u + u*u + u)`` (the article's SimpleRNN(128) on 10
features: 128*10 + 128*128 + 128 = 17,792; with Dense(1), 17,921), plus
``G*u`` more for GRU's second bias row. use_bias=False drops the bias.

Stacking: a layer over a layer of ``u`` units sees ``f = u`` features
(the article's stacked SimpleRNN(128) layers have 32,896 each).
Bidirectional holds two independent copies: twice the count.
"""

GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}


def _gates(kind):
    try:
        return GATES[kind]
    except KeyError:
        raise ValueError(f"unknown cell kind {kind!r}; expected one of {tuple(GATES)}") from None


def weight_shapes(kind, units, features, *, use_bias=True, reset_after=True):
    """``[(name, shape), ...]`` in Keras's order: kernel, recurrent_kernel, bias."""
    if units < 1 or features < 1:
        raise ValueError(f"units and features must be positive, got units={units}, features={features}")
    width = _gates(kind) * units
    shapes = [("kernel", (features, width)), ("recurrent_kernel", (units, width))]
    if use_bias:
        two_rows = kind == "gru" and reset_after
        shapes.append(("bias", (2, width) if two_rows else (width,)))
    return shapes


def _size(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def param_count(kind, units, features, *, use_bias=True, reset_after=True):
    """Number of parameters of one recurrent layer."""
    return sum(_size(s) for _, s in weight_shapes(kind, units, features,
                                                  use_bias=use_bias, reset_after=reset_after))


def dense_param_count(features, units):
    """Dense(units) on ``features`` inputs: kernel plus bias."""
    return features * units + units


def bidirectional_param_count(kind, units, features, **flags):
    """Bidirectional wraps two copies of the layer."""
    return 2 * param_count(kind, units, features, **flags)


def stacked_param_counts(kind, units_per_layer, features, *, bidirectional=False, **flags):
    """Per-layer counts of a stack; each layer's input is the one below's output width."""
    counts = []
    width = features
    for units in units_per_layer:
        one = param_count(kind, units, width, **flags)
        counts.append(2 * one if bidirectional else one)
        width = 2 * units if bidirectional else units
    return counts
