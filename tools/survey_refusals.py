"""Survey what the installed Keras raises for each refusal claim of the spec.

    RNNSPEC_ENV=k3-tf221 python -m rnnspec.tools.survey_refusals --json docs/measurements/refusals-k3-tf221.json

Run it with each environment's python (rnnspec installed there, as in every
tox env; KERAS_BACKEND as in tox.ini). The older Keras 3 versions in docs/measurements were surveyed on
TF 2.21 with the version installed aside and put first on the path::

    pip install --no-deps --target /tmp/keras-3.11.3 keras==3.11.3
    PYTHONPATH=/tmp/keras-3.11.3 RNNSPEC_ENV=keras3.11.3-on-tf221 \
        .tox/spec/bin/python -m rnnspec.tools.survey_refusals --json docs/measurements/refusals-keras3.11.3-on-tf221.json

(tf_keras 2.21 the same way, with TF_USE_LEGACY_KERAS=1.) One line per case
goes to stderr.

For every refusal claim (spec/test_bad_input.py, and
test_other_batch_size_is_refused in spec/test_stateful.py), every layer kind
and a few parameter choices from each claim's strategy, it makes the same
adapter calls as the claim (``rnnspec.spec.adapter.make_layer`` / ``call`` /
``build``) twice: once with Keras's traceback filtering as the spec runs it
(the default, on) and once inside ``rnnspec.spec.refusals.keras_tracebacks()`` (off).
It records the exception class (module-qualified), its message, the innermost
traceback frame inside the Keras package (file:line, source line) and
whether that line is an explicit ``raise``, plus how the current
``spec/data/refusals.toml`` classifies it. These measurements are where the
rules in ``refusals.toml`` come from.
"""

import argparse
import contextlib
import datetime
import json
import os
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from rnnspec.spec import adapter, refusals  # noqa: E402
from rnnspec.spec.report import environment  # noqa: E402

KINDS = ("simple_rnn", "lstm", "gru")
BAD_INPUT = "spec/test_bad_input.py::"


def _cases(kind):
    """(claim id, parameters, zero-argument callable) in the order the claims make the calls."""
    def zero_timesteps(units, batch, features):
        layer = adapter.make_layer(kind, units)
        return lambda: adapter.call(layer, np.zeros((batch, 0, features)))

    def wrong_rank(units, shape):
        layer = adapter.make_layer(kind, units)
        return lambda: adapter.call(layer, np.zeros(shape))

    def mismatched_state(units, batch, extra):
        layer = adapter.make_layer(kind, units)
        bad = [np.zeros((batch, units + extra))] * (2 if kind == "lstm" else 1)
        return lambda: adapter.call(layer, np.zeros((batch, 3, 2)), initial_state=bad)

    def stateful_without_batch(units):
        layer = adapter.make_layer(kind, units, stateful=True)
        return lambda: adapter.build(layer, None, 3)

    def non_positive_units(units):
        return lambda: adapter.make_layer(kind, units)

    def other_batch(batch, other, features):
        layer = adapter.make_layer(kind, 2, stateful=True)
        adapter.build(layer, batch, features)
        adapter.call(layer, np.zeros((batch, 3, features)))
        return lambda: adapter.call(layer, np.zeros((other, 3, features)))

    yield BAD_INPUT + "test_zero_timesteps_is_refused", dict(units=2, batch=2, features=3), zero_timesteps
    yield BAD_INPUT + "test_zero_timesteps_is_refused", dict(units=1, batch=1, features=1), zero_timesteps
    for shape in [(3,), (2, 3), (1, 2, 3, 4)]:
        yield BAD_INPUT + "test_wrong_rank_is_refused", dict(units=2, shape=shape), wrong_rank
    yield BAD_INPUT + "test_mismatched_initial_state_is_refused", dict(units=2, batch=2, extra=1), mismatched_state
    yield BAD_INPUT + "test_mismatched_initial_state_is_refused", dict(units=1, batch=1, extra=3), mismatched_state
    yield BAD_INPUT + "test_stateful_without_batch_size_is_refused", dict(units=2), stateful_without_batch
    for units in (0, -1, -5):
        yield BAD_INPUT + "test_non_positive_units_are_refused", dict(units=units), non_positive_units
    for batch, other in [(2, 3), (3, 2), (1, 2), (3, 1)]:
        yield ("spec/test_stateful.py::test_other_batch_size_is_refused",
               dict(batch=batch, other=other, features=2), other_batch)


def _qualname(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


def _run(make, params, unfiltered):
    """What happens: setup (layer creation, outside the refused call) then the refused call."""
    context = refusals.keras_tracebacks() if unfiltered else contextlib.nullcontext()
    with context:
        try:
            fn = make(**params)
        except Exception as exc:  # construction itself raised: that is the call for the units claim
            if make.__name__ != "non_positive_units":
                return {"outcome": "setup-raised", **_describe(exc)}
            raise
        try:
            result = fn()
        except Exception as exc:
            return {"outcome": "raised", "_exc": exc, **_describe(exc)}
    shapes = [list(getattr(r, "shape", ())) for r in adapter.as_list(result)]
    return {"outcome": "accepted", "returned_shapes": shapes}


def _describe(exc):
    frame = refusals.innermost_keras_frame(exc)
    own = refusals._innermost_in(exc)
    chain = [_qualname(type(e)) for e in refusals._chain(exc)]
    out = {
        "exception": _qualname(type(exc)),
        "mro": [_qualname(c) for c in type(exc).__mro__ if c not in (object, BaseException, Exception)],
        "message": str(exc)[:1000],
        "chain": chain,
        "frame_from_own_traceback": own is not None,
    }
    if frame is None:
        out["keras_frame"] = None
    else:
        filename, lineno, line = frame
        out["keras_frame"] = {"file": refusals.short_path(filename), "line": lineno, "source": line,
                              "explicit_raise": refusals.is_raise_statement(filename, lineno)}
    return out


def survey():
    env = environment()
    rows = []
    for kind in KINDS:
        for claim, params, make in _cases(kind):
            row = {"claim": claim, "kind": kind, "params": {k: list(v) if isinstance(v, tuple) else v
                                                            for k, v in params.items()}}
            for label, unfiltered in (("filtered", False), ("unfiltered", True)):
                try:
                    seen = _run(make, params, unfiltered)
                except Exception as exc:
                    seen = {"outcome": "raised", "_exc": exc, **_describe(exc)}
                exc = seen.pop("_exc", None)
                if exc is not None:
                    outcome, detail = refusals.classify(claim, exc, env)
                    seen["classified"] = {"outcome": outcome, "detail": detail}
                row[label] = seen
            rows.append(row)
            print(_line(row), file=sys.stderr)
    return {"environment": {k: env[k] for k in ("python", "tensorflow", "keras", "keras_package", "backend",
                                                 "platform", "env_name")},
            "measured": datetime.date.today().isoformat(),
            "rows": rows}


def _line(row):
    u = row["unfiltered"]
    frame = u.get("keras_frame") or {}
    return (f"{row['claim'].split('::')[1]:45s} {row['kind']:10s} {json.dumps(row['params']):40s} "
            f"{u['outcome']:8s} {u.get('exception', ''):45s} raise={frame.get('explicit_raise')} "
            f"{frame.get('file')}:{frame.get('line')} | {u.get('message', '').splitlines()[0][:90] if u.get('message') else ''}"
            f" -> {u.get('classified', {}).get('outcome')}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the survey here")
    args = parser.parse_args(argv)
    data = survey()
    text = json.dumps(data, indent=1, sort_keys=True)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
