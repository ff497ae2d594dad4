"""Check the known-divergence models and raises tables against the installed Keras.

    python -m rnnspec.tools.check_divergence_models [-n 60] [--seed 0] [--entry ID ...] [--anywhere] [--json PATH]

For every entry of ``spec/data/divergences.toml`` that applies to this
environment:

- an entry with ``model``: draws N cases inside its predicate (with
  ``rnnspec.spec.strategies``, seeded, generate phase only), runs the real Keras on
  the eager path (``rnnspec.spec.adapter.call``) and the compiled path
  (``rnnspec.spec.runners.run_case``: tf.function / jax.jit; torch has no graph
  mode, its compiled path is the eager call) and prints
  max |keras - model| and max |keras - formulas| over all outputs. The
  model is right when the first is at float32 level (<= --atol) while the
  second is not. Also counted: drawn cases where Keras is within --atol of
  the formulas anyway (the predicate is broader than the bug there).
- an entry with ``[divergence.raises]``: draws N cases inside its predicate
  and checks that both paths raise one of the listed classes with a message
  that the regex finds (without a table it lists what is raised).

``--anywhere`` draws from the same strategies without the predicate filter
(skipping cases that another active entry claims), to check that the
predicate is not too narrow: outside it, Keras must match the formulas (and
the model), and must not raise.

The exit status is 1 when a model is off by more than --atol, a raises
table does not hold, or (--anywhere) Keras diverges outside a predicate.
"""

import argparse
import json
import re
import sys
from dataclasses import replace

import numpy as np
from hypothesis import HealthCheck, Phase, given, seed as hyp_seed, settings, strategies as st

ATOL = 2e-5


# --------------------------------------------------------------------------- drawing cases

def collect(strategy, n, seed):
    """``n`` examples of ``strategy``, reproducible from ``seed`` (generate phase only: no shrinking)."""
    found = []

    @settings(max_examples=n, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @hyp_seed(seed)
    @given(strategy)
    def draw(case):
        found.append(case)
    draw()
    return found


def strategies():
    """Per predicate name, cases around it: the predicate holds for many of them, not all."""
    from rnnspec.spec.cases import Case, random_weights
    from rnnspec.spec.strategies import NUMERIC_FEATURES, NUMERIC_TIMESTEPS, SEEDS, cases, layer_configs

    unrolled = cases(configs=layer_configs().filter(lambda c: c.unroll))
    scanned = cases(configs=layer_configs().filter(lambda c: not c.unroll))

    @st.composite
    def dropout_cases(draw):
        config = draw(layer_configs(kinds=("lstm", "gru")))
        implementation = draw(st.sampled_from((1, 1, 2)))
        case = draw(cases(configs=st.just(replace(config, implementation=implementation))))
        return replace(case, training=True, dropout=draw(st.sampled_from((0.1, 0.3, 0.5, 0.9))),
                       recurrent_dropout=draw(st.sampled_from((0.0, 0.0, 0.3))))

    @st.composite
    def stateful_cases(draw):
        """A stateful layer built for batch B, its first call x0 (B rows), then x (1 row, or B)."""
        config = draw(layer_configs(bidirectional=False, allow_zero_output_for_mask=False))
        f, b = draw(NUMERIC_FEATURES), draw(st.integers(1, 4))
        t0, t = draw(NUMERIC_TIMESTEPS), draw(NUMERIC_TIMESTEPS)
        rows = draw(st.sampled_from((1, 1, b)))
        rng = np.random.default_rng(draw(SEEDS))
        weights = random_weights(config, f, rng)
        x0 = rng.uniform(-1, 1, (b, t0, f)).astype(np.float32).astype(np.float64)
        x = rng.uniform(-1, 1, (rows, t, f)).astype(np.float32).astype(np.float64)
        return Case(config, f, weights, x, stateful_batch=b), x0

    return {
        "unrolled_backwards_zero_output_for_mask": unrolled,
        "unrolled_zero_output_for_mask": unrolled,
        "unrolled_backwards_with_mask": unrolled,
        "unrolled_last_output_zero_output_for_mask": unrolled,
        "initial_state_emitted_before_first_unmasked_step": scanned,
        "implementation_1_input_dropout_in_training": dropout_cases(),
        "stateful_call_with_batch_one": stateful_cases(),
        "stateful_non_lstm_call_with_batch_one": stateful_cases(),
    }


def _case_of(item):
    return item[0] if isinstance(item, tuple) else item


# --------------------------------------------------------------------------- running Keras

def _stateful_run(case, x0, compiled):
    """Keras's outputs for the second call of a stateful layer, and the stored states it started from."""
    from rnnspec.spec import adapter
    from rnnspec.spec.cases import keras_layer
    layer = keras_layer(case.config, case.features, batch=case.stateful_batch, stateful=True)
    adapter.set_weights(layer, case.weights)
    adapter.call(layer, x0)
    stored = [np.asarray(adapter.to_numpy(s), np.float64) for s in layer.states]
    if compiled and adapter.BACKEND == "tensorflow":
        import tensorflow as tf
        graph = tf.function(lambda x: adapter.as_list(layer(x)))
        out = adapter.to_numpy(graph(tf.convert_to_tensor(case.x.astype(np.float32))))
    else:   # JAX: a stateful layer is not jitted by the spec; torch: eager only
        out = adapter.call(layer, case.x)
    return out, stored


def _keras_with_dropout(case, compiled):
    """A fresh layer with case.dropout / recurrent_dropout, called eagerly or compiled."""
    from rnnspec.spec import adapter
    from rnnspec.spec.cases import keras_layer
    layer = keras_layer(case.config, case.features, dropout=case.dropout,
                        recurrent_dropout=case.recurrent_dropout)
    adapter.set_weights(layer, case.weights)
    if not compiled:
        return adapter.call(layer, case.x, mask=case.mask, initial_state=case.initial_state,
                            training=case.training)
    timesteps = case.timesteps if (case.config.unroll and adapter.BACKEND == "tensorflow") else None
    run = adapter.compiled_call(layer, has_mask=case.mask is not None,
                                n_initial_states=len(case.initial_state or ()),
                                training=case.training, timesteps=timesteps)
    return run(case.weights, case.x, case.mask, case.initial_state)


def keras_outputs(item, compiled):
    """``(case, outputs)``: the case as the models see it (stateful: with the stored states) and Keras's outputs."""
    from rnnspec.spec.runners import run_case
    if isinstance(item, tuple):
        case, x0 = item
        out, stored = _stateful_run(case, x0, compiled)
        return replace(case, initial_state=stored), out
    if item.dropout or item.recurrent_dropout:
        return item, _keras_with_dropout(item, compiled)
    return item, run_case(item, compiled=compiled)


def max_abs(a, b):
    if b is None or len(a) != len(b) or any(np.shape(x) != np.shape(y) for x, y in zip(a, b)):
        return float("inf")
    return max((float(np.max(np.abs(np.asarray(x) - np.asarray(y)), initial=0.0)) for x, y in zip(a, b)),
               default=0.0)


def _first_line(exc):
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:100] if text else ''}"


