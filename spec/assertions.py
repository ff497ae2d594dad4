"""Assertion helpers: compare Keras with the reference, and explain failures.

A failure message has three parts: the failing configuration on one line,
the quantity that differs (which output, where, by how much), and a
self-contained snippet (numpy and keras only) that reproduces it and can go
straight into an upstream bug report.
"""

import functools
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import numpy as np

from rnnspec.spec import adapter
from rnnspec.spec import outcomes

DATA = Path(__file__).parent / "data"


@functools.cache
def _tolerance_rows():
    return tomllib.loads((DATA / "tolerances.toml").read_text())["row"]


def tolerance(dtype="float32", backend=None, device="cpu", tf32="off", tier="tiny", quantity="value"):
    """``(atol, rtol)`` from the tolerance table: the first matching row (a row without ``tier`` fits
    any tier; a row without ``quantity`` is for values, ``quantity = "gradient"`` for gradients)."""
    backend = backend or adapter.BACKEND
    for row in _tolerance_rows():
        if row.get("quantity", "value") != quantity:
            continue
        if all(fnmatch(str(v), str(row.get(k, "*"))) for k, v in
               (("dtype", dtype), ("backend", backend), ("device", device), ("tf32", tf32), ("tier", tier))):
            return row["atol"], row["rtol"]
    raise LookupError(f"no {quantity} tolerance row for dtype={dtype} backend={backend} device={device} "
                      f"tf32={tf32} tier={tier}")


def close_mask(actual, expected, atol, rtol):
    """Elementwise ``|actual - expected| <= atol + rtol * |expected|`` (a NaN or inf in ``actual`` is never close)."""
    a, e = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    with np.errstate(invalid="ignore"):
        return np.isfinite(a) & (np.abs(a - e) <= atol + rtol * np.abs(e))


def output_names(config):
    c = config
    outs = ["forward output", "backward output"] if c.bidirectional == "none" else ["output"]
    if c.return_state:
        per = ["h", "c"] if c.kind == "lstm" else ["h"]
        if c.bidirectional:
            outs += [f"forward state {s}" for s in per] + [f"backward state {s}" for s in per]
        else:
            outs += [f"state {s}" for s in per]
    return outs


def assert_matches_reference(case, actual, expected, *, atol=None, rtol=None, path="eager call", names=None):
    """Keras's outputs equal the reference's, one by one, within the table's tolerance (``names``:
    one per value, where ``case.config`` does not name them, e.g. the states of stacked cells)."""
    __tracebackhide__ = True
    if atol is None or rtol is None:
        atol, rtol = tolerance()
    names = names or output_names(case.config)
    problem = None
    if len(actual) != len(expected):
        problem = f"returned {len(actual)} tensors, but should return {len(expected)} ({', '.join(names)})"
    else:
        for name, a, e in zip(names, actual, expected):
            a, e = np.asarray(a), np.asarray(e)
            if a.shape != e.shape:
                problem = f"{name}.shape={a.shape}, but should be {e.shape}"
                break
            excess = np.abs(a - e) - (atol + rtol * np.abs(e))
            if a.size and (not np.all(np.isfinite(a)) or excess.max() > 0):
                idx = np.unravel_index(np.nanargmax(np.where(np.isfinite(a), excess, np.inf)), a.shape)
                problem = (f"{name}{list(idx)}={a[idx]:.7g}, but should be {e[idx]:.7g} "
                           f"(|diff|={abs(a[idx] - e[idx]):.2e} > atol {atol:g} + rtol {rtol:g}; "
                           f"max |diff| over {name} {np.nanmax(np.abs(a - e)):.2e})")
                break
    if problem:
        raise AssertionError(f"{problem} [{path}]\n  config: {describe(case)}\n\n"
                             f"Reproducer (numpy + keras):\n{reproducer(case, expected)}")
    outcomes.asserted_formulas()


def describe(case):
    extra = [f"batch={case.batch}", f"timesteps={case.timesteps}"]
    if case.mask is not None:
        extra.append("mask=" + "".join("|" + "".join("1" if v else "0" for v in row) for row in case.mask) + "|")
    if case.initial_state is not None:
        extra.append("initial_state=given")
    if case.training:
        extra.append("training=True")
    return case.config.one_line(case.features) + " " + " ".join(extra)


def _arr(a, dtype="float32"):
    a = np.asarray(a)
    if a.dtype == bool:
        return f"np.array({a.tolist()!r})"
    return f"np.array({np.asarray(a, np.float32).tolist()!r}, dtype='{dtype}')"


def reproducer(case, expected):
    c = case.config
    cls = adapter.LAYER_CLASSES[c.kind]
    kwargs = ", ".join(f"{k}={v!r}" for k, v in c.keras_kwargs().items())
    lines = ["import numpy as np", "import keras  # Keras 2: from tensorflow import keras" if adapter.IS_KERAS3
             else "from tensorflow import keras  # Keras 2 (tf.keras)", "",
             f"layer = keras.layers.{cls}({c.units}, {kwargs})"]
    if c.bidirectional:
        mode = None if c.bidirectional == "none" else c.bidirectional
        lines.append(f"layer = keras.layers.Bidirectional(layer, merge_mode={mode!r})")
    lines.append(f"x = {_arr(case.x)}")
    call = "layer(x"
    lines.append(f"layer.build((None, None, {case.features}))")
    lines.append("layer.set_weights([")
    lines += [f"    {_arr(w)}," for w in case.weights]
    lines.append("])")
    if case.mask is not None:
        lines.append(f"mask = {_arr(case.mask)}")
        call += ", mask=mask"
    if case.initial_state is not None:
        lines.append("initial_state = [" + ", ".join(_arr(s) for s in case.initial_state) + "]")
        lines.append("initial_state = [keras.ops.convert_to_tensor(s) for s in initial_state]"
                     if adapter.IS_KERAS3 else "import tensorflow as tf; initial_state = [tf.constant(s) for s in initial_state]")
        call += ", initial_state=initial_state"
    if case.training:
        call += ", training=True"
    lines.append(f"out = {call})")
    lines.append("out = list(out) if isinstance(out, (list, tuple)) else [out]")
    lines.append("# float64 values of the documented formulas (rnnspec reference/):")
    lines.append("expected = [" + ", ".join(f"np.array({np.asarray(e).tolist()!r})" for e in expected) + "]")
    lines.append("for name, o, e in zip(" + repr(output_names(c)) + ", out, expected):")
    lines.append("    print(name, 'max |keras - formula| =', np.max(np.abs(np.asarray(o, 'float64') - e)))")
    return "\n".join("    " + line for line in lines)
