"""Chapter 1 -- parameter counts and the weight layout.

The article's claims:

- A recurrent layer with ``u`` units on ``f`` input features holds a
  ``kernel`` (f, G*u), a ``recurrent_kernel`` (u, G*u) and a ``bias`` (G*u,),
  in that order, where G is 1 for SimpleRNN, 4 for LSTM (gates i, f, c, o
  concatenated) and 3 for GRU (z, r, h). GRU with ``reset_after=True`` keeps
  two bias rows, input and recurrent: bias (2, 3u). ``use_bias=False``
  removes the bias.
- ``count_params()`` is the sum of those sizes: SimpleRNN(128) on 10 features
  has 17,792 (17,921 with a Dense(1) on top); an LSTM(128) on 10 features
  with Dense(1) has 71,297; each SimpleRNN(128) stacked on another has 32,896.
- The count depends on sizes only: return_sequences, return_state,
  go_backwards, stateful and unroll change no weight.
- Bidirectional holds two independent copies (forward, backward): twice the
  count, and a concat merge doubles the width seen by the next layer.

Layers here are built with zero initializers: initial values do not change
shapes, and an orthogonal 512x2048 initialization would dominate the run time.
"""

from hypothesis import example, given, strategies as st

from rnnspec.reference.structure import (bidirectional_param_count, dense_param_count, param_count,
                                 stacked_param_counts, weight_shapes)
from rnnspec.spec import adapter
from rnnspec.spec import outcomes
from rnnspec.spec.strategies import structure_configs

FAST_INIT = dict(kernel_initializer="zeros", recurrent_initializer="zeros", bias_initializer="zeros")


def _layer(cfg, **overrides):
    kw = dict(use_bias=cfg["use_bias"], return_sequences=cfg["return_sequences"],
              return_state=cfg["return_state"], go_backwards=cfg["go_backwards"],
              stateful=cfg["stateful"], unroll=cfg["unroll"], **FAST_INIT)
    if cfg["kind"] == "gru":
        kw["reset_after"] = cfg["reset_after"]
    kw.update(overrides)
    return adapter.make_layer(cfg["kind"], cfg["units"], **kw)


def _flags(cfg):
    return dict(use_bias=cfg["use_bias"], reset_after=cfg["reset_after"] if cfg["kind"] == "gru" else True)


def _check(quantity, actual, expected, cfg):
    __tracebackhide__ = True
    assert actual == expected, f"{quantity}={actual!r}, but should be {expected!r} [{cfg}]"
    outcomes.asserted_formulas()


ARTICLE_SIMPLE_RNN = dict(kind="simple_rnn", units=128, features=10, use_bias=True, reset_after=True,
                          return_sequences=False, return_state=False, go_backwards=False,
                          stateful=False, unroll=False)
ARTICLE_LSTM = dict(ARTICLE_SIMPLE_RNN, kind="lstm")
ARTICLE_STACKED = dict(ARTICLE_SIMPLE_RNN, features=128, return_sequences=True)


@given(structure_configs())
@example(ARTICLE_SIMPLE_RNN)
@example(ARTICLE_LSTM)
@example(ARTICLE_STACKED)
def test_count_params_is_the_formula(cfg):
    """count_params() = G*(f*u + u*u + u) (+G*u for GRU reset_after), whatever the other flags."""
    layer = adapter.build(_layer(cfg), 2 if cfg["stateful"] else None, cfg["features"])
    _check("count_params()", adapter.count_params(layer),
           param_count(cfg["kind"], cfg["units"], cfg["features"], **_flags(cfg)), cfg)


@given(structure_configs())
@example(ARTICLE_LSTM)
def test_weight_names_order_and_shapes(cfg):
    """Weights are kernel, recurrent_kernel, bias, with the gates concatenated on the last axis."""
    layer = adapter.build(_layer(cfg), 2 if cfg["stateful"] else None, cfg["features"])
    expected = weight_shapes(cfg["kind"], cfg["units"], cfg["features"], **_flags(cfg))
    _check("weights", list(zip(adapter.short_weight_names(layer), adapter.weight_shapes(layer))),
           expected, cfg)