# --------------------------------------------------------------------------- the checks

def check_model(entry, predicate, drawn, hs, paths, atol):
    from rnnspec.spec.cases import reference_outputs
    from rnnspec.spec.divergence_models import MODELS
    model = MODELS[entry["model"]]
    stats = {p: dict(inside=0, outside=0, vs_model=0.0, vs_formulas=0.0, inside_as_formulas=0,
                     outside_diverging=0, raised={}) for p in paths}
    worst = {p: None for p in paths}
    for item in drawn:
        inside = predicate(_case_of(item))
        for path in paths:
            s = stats[path]
            s["inside" if inside else "outside"] += 1
            try:
                case, actual = keras_outputs(item, path == "compiled")
            except Exception as exc:   # a model entry must compute
                key = _first_line(exc)
                s["raised"][key] = s["raised"].get(key, 0) + 1
                continue
            # the formulas refuse a stateful call with another batch size
            refused = entry["predicate"] in ("stateful_call_with_batch_one",
                                            "stateful_non_lstm_call_with_batch_one") and inside
            formulas = None if refused else reference_outputs(case, hs)
            d, f = max_abs(actual, model(case, hs)), max_abs(actual, formulas)
            if d > s["vs_model"]:
                s["vs_model"], worst[path] = d, case
            if inside:
                s["vs_formulas"] = max(s["vs_formulas"], f)
                s["inside_as_formulas"] += f <= atol
            elif f > atol:
                s["outside_diverging"] += 1
                worst[path] = case
    return stats, worst


