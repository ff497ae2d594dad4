"""Examples per second of the LSTM equivalence and gradient properties, per backend.

Run: ``pytest bench --benchmark-only -s`` (or ``tox -e bench``); the backend
is whatever ``KERAS_BACKEND`` / the installed Keras says. Not part of the
default run (``testpaths`` excludes ``bench/``).

The bench is fixed so that a speed-up can only come from the harness, never
from doing less: it runs the LSTM equivalence property on the compiled path
over **every entry** of the LSTM covering pool (``spec/pool.py``), the same
number of examples per round as the ``ci`` profile runs for
``test_layer_matches_reference`` (:data:`N_EXAMPLES`, spread evenly over the
entries, one Hypothesis run per entry as the ``ci`` schedule does), with
fresh random data every example. It uses only ``rnnspec.spec.pool.covering_pool``,
``rnnspec.spec.strategies.pooled_cases`` and ``rnnspec.spec.test_equivalence.check``, so the
same file measures an older checkout too (before/after in one session).

Numbers, printed at the end and stored in the benchmark JSON's ``extra_info``:

- ``property``: examples/s; ``cold`` is the first round in a fresh process
  (every graph shape traced or compiled for the first time: what every CI run
  pays), ``steady`` the mean of the later rounds (graphs reused);
- ``gradient``: the same for the gradient property (``rnnspec.spec.test_gradients.check_gradients``,
  the compiled gradient path, drawn coefficients) over the same pool and the same number of
  examples;
- ``bare_call``: compiled Keras calls/s on an already-built LSTM with new
  weights and new inputs each call, through Keras alone (no rnnspec code, so
  it is the same in every checkout), the floor cost per example. The ratios
  property/bare are what the issue's targets are stated in.
"""

import math

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from rnnspec.spec import adapter
from rnnspec.spec.pool import covering_pool
from rnnspec.spec.strategies import pooled_cases
from rnnspec.spec.test_equivalence import check
from rnnspec.spec.test_gradients import check_gradients, draw_coefficients

N_EXAMPLES = 200      # ci profile: scaled_examples(5) = 5 x 40 for test_layer_matches_reference
RESULTS = {}


def _round(pool, per_entry, counter):
    for shape in pool:
        @settings(max_examples=per_entry, derandomize=False, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(pooled_cases([shape]))
        def lstm_matches_reference(case):
            check(case, compiled=True)
            counter[0] += 1
        lstm_matches_reference()


def test_lstm_property_examples_per_second(benchmark):
    pool = covering_pool(kinds=("lstm",))
    per_entry = math.ceil(N_EXAMPLES / len(pool))
    counter = [0]
    benchmark.pedantic(_round, args=(pool, per_entry, counter), rounds=3, iterations=1)
    rounds = benchmark.stats.stats.data
    per_round = counter[0] / len(rounds)
    cold = per_round / rounds[0]
    steady = per_round / (sum(rounds[1:]) / len(rounds[1:]))
    RESULTS["property"] = (cold, steady, per_round, len(pool))
    benchmark.extra_info.update(backend=adapter.BACKEND, pool_entries=len(pool), examples_per_round=per_round,
                                cold_examples_per_s=round(cold, 1), steady_examples_per_s=round(steady, 1))


def _gradient_round(pool, per_entry, counter):
    hard_sigmoid = adapter.conventions()["hard_sigmoid"]
    for shape in pool:
        @settings(max_examples=per_entry, derandomize=False, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(data=st.data(), case=pooled_cases([shape]))
        def lstm_gradients_match_reference(data, case):
            check_gradients(case, draw_coefficients(data, case, hard_sigmoid), compiled=True)
            counter[0] += 1
        lstm_gradients_match_reference()


def test_lstm_gradient_property_examples_per_second(benchmark):
    pool = covering_pool(kinds=("lstm",))
    per_entry = math.ceil(N_EXAMPLES / len(pool))
    counter = [0]
    benchmark.pedantic(_gradient_round, args=(pool, per_entry, counter), rounds=3, iterations=1)
    rounds = benchmark.stats.stats.data
    per_round = counter[0] / len(rounds)
    cold = per_round / rounds[0]
    steady = per_round / (sum(rounds[1:]) / len(rounds[1:]))
    RESULTS["gradient"] = (cold, steady, per_round, len(pool))
    benchmark.extra_info.update(backend=adapter.BACKEND, pool_entries=len(pool), examples_per_round=per_round,
                                cold_examples_per_s=round(cold, 1), steady_examples_per_s=round(steady, 1))


def _bare_keras_call():
    """One LSTM call with new weights and new inputs through Keras alone (no rnnspec code), so that
    the denominator is the same in every checkout: TF ``set_weights`` + a ``tf.function``; JAX a
    ``jax.jit`` of ``stateless_call`` with the weights as arguments; torch ``set_weights`` + call."""
    keras = adapter.keras
    layer = keras.layers.LSTM(4, return_sequences=True)
    layer.build((None, None, 3))
    rng = np.random.default_rng(0)
    shapes = [tuple(w.shape) for w in layer.get_weights()]
    if adapter.BACKEND == "tensorflow":
        import tensorflow as tf
        fn = tf.function(lambda x: layer(x), input_signature=[tf.TensorSpec([None, None, 3], tf.float32)])

        def call(ws, x):
            layer.set_weights(ws)
            return np.asarray(fn(x))
    elif adapter.BACKEND == "jax":
        import jax
        fixed = [v.value for v in layer.non_trainable_variables]   # the dropout seed state
        fn = jax.jit(lambda ws, x: layer.stateless_call(ws, fixed, x)[0])

        def call(ws, x):
            return np.asarray(fn(ws, x))
    else:
        def call(ws, x):
            layer.set_weights(ws)
            return keras.ops.convert_to_numpy(layer(x))

    def one_call(b=None, t=None):
        b, t = b or int(rng.integers(1, 4)), t or int(rng.integers(1, 7))
        ws = [rng.standard_normal(s).astype("float32") for s in shapes]
        return call(ws, rng.uniform(-1, 1, (b, t, 3)).astype("float32"))
    for b in range(1, 4):          # every input shape once: JAX compiles per shape
        for t in range(1, 7):
            one_call(b, t)
    return one_call


def test_bare_compiled_call_per_second(benchmark):
    one_call = _bare_keras_call()
    benchmark.pedantic(one_call, rounds=200, iterations=1, warmup_rounds=5)
    rate = 1.0 / benchmark.stats.stats.mean
    RESULTS["bare_call"] = rate
    benchmark.extra_info.update(backend=adapter.BACKEND, calls_per_s=round(rate, 1))


def teardown_module(module):
    if "bare_call" not in RESULTS:
        return
    bare = RESULTS["bare_call"]
    for key, what in (("property", "LSTM property"), ("gradient", "LSTM gradient property")):
        if key in RESULTS:
            cold, steady, per_round, entries = RESULTS[key]
            print(f"\nrnnspec bench [{adapter.BACKEND}, keras {adapter.KERAS_VERSION}]: {what} over "
                  f"{entries} pool entries, {per_round:.0f} examples/round: {cold:.1f} examples/s cold, "
                  f"{steady:.1f} steady; bare compiled call {bare:.1f} calls/s; "
                  f"ratio to bare {cold / bare:.3f} cold, {steady / bare:.3f} steady")
