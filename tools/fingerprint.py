"""Does *my* saved model load and compute the same after an upgrade?

    # before the upgrade, in the old environment:
    python -m rnnspec.tools.fingerprint write my_model.h5 -o my_model.fingerprint.json
    # after it, in the new one:
    python -m rnnspec.tools.fingerprint check my_model.h5 my_model.fingerprint.json

``write`` loads the model (``keras.models.load_model``: ``.keras``, legacy ``.h5``, or a
SavedModel directory where the Keras version reads one) and records its fingerprint: the
Keras config of every layer, a sha256 of every weight (float32 bytes, in ``get_weights``
order) and of all of them, and its outputs on seeded inputs of the model's input shape
(``None`` dimensions: ``--batch``, ``--timesteps``, or ``--dim``). ``check`` loads the same
file in the running environment, computes the same inputs, and compares:

- weights: the same bytes, in the same order (or the same set, in another order: said so);
- outputs: equal within the tolerance table of the environment that checks
  (``spec/data/tolerances.toml``, float32 on the CPU), output by output;
- config: the layer classes and every config key both versions have (a difference is
  printed, it does not fail the check: versions rename and add keys).

Exit status: 0 the same, 1 it loads but differs (weights or outputs), 2 it does not load.

Where the new Keras cannot load the file as a model (Keras 3 loads no Keras 2 ``.h5``
model with a recurrent layer: ``docs/compat/matrix.md``), rebuild the architecture in code
and check the weights: ``--build my_package.models:make_model`` calls that function and loads
the file's weights into the model it returns (``--build-args`` passes it strings).
Custom objects: ``--custom my_package.layers`` imports a module that registers them (or
``module:function`` calls a function after the import).
"""

import argparse
import hashlib
import importlib
import json
import sys
from pathlib import Path

import numpy as np


VERSION = 1


def _custom(specs):
    for spec in specs or []:
        module, _, function = spec.partition(":")
        mod = importlib.import_module(module)
        if function:
            getattr(mod, function)()


def model_format(path):
    p = Path(path)
    if p.is_dir():
        return "savedmodel"
    return {".keras": "keras", ".h5": "h5", ".hdf5": "h5"}.get(p.suffix, "keras")


def load(path, build=None, build_args=()):
    """The saved model at ``path``; with ``build`` ("module:function"), the model that function
    builds (called with ``build_args``), with the weights of ``path`` loaded into it."""
    from rnnspec.spec import adapter
    if build:
        module, _, function = build.partition(":")
        model = getattr(importlib.import_module(module), function)(*build_args)
        return adapter.load_weights_from(model, str(path))
    return adapter.load_saved(str(path), model_format(path))


def _input_shapes(model, args):
    shapes = []
    for tensor in model.inputs:
        dims = list(tensor.shape)
        filled = []
        for i, d in enumerate(dims):
            if d is not None:
                filled.append(int(d))
            elif i == 0:
                filled.append(args.batch)
            elif i == 1 and len(dims) == 3:
                filled.append(args.timesteps)
            else:
                filled.append(args.dim)
        shapes.append(filled)
    return shapes


def _inputs(shapes, seed):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(np.float32) for s in shapes]


def _digest(array):
    a = np.ascontiguousarray(np.asarray(array, dtype="<f4"))
    return hashlib.sha256(a.tobytes()).hexdigest()


def _layers(model):
    out = []
    for layer in model.layers:
        config = json.loads(json.dumps(layer.get_config(), default=str))
        out.append({"class": layer.__class__.__name__, "name": layer.name, "config": config,
                    "weights": [{"shape": list(np.shape(w)), "sha256": _digest(w)} for w in layer.get_weights()]})
    return out


def _outputs(model, xs):
    from rnnspec.spec import adapter
    return adapter.to_numpy(adapter.as_list(adapter.invoke(model, xs if len(xs) > 1 else xs[0])))


def fingerprint(model, args):
    from rnnspec.spec.report import environment
    weights = model.get_weights()
    shapes = _input_shapes(model, args)
    xs = _inputs(shapes, args.seed)
    outputs = _outputs(model, xs)
    total = hashlib.sha256("".join(_digest(w) for w in weights).encode()).hexdigest()
    return {"fingerprint_version": VERSION, "environment": environment(), "seed": args.seed,
            "input_shapes": shapes, "inputs": [x.tolist() for x in xs],
            "weights_sha256": total, "weights": [{"shape": list(np.shape(w)), "sha256": _digest(w)} for w in weights],
            "layers": _layers(model),
            "outputs": [{"shape": list(o.shape), "values": o.tolist()} for o in outputs]}