def check_raises(entry, predicate, drawn, paths):
    table = entry.get("raises", {"exception": [], "message": "$^"})   # no table yet: list what is raised
    classes, pattern = set(table["exception"]), re.compile(table["message"])
    stats = {p: dict(inside=0, outside=0, as_listed=0, inside_other={}, outside_raised={}) for p in paths}
    for item in drawn:
        inside = predicate(_case_of(item))
        for path in paths:
            s = stats[path]
            s["inside" if inside else "outside"] += 1
            try:
                keras_outputs(item, path == "compiled")
                outcome = None
            except Exception as exc:
                if inside and type(exc).__name__ in classes and pattern.search(str(exc)):
                    s["as_listed"] += 1
                    continue
                outcome = _first_line(exc)
            bucket = s["inside_other"] if inside else s["outside_raised"]
            if inside or outcome:
                key = outcome or "no exception"
                bucket[key] = bucket.get(key, 0) + 1
    return stats


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--cases", type=int, default=60, help="cases drawn per entry")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--entry", action="append", help="only these entry ids")
    parser.add_argument("--anywhere", action="store_true",
                        help="draw without the predicate filter, to see whether the predicate is too narrow")
    parser.add_argument("--atol", type=float, default=ATOL)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)

    from rnnspec.spec import adapter
    from rnnspec.spec.divergences import PREDICATES
    from rnnspec.spec.report import divergence_applies, environment, load_divergences

    env = environment()
    hs = adapter.conventions()["hard_sigmoid"]
    around = strategies()
    paths = ["eager", "compiled"] if adapter.BACKEND != "torch" else ["eager"]
    print(f"Keras {adapter.KERAS_VERSION} ({adapter.KERAS_PACKAGE}), backend {adapter.BACKEND}, "
          f"TF {env['tensorflow']}; {args.cases} cases per entry, seed {args.seed}, paths {paths}"
          + (", drawn anywhere around the predicate" if args.anywhere else ", drawn inside the predicate"))
    active = [d for d in load_divergences() if divergence_applies(d, env) and "predicate" in d]
    results, ok = {}, True
    for entry in load_divergences():
        if args.entry and entry["id"] not in args.entry:
            continue
        if not divergence_applies(entry, env):
            print(f"- {entry['id']}: does not apply here ({entry.get('when')})")
            continue
        predicate = PREDICATES[entry["predicate"]]
        others = [PREDICATES[d["predicate"]] for d in active if d["id"] != entry["id"]]
        if args.anywhere:
            strategy = around[entry["predicate"]].filter(
                lambda item: not any(p(_case_of(item)) for p in others))
        else:
            strategy = around[entry["predicate"]].filter(lambda item: predicate(_case_of(item)))
        drawn = collect(strategy, args.cases, args.seed)
        if "model" in entry:
            stats, worst = check_model(entry, predicate, drawn, hs, paths, args.atol)
            results[entry["id"]] = {"model": entry["model"], "cases": len(drawn), **stats}
            for path in paths:
                s = stats[path]
                bad = s["vs_model"] > args.atol or s["raised"] or s["outside_diverging"]
                ok &= not bad
                print(f"{'FAIL' if bad else 'ok  '} {entry['id']} [{path}] model {entry['model']}: "
                      f"{s['inside']} cases inside the predicate, {s['outside']} outside; "
                      f"max|keras-model|={s['vs_model']:.2e}; inside: max|keras-formulas|={s['vs_formulas']:.2e}, "
                      f"{s['inside_as_formulas']} within {args.atol:g} of the formulas"
                      + (f"; outside: {s['outside_diverging']} diverge from the formulas" if s["outside"] else "")
                      + (f"; raised {s['raised']}" if s["raised"] else ""))
                if bad and worst[path] is not None:
                    w = worst[path]
                    print(f"     worst: {w.config.one_line(w.features)} batch={w.batch} "
                          f"mask={None if w.mask is None else w.mask.astype(int).tolist()}")
        else:
            stats = check_raises(entry, predicate, drawn, paths)
            results[entry["id"]] = {"raises": entry.get("raises"), "cases": len(drawn), **stats}
            for path in paths:
                s = stats[path]
                bad = bool(s["inside_other"] or s["outside_raised"])
                ok &= not bad
                print(f"{'FAIL' if bad else 'ok  '} {entry['id']} [{path}] raises "
                      f"{entry.get('raises', {}).get('exception', '(no table)')}: "
                      f"{s['as_listed']}/{s['inside']} inside the predicate as listed"
                      + (f", otherwise {s['inside_other']}" if s["inside_other"] else "")
                      + (f"; outside ({s['outside']}): raised {s['outside_raised']}" if s["outside_raised"]
                         else f"; outside ({s['outside']}): computed" if s["outside"] else ""))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"environment": env, "results": results}, fh, indent=1, default=str)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