@given(structure_configs(), st.sampled_from(["concat", "sum", "mul", "ave", None]))
def test_bidirectional_holds_two_copies(cfg, merge_mode):
    """Bidirectional: forward and backward copies with the same shapes, twice the count."""
    cfg = dict(cfg, stateful=False, go_backwards=False)
    layer = adapter.build(adapter.bidirectional(_layer(cfg), merge_mode), None, cfg["features"])
    one = weight_shapes(cfg["kind"], cfg["units"], cfg["features"], **_flags(cfg))
    _check("weights", list(zip(adapter.short_weight_names(layer), adapter.weight_shapes(layer))),
           one + one, cfg)
    _check("count_params()", adapter.count_params(layer),
           bidirectional_param_count(cfg["kind"], cfg["units"], cfg["features"], **_flags(cfg)), cfg)


@given(kind=st.sampled_from(["simple_rnn", "lstm", "gru"]),
       units=st.lists(st.integers(1, 256), min_size=2, max_size=3),
       features=st.integers(1, 256), bidirectional=st.booleans(),
       head=st.sampled_from(["last", "time_distributed", "flatten"]),
       dense_units=st.integers(1, 16), timesteps=st.integers(1, 8))
@example(kind="simple_rnn", units=[128, 128], features=10, bidirectional=False, head="last",
         dense_units=1, timesteps=5)
def test_stacked_model_count(kind, units, features, bidirectional, head, dense_units, timesteps):
    """A stack (return_sequences=True below the top) plus a Dense head counts layer by layer.

    The Dense head sits on the last output, behind TimeDistributed, or behind
    Flatten (the article's advice for a sequence-returning top layer).
    """
    keras = adapter.keras
    layers = [keras.Input((timesteps, features))]
    for i, u in enumerate(units):
        top = i == len(units) - 1
        rnn = adapter.make_layer(kind, u, return_sequences=(not top) or head != "last", **FAST_INIT)
        layers.append(adapter.bidirectional(rnn) if bidirectional else rnn)
    if head == "time_distributed":
        layers.append(keras.layers.TimeDistributed(keras.layers.Dense(dense_units)))
    elif head == "flatten":
        layers.append(keras.layers.Flatten())
    if head != "time_distributed":
        layers.append(keras.layers.Dense(dense_units))
    model = keras.Sequential(layers)
    per_layer = stacked_param_counts(kind, units, features, bidirectional=bidirectional)
    top_width = units[-1] * (2 if bidirectional else 1)
    dense_in = top_width * timesteps if head == "flatten" else top_width
    expected = [*per_layer, dense_param_count(dense_in, dense_units)]
    actual = [adapter.count_params(layer) for layer in model.layers if layer.weights]
    _check("per-layer count_params()", actual, expected, dict(kind=kind, units=units, features=features,
                                                             bidirectional=bidirectional, head=head))
    _check("model.count_params()", adapter.count_params(model), sum(expected), kind)


def test_article_published_models():
    """The article's three published totals: 17,921, 32,896 per stacked layer, 71,297."""
    keras = adapter.keras
    simple = keras.Sequential([keras.Input((5, 10)), keras.layers.SimpleRNN(128), keras.layers.Dense(1)])
    lstm = keras.Sequential([keras.Input((5, 10)), keras.layers.LSTM(128), keras.layers.Dense(1)])
    stacked = keras.Sequential([keras.Input((5, 10)), keras.layers.SimpleRNN(128, return_sequences=True),
                                keras.layers.SimpleRNN(128), keras.layers.Dense(1)])
    _check("SimpleRNN(128)+Dense(1)", adapter.count_params(simple), 17921, "article")
    _check("LSTM(128)+Dense(1)", adapter.count_params(lstm), 71297, "article")
    _check("second stacked SimpleRNN(128)", adapter.count_params(stacked.layers[1]), 32896, "article")
    _check("LSTM weight shapes", adapter.weight_shapes(lstm.layers[0]), [(10, 512), (128, 512), (512,)], "article")
