"""Across versions: the compatibility corpus, written in one environment and read in another.

The corpus (:data:`MODELS`) is a handful of small functional models with seeded weights:
every cell kind, the flags that change the weight layout (GRU ``reset_after``, ``use_bias``)
or the semantics (``go_backwards``, ``unroll``, ``return_state``, activations), GRU without
``reset_after`` (its default), ``hard_sigmoid`` (redefined by Keras 3), Bidirectional (its
forward/backward weight order), a stack, and a registered user-defined cell.

:func:`write` builds each model in the running environment, asserts its outputs on fixed
inputs against the float64 formulas (``reference/``), and saves it in every format this
version writes (``conventions.toml``: ``weights_formats``, ``model_formats``; plus the
``to_json`` config). Next to the artifacts go the inputs, the weights and the formulas'
outputs (``expected.npz``) and a manifest with the writer's environment and checksums.

:func:`read` loads every artifact of a writer's directory in the running environment and
gives each one exactly one outcome (:func:`read_artifact`):

``match``        loads, and computes the writer's reference outputs (tolerance table);
``differs``      loads, but computes something else: a finding;
``refused``      refuses with a clear error, listed with class and message (``compat.toml``);
``unsupported``  this reader does not read the format at all (listed, with the reason);
``crash``        raises otherwise, or refuses with an unclear error: a finding.

A ``differs`` or ``crash`` listed in ``spec/data/compat.toml`` (``[[finding]]``, with its
reason and reproducer) is a known finding; an unlisted one is new, and so is a listed one
that now matches (``fixed``). ``tools/compat.py`` drives both phases and merges the results.
"""

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnnspec import reference
from rnnspec.reference.structure import weight_shapes

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parent.parent
GOLDEN = DATA / "golden"   # travels in the wheel (package data)

#: bumped when the corpus changes: a reader refuses a writer directory of another version
CORPUS_VERSION = 1
BATCH, TIMESTEPS, FEATURES = 2, 5, 3
SEED = 20261128


@dataclass(frozen=True)
class L:
    """One recurrent layer of the corpus: its kind, units, Keras arguments, Bidirectional merge mode."""
    kind: str                       # simple_rnn, lstm, gru, user_cell
    units: int
    args: dict = field(default_factory=dict)
    bidirectional: str = None       # None or a merge_mode

    def __hash__(self):
        return hash((self.kind, self.units, tuple(sorted(self.args.items())), self.bidirectional))


#: model id -> branches; every branch reads the model's one input, a branch is a stack of layers.
MODELS = {
    # every cell kind, and the flags that change layout or semantics
    "cells": [
        [L("simple_rnn", 3, {"return_sequences": True})],
        [L("lstm", 4, {"return_state": True})],
        [L("gru", 3, {"reset_after": True, "return_sequences": True})],
        [L("gru", 3, {"reset_after": False})],        # bias (3u,) instead of (2, 3u)
        [L("lstm", 3, {"use_bias": False, "go_backwards": True, "unroll": True, "activation": "relu",
                       "return_sequences": True})],
    ],
    # GRU built without reset_after: whatever the version's default is (conventions.toml)
    "gru_default": [[L("gru", 3, {"return_sequences": True})]],
    # hard_sigmoid: clip(0.2x + 0.5) in Keras 2, clip(x/6 + 0.5) in Keras 3 (conventions.toml)
    "hard_sigmoid": [[L("lstm", 3, {"recurrent_activation": "hard_sigmoid"})]],
    # Bidirectional: forward then backward weights
    "bidirectional": [[L("lstm", 3, {"return_sequences": True}, "concat")],
                      [L("gru", 2, {}, "sum")]],
    "stack": [[L("simple_rnn", 3, {"return_sequences": True}), L("gru", 3, {"return_sequences": True}),
               L("lstm", 2)]],
    # keras.layers.RNN around a registered user-defined cell
    "user_cell": [[L("user_cell", 3, {"return_sequences": True})]],
}

#: the formats of the corpus: "json" (to_json, weights set from expected.npz), weights files
#: (loaded into the model the reader builds from the corpus), whole-model files
JSON = "json"


def formats_written():
    """``[(kind, fmt)]`` this environment writes: the config, weights and model formats (conventions.toml)."""
    from rnnspec.spec import adapter
    c = adapter.conventions()
    return ([("json", JSON)] + [("weights", f) for f in c["weights_formats"]]
            + [("model", f) for f in c["model_formats"]])


def artifact_format(kind, fmt):
    """The name of a format in the matrix: ``json``, ``weights:h5``, ``model:keras``..."""
    return JSON if kind == "json" else f"{kind}:{fmt}"


# --------------------------------------------------------------------------- reference side