def compare(recorded, model):
    """``(verdict, lines)``: verdict "same" or "differs"; lines say what was compared and found."""
    from rnnspec.spec.assertions import close_mask, tolerance
    lines, verdict = [], "same"
    weights = model.get_weights()
    now = [{"shape": list(np.shape(w)), "sha256": _digest(w)} for w in weights]
    if now == recorded["weights"]:
        lines.append(f"weights: the same ({len(now)} arrays, sha256 {recorded['weights_sha256'][:16]}...)")
    elif sorted(map(json.dumps, now)) == sorted(map(json.dumps, recorded["weights"])):
        lines.append("weights: the same arrays, in another order (get_weights)")
    else:
        verdict = "differs"
        lines.append(f"weights: DIFFER ({len(now)} arrays now, {len(recorded['weights'])} recorded; "
                     + "; ".join(f"#{i} {a['shape']} vs {b['shape']}" for i, (a, b) in enumerate(zip(now, recorded["weights"]))
                                 if a != b)[:400] + ")")
    xs = [np.asarray(x, np.float32) for x in recorded["inputs"]]
    try:
        outputs = _outputs(model, xs)
    except Exception as exc:
        return "differs", lines + [f"outputs: the call raised {type(exc).__name__}: {exc}"]
    atol, rtol = tolerance()
    expected = recorded["outputs"]
    if len(outputs) != len(expected):
        verdict = "differs"
        lines.append(f"outputs: {len(outputs)} instead of {len(expected)}")
    for i, (o, e) in enumerate(zip(outputs, expected)):
        e_arr = np.asarray(e["values"], np.float64)
        if list(o.shape) != e["shape"]:
            verdict = "differs"
            lines.append(f"output {i}: shape {list(o.shape)} instead of {e['shape']}")
        elif not np.all(close_mask(o, e_arr, atol, rtol)):
            verdict = "differs"
            lines.append(f"output {i}: DIFFERS, max |difference| {float(np.max(np.abs(o - e_arr))):.3g} "
                         f"(tolerance atol={atol:g}, rtol={rtol:g})")
        else:
            diff = float(np.max(np.abs(o - e_arr))) if o.size else 0.0
            lines.append(f"output {i} {e['shape']}: the same (max |difference| {diff:.3g}, atol={atol:g}, rtol={rtol:g})")
    lines += _config_differences(recorded["layers"], _layers(model))
    return verdict, lines


def _plain(value):
    """A config value without what only serialization adds: ``module`` / ``registered_name`` keys,
    and a dtype policy written as ``{"class_name": "DTypePolicy", "config": {"name": ...}}``."""
    if isinstance(value, dict):
        if value.get("class_name") == "DTypePolicy":
            return value.get("config", {}).get("name")
        return {k: _plain(v) for k, v in value.items() if k not in ("module", "registered_name")}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _config_differences(before, after):
    lines = []
    if [b["class"] for b in before] != [a["class"] for a in after]:
        return [f"config: layer classes {[b['class'] for b in before]} -> {[a['class'] for a in after]}"]
    for b, a in zip(before, after):
        shared = sorted(set(b["config"]) & set(a["config"]) - {"name"})
        changed = [k for k in shared if _plain(b["config"][k]) != _plain(a["config"][k])]
        gone, new = sorted(set(b["config"]) - set(a["config"])), sorted(set(a["config"]) - set(b["config"]))
        if changed or gone or new:
            lines.append(f"config {a['class']} {a['name']}: " + "; ".join(
                [f"{k}: {b['config'][k]!r} -> {a['config'][k]!r}" for k in changed][:6]
                + ([f"no longer has {gone}"] if gone else []) + ([f"new keys {new}"] if new else []))[:600])
    return lines or ["config: every shared key the same"]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m rnnspec.tools.fingerprint", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write", help="record the fingerprint of a saved model")
    w.add_argument("model")
    w.add_argument("-o", "--out", help="fingerprint file (default MODEL.fingerprint.json)")
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--batch", type=int, default=2)
    w.add_argument("--timesteps", type=int, default=5)
    w.add_argument("--dim", type=int, default=3, help="any other unknown dimension")
    c = sub.add_parser("check", help="check a saved model against its fingerprint here")
    c.add_argument("model")
    c.add_argument("fingerprint")
    for p in (w, c):
        p.add_argument("--custom", action="append", help="module (or module:function) registering custom objects")
        p.add_argument("--build", help="module:function that builds the model; MODEL is then loaded with load_weights")
        p.add_argument("--build-args", nargs="*", default=[], help="string arguments for --build")
    args = parser.parse_args(argv)
    _custom(args.custom)
    try:
        model = load(args.model, args.build, args.build_args)
    except Exception as exc:
        print(f"rnnspec fingerprint: {args.model} does not load here: {type(exc).__name__}: {exc}")
        return 2
    if args.cmd == "write":
        out = Path(args.out or str(args.model).rstrip("/") + ".fingerprint.json")
        out.write_text(json.dumps(fingerprint(model, args), indent=1, default=str) + "\n")
        print(f"rnnspec fingerprint: {args.model} -> {out}")
        return 0
    from rnnspec.spec.report import environment
    recorded = json.loads(Path(args.fingerprint).read_text())
    verdict, lines = compare(recorded, model)
    then, now = recorded["environment"], environment()
    print(f"rnnspec fingerprint: {args.model}, written with Keras {then['keras']} ({then['backend']}, TF "
          f"{then.get('tensorflow')}), checked with Keras {now['keras']} ({now['backend']}, TF {now.get('tensorflow')}): "
          f"{verdict.upper()}")
    for line in lines:
        print("  " + line)
    return 0 if verdict == "same" else 1


if __name__ == "__main__":
    sys.exit(main())