def _cell_spec(layer, hard_sigmoid, gru_default):
    a = layer.args
    if layer.kind == "user_cell":   # h' = x.W + h.U: SimpleRNN's formula, linear, no bias
        return reference.CellSpec("simple_rnn", layer.units, activation="linear", use_bias=False)
    return reference.CellSpec(layer.kind, layer.units, activation=a.get("activation", "tanh"),
                              recurrent_activation=a.get("recurrent_activation", "sigmoid"),
                              use_bias=a.get("use_bias", True),
                              reset_after=a.get("reset_after", gru_default), hard_sigmoid=hard_sigmoid)


def _layer_shapes(layer, features, gru_default):
    spec = _cell_spec(layer, "keras3", gru_default)
    shapes = [s for _, s in weight_shapes(spec.kind, spec.units, features, use_bias=spec.use_bias,
                                          reset_after=spec.reset_after)]
    return shapes * (2 if layer.bidirectional else 1)


def _out_features(layer):
    return layer.units * (2 if layer.bidirectional == "concat" else 1)


def corpus_weights(model_id, gru_default):
    """Seeded weights per layer (Keras order; Bidirectional: forward then backward), float32 values."""
    rng = np.random.default_rng([SEED, list(MODELS).index(model_id)])
    out = []
    for branch in MODELS[model_id]:
        features = FEATURES
        for layer in branch:
            per = 3 if _cell_spec(layer, "keras3", gru_default).use_bias else 2
            ws = []
            for i, shape in enumerate(_layer_shapes(layer, features, gru_default)):
                role = i % per   # kernel ~ N(0, 1/features), recurrent ~ N(0, 0.64/units), bias ~ U(-.5, .5)
                if role == 0:
                    w = rng.standard_normal(shape) / np.sqrt(features)
                elif role == 1:
                    w = rng.standard_normal(shape) * 0.8 / np.sqrt(layer.units)
                else:
                    w = rng.uniform(-0.5, 0.5, shape)
                ws.append(w.astype(np.float32).astype(np.float64))
            out.append(ws)
            features = _out_features(layer)
    return out


def corpus_input(model_id):
    rng = np.random.default_rng([SEED, 1000 + list(MODELS).index(model_id)])
    return rng.standard_normal((BATCH, TIMESTEPS, FEATURES)).astype(np.float32).astype(np.float64)


def expected_outputs(model_id, layer_weights, x, hard_sigmoid, gru_default):
    """The formulas' outputs of the corpus model, in the model's output order (float64)."""
    outs, k = [], 0
    for branch in MODELS[model_id]:
        h = x
        for j, layer in enumerate(branch):
            spec = _cell_spec(layer, hard_sigmoid, gru_default)
            ws = layer_weights[k]
            k += 1
            per = 3 if spec.use_bias else 2
            unpack = (lambda w: (w[0], w[1], w[2] if spec.use_bias else None))
            a = layer.args
            rs = a.get("return_sequences", False)
            if layer.bidirectional:
                merged, fw, bw = reference.run_bidirectional(spec, h, unpack(ws[:per]), unpack(ws[per:]),
                                                             merge_mode=layer.bidirectional, return_sequences=rs)
                result = merged if isinstance(merged, list) else [merged]
                states = list(fw) + list(bw)
            else:
                res = reference.run_layer(spec, h, *unpack(ws), go_backwards=a.get("go_backwards", False))
                result, states = [res.output(rs)], list(res.states)
            if j < len(branch) - 1:
                h = result[0]
            else:
                outs += result + (states if a.get("return_state") else [])
    return outs


def output_names(model_id):
    names = []
    for b, branch in enumerate(MODELS[model_id]):
        top = branch[-1]
        label = f"branch {b} ({'+'.join(l.kind for l in branch)})"
        names += [f"{label} output"] if top.bidirectional != "none" else [f"{label} forward", f"{label} backward"]
        if top.args.get("return_state"):
            per = ["h", "c"] if top.kind == "lstm" else ["h"]
            names += [f"{label} state {s}" for s in per] * (2 if top.bidirectional else 1)
    return names


# --------------------------------------------------------------------------- keras side

def _keras_layer(layer):
    from rnnspec.spec import adapter
    if layer.kind == "user_cell":
        made = adapter.user_cell_layer(layer.units, **layer.args)
    else:
        made = adapter.make_layer(layer.kind, layer.units, **layer.args)
    if layer.bidirectional:
        made = adapter.bidirectional(made, merge_mode=layer.bidirectional)
    return made


def build_model(model_id, layer_weights=None):
    """The corpus model in this environment; with ``layer_weights`` set per layer."""
    from rnnspec.spec import adapter
    layers = []

    def outputs(inputs):
        outs = []
        for branch in MODELS[model_id]:
            h = inputs
            for layer in branch:
                made = _keras_layer(layer)
                layers.append(made)
                h = made(h)
            outs += adapter.as_list(h)
        return outs
    model = adapter.functional_model(outputs, TIMESTEPS, FEATURES)
    if layer_weights is not None:
        for made, ws in zip(layers, layer_weights):
            adapter.set_weights(made, ws)
    return model


def call_model(model, x):
    from rnnspec.spec import adapter
    return adapter.to_numpy(adapter.as_list(adapter.invoke(model, np.asarray(x, np.float32))))


def conventions_now():
    from rnnspec.spec import adapter
    c = adapter.conventions()
    return c["hard_sigmoid"], c["gru_reset_after_default"]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def _error(exc):
    return {"exception": type(exc).__name__, "message": _message(exc)[:600]}


def _message(exc):
    return re.sub(r"\s+", " ", str(exc)).strip()


def register_user_objects():
    """Register the corpus's user-defined cell, so that loading finds it (as a user's import would)."""
    from rnnspec.spec import adapter
    adapter.user_cell_class()


def write(out_dir, *, models=None, formats=None):
    """Write the corpus into ``out_dir`` (``<model>/<format>/...``), with ``manifest.json``."""
    import shutil
    from rnnspec.spec import adapter
    from rnnspec.spec.assertions import close_mask, tolerance
    from rnnspec.spec.report import environment
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    hard_sigmoid, gru_default = conventions_now()
    atol, rtol = tolerance()
    manifest = {"corpus_version": CORPUS_VERSION, "environment": environment(),
                "conventions": {"hard_sigmoid": hard_sigmoid, "gru_reset_after_default": gru_default},
                "models": {}}
    for model_id in models or MODELS:
        weights = corpus_weights(model_id, gru_default)
        x = corpus_input(model_id)
        expected = expected_outputs(model_id, weights, x, hard_sigmoid, gru_default)
        model = build_model(model_id, weights)
        actual = call_model(model, x)
        ok = len(actual) == len(expected) and all(
            np.shape(a) == np.shape(e) and bool(np.all(close_mask(a, e, atol, rtol))) for a, e in zip(actual, expected))
        if not ok:
            # the writer itself does not compute the formulas: its artifacts would test nothing
            raise AssertionError(f"{model_id}: the model before saving does not compute the formulas "
                                 f"in {adapter.KERAS_VERSION} (a finding of the spec, not of saving)")
        mdir = out_dir / model_id
        mdir.mkdir()
        flat = {f"w{i}_{j}": w for i, ws in enumerate(weights) for j, w in enumerate(ws)}
        model_weights = adapter.get_weights(model)   # the model's own order, for the json format
        np.savez(mdir / "expected.npz", x=x, **{f"out{i}": e for i, e in enumerate(expected)}, **flat,
                 **{f"mw{i}": w for i, w in enumerate(model_weights)})
        entry = {"outputs": output_names(model_id), "n_outputs": len(expected), "n_model_weights": len(model_weights),
                 "layers": [len(ws) for ws in weights], "artifacts": {}}
        for kind, fmt in formats_written():
            name = artifact_format(kind, fmt)
            if formats and name not in formats:
                continue
            adir = mdir / name.replace(":", "-")
            adir.mkdir()
            try:
                path = adapter.save_as(model, str(adir), fmt, kind)
            except Exception as exc:   # a writer that cannot save: recorded, read as "not written"
                shutil.rmtree(adir)
                entry["artifacts"][name] = {"saved": False, **_error(exc)}
                continue
            entry["artifacts"][name] = {"saved": True, "path": str(Path(path).relative_to(out_dir))}
        manifest["models"][model_id] = entry
    manifest["files"] = {str(p.relative_to(out_dir)): sha256(p)
                         for p in sorted(out_dir.rglob("*")) if p.is_file()}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True, default=str) + "\n")
    return manifest


# --------------------------------------------------------------------------- reading

def _load_and_call(writer_dir, model_id, name, artifact, x, model_weights):
    from rnnspec.spec import adapter
    path = str(Path(writer_dir) / artifact["path"])
    kind, _, fmt = name.partition(":")
    if name == JSON:
        model = adapter.load_saved(path, JSON)
        adapter.set_weights(model, list(model_weights))
    elif kind == "weights":
        model = adapter.load_weights_from(build_model(model_id), path)
    else:
        model = adapter.load_saved(path, fmt)
    return call_model(model, x)


def _compare(actual, expected, atol, rtol):
    """None when equal within tolerance, else what differs."""
    from rnnspec.spec.assertions import close_mask
    if len(actual) != len(expected):
        return f"{len(actual)} outputs instead of {len(expected)}"
    for i, (a, e) in enumerate(zip(actual, expected)):
        if np.shape(a) != np.shape(e):
            return f"output {i}: shape {np.shape(a)} instead of {np.shape(e)}"
        if not np.all(close_mask(a, e, atol, rtol)):
            return f"output {i}: max |difference| {float(np.max(np.abs(np.asarray(a) - e))):.3g}"
    return None


def read_raw(writer_dir, manifest, model_id, name):
    """What happens when this environment loads one artifact and calls it on the fixed inputs: a dict
    (``spec/compat_rules.py``). An exception raised in rnnspec's own code propagates (a harness error)."""
    from rnnspec.spec.assertions import tolerance
    from rnnspec.spec.refusals import keras_tracebacks
    entry = manifest["models"][model_id]
    data = np.load(Path(writer_dir) / model_id / "expected.npz")
    x = data["x"]
    expected = [data[f"out{i}"] for i in range(entry["n_outputs"])]
    model_weights = [data[f"mw{i}"] for i in range(entry["n_model_weights"])]
    try:
        with keras_tracebacks():   # the raising frame stays visible (spec/refusals.py)
            actual = _load_and_call(writer_dir, model_id, name, entry["artifacts"][name], x, model_weights)
    except Exception as exc:
        if not getattr(exc, "rnnspec_outcome", None):
            raise   # raised in rnnspec's own code, not inside a Keras call: a harness error
        return {"loaded": False, "exception_mro": [c.__name__ for c in type(exc).__mro__],
                "message": _message(exc)[:600], "detail": f"{type(exc).__name__}: {_message(exc)[:300]}"}
    atol, rtol = tolerance()
    problem = _compare(actual, expected, atol, rtol)
    if problem is None:
        return {"loaded": True, "matches": True, "detail": ""}
    layers = entry["layers"]
    weights = [[data[f"w{i}_{j}"] for j in range(n)] for i, n in enumerate(layers)]
    hard_sigmoid, gru_default = conventions_now()
    modelled = expected_outputs(model_id, weights, x, hard_sigmoid, gru_default)
    return {"loaded": True, "matches": False, "detail": problem,
            "matches_reader_conventions": _compare(actual, modelled, atol, rtol) is None}


def read_artifact(writer_dir, manifest, model_id, name, reader_env):
    """One artifact read here: the raw facts, its outcome (match, differs, refused, unsupported,
    crash) and ``listed``, the compat.toml entry that lists it (None: a new finding)."""
    from rnnspec.spec.compat_rules import classify, unsupported_rule
    rule = unsupported_rule(fmt=name, reader_env=reader_env)
    if rule is not None:   # not attempted: e.g. tf.saved_model.load without TensorFlow
        raw = {"loaded": None, "not_attempted": rule["id"], "detail": rule["reason"].split("\n")[0]}
    else:
        raw = read_raw(writer_dir, manifest, model_id, name)
    return {**raw, **classify(raw, fmt=name, model_id=model_id, writer_env=manifest["environment"],
                              reader_env=reader_env)}


def read(writer_dir, reader_env):
    """Every artifact of one writer's directory, read here: a list of result dicts."""
    writer_dir = Path(writer_dir)
    manifest = json.loads((writer_dir / "manifest.json").read_text())
    if manifest.get("corpus_version") != CORPUS_VERSION:
        raise ValueError(f"{writer_dir}: corpus version {manifest.get('corpus_version')}, "
                         f"this reader reads {CORPUS_VERSION}: write it again")
    writer = manifest["environment"]["env_name"]
    register_user_objects()
    results = []
    for model_id, entry in manifest["models"].items():
        for name, artifact in entry["artifacts"].items():
            base = {"writer": writer, "reader": reader_env["env_name"], "format": name, "model": model_id}
            if not artifact["saved"]:
                results.append({**base, "outcome": "not-written", "listed": None,
                                "detail": f"{artifact['exception']}: {artifact['message'][:300]}"})
                continue
            try:
                results.append({**base, **read_artifact(writer_dir, manifest, model_id, name, reader_env)})
            except Exception as exc:   # ours: recorded, and the gate fails on it
                results.append({**base, "outcome": "harness-error", "listed": None, "harness_error": True,
                                "detail": f"{type(exc).__name__}: {_message(exc)[:300]}"})
    return results


def verify_checksums(directory):
    """The files of a written corpus whose sha256 differs from its manifest (or that are missing)."""
    directory = Path(directory)
    manifest = json.loads((directory / "manifest.json").read_text())
    bad = []
    for rel, digest in manifest["files"].items():
        p = directory / rel
        if not p.is_file() or sha256(p) != digest:
            bad.append(rel)
    return bad
