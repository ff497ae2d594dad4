"""Reproducers: ``rnnspec repro ID``.

- a listed divergence (``spec/data/divergences.toml``): its ``[divergence.case]``
  as a numpy + keras snippet, with the reason and where it applies;
- a finding of the compatibility matrix (``spec/data/compat.toml``): its ``reproducer``;
- a failing claim of a report (``--report R.json``): the reproducer the failure
  printed (the report keeps it, ``spec/report.py``), or its message when it printed none.

Standard library only: the snippet is written from the data, without Keras.
"""

import textwrap
import tomllib
from pathlib import Path

from rnnspec.spec.outcomes import GATE_FAILING
from rnnspec.tools.findings import catalogue, when_text
from rnnspec.tools.report import DIVERGENCES, claims_of, load_divergence_entries

COMPAT = DIVERGENCES.parent / "compat.toml"
LAYER_CLASSES = {"simple_rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}


def _when(entry):
    when = entry.get("when") or {}
    return ", ".join(f"{k} {v}" for k, v in when.items()) or "every environment"


def _array(value, dtype="float32"):
    return f"np.array({value!r}, dtype={dtype!r})"


def divergence_snippet(entry):
    """A runnable numpy + keras snippet for a divergence's ``[divergence.case]``."""
    case = entry["case"]
    config = dict(case["config"])
    kind, units = config.pop("kind"), config.pop("units")
    bidirectional = config.pop("bidirectional", None)
    for k in ("dropout", "recurrent_dropout"):
        if case.get(k):
            config[k] = case[k]
    batch = case.get("stateful_batch")
    if case.get("expect") in ("stateful-initial-state", "stateful-predict"):   # stateful, for first_x's batch
        batch = len(case["first_x"])
    if batch:
        config["stateful"] = True
    kwargs = "".join(f", {k}={v!r}" for k, v in config.items())
    lines = [f"# {entry['id']}: applies to {_when(entry)}",
             "import numpy as np",
             "import keras  # Keras 2 (TF <= 2.15): from tensorflow import keras",
             "",
             f"layer = keras.layers.{LAYER_CLASSES[kind]}({units}{kwargs})"]
    if bidirectional and bidirectional != "none":
        lines.append(f"layer = keras.layers.Bidirectional(layer, merge_mode={bidirectional!r})")
    if case.get("expect") == "construct-raises":
        lines[-1] += "  # raises here"
        raises = entry.get("raises") or {}
        lines.append(f"# expected: {', '.join(raises.get('exception', []))} matching {raises.get('message', '')!r}")
        return "\n".join(lines) + "\n"
    lines.append(f"x = {_array(case['x'])}")
    lines.append(f"layer.build(({batch if batch else 'None'}, None, {case['features']}))")
    lines.append("layer.set_weights([" + ", ".join(_array(w) for w in case["weights"]) + "])")
    call = "layer(x"
    if "mask" in case:
        lines.append(f"mask = np.array({case['mask']!r})")
        call += ", mask=mask"
    if "initial_state" in case:
        lines.append("initial_state = [" + ", ".join(_array(s) for s in case["initial_state"]) + "]")
        call += ", initial_state=initial_state"
    if case.get("training"):
        call += ", training=True"
    call += ")"
    expect = case.get("expect")
    if expect == "stateful-predict":
        first = _array(case["first_x"])
        lines += [f"first = {first}",
                  "inputs = keras.Input(shape=first.shape[1:], batch_size=first.shape[0])",
                  "model = keras.Model(inputs, layer(inputs))",
                  "print(model.predict(first, batch_size=first.shape[0], verbose=0))",
                  "print(model.predict(x, batch_size=x.shape[0], verbose=0))  # must start from the states "
                  "the first predict ended in"]
        return "\n".join(lines) + "\n"
    if expect == "stateful-initial-state":
        lines.append("import tensorflow as tf; initial_state = [tf.constant(s) for s in initial_state]"
                     "  # Keras 2 takes tensors")
        lines.append(f"print(layer({_array(case['first_x'])}))  # stores the states this call ends in")
    elif batch and expect != "stateful-raises":   # (its first call raises already)
        lines.append(f"layer(np.zeros(({batch},) + x.shape[1:], dtype='float32'))  # batch {batch}")
    if expect == "reset-with-states-raises":
        lines += [f"{call.split(', initial_state=')[0]})",
                  "layer.reset_state(states=initial_state) if hasattr(layer, 'reset_state') "
                  "else layer.reset_states(states=initial_state)  # raises here"]
    elif expect == "reset-raises":
        lines += [f"{call}", "layer.reset_state() if hasattr(layer, 'reset_state') else layer.reset_states()"
                  "  # raises here"]
    elif expect in ("raises", "stateful-raises"):
        lines += [f"out = {call}  # raises here"]
    elif expect == "accepted":
        lines += [f"out = {call}  # accepted: another batch size than the stateful layer was built for",
                  "print(out)"]
    else:
        lines += [f"out = {call}",
                  "out = out if isinstance(out, (list, tuple)) else [out]",
                  "for o in out:",
                  "    print(np.asarray(o))"]
    raises = entry.get("raises")
    if raises:
        lines.append(f"# expected: {', '.join(raises.get('exception', []))} matching {raises.get('message', '')!r}")
    elif entry.get("model"):
        lines.append(f"# the documented formulas give other values: rnnspec.spec.divergence_models."
                     f"{entry['model']} models what this Keras returns")
    return "\n".join(lines) + "\n"


def compat_findings(path=COMPAT):
    path = Path(path)
    if not path.is_file():
        return {}
    return {f["id"]: f for f in tomllib.loads(path.read_text()).get("finding", [])}


def known_ids():
    return sorted(catalogue())


def repro(ident, report=None):
    """The text ``rnnspec repro`` prints for ``ident``; raises LookupError when nothing matches."""
    divergences = load_divergence_entries()
    if ident in divergences:
        entry = divergences[ident]
        head = [f"# {ident} (known divergence, spec/data/divergences.toml)"]
        head += [f"# {line}" for line in textwrap.wrap(" ".join(entry.get("reason", "").split()), 88)]
        if entry.get("upstream"):
            head.append(f"# upstream: {entry['upstream']}")
        if "case" not in entry:
            if entry.get("reproducer"):   # a divergence outside the forward pass: its snippet, as text
                return "\n".join(head) + "\n\n" + entry["reproducer"].strip() + "\n"
            return "\n".join(head) + "\n# (no reproducer case listed)\n"
        return "\n".join(head) + "\n\n" + divergence_snippet(entry)
    f = catalogue().get(ident)
    if f is not None:
        head = [f"# {ident} ({f['kind']}, {f['source']}); applies to {when_text(f['when'])}"]
        head += [f"# {line}" for line in textwrap.wrap(f["reason"], 88)]
        if f.get("detail"):
            head.append(f"# {f['detail']}")
        if f.get("frame"):
            head.append(f"# at {f['frame']}")
        if f.get("reproducer"):
            return "\n".join(head) + "\n\n" + f["reproducer"] + "\n"
        claims = [c for c in f["claims"] if "*" not in c]
        run = (f"rnnspec run --profile ci -- -k {claims[0].split('::')[-1]}" if claims
               else "rnnspec run --profile ci -- spec/test_serialization.py")
        return "\n".join(head) + f"\n\n# no standalone snippet is listed; the claim that finds it:\n#   {run}\n"
    if report is not None:
        claims = claims_of(report)
        raw = report["claims"]
        hits = [k for k in claims if k == ident] or [k for k in claims if ident in k]
        failing = [k for k in hits if claims[k]["outcome"] in GATE_FAILING]
        if len(failing) > 1:
            raise LookupError(f"{ident!r} matches {len(failing)} failing claims of {report['_source']}: "
                              + ", ".join(failing) + "; give one exactly")
        if failing:
            k = failing[0]
            c = claims[k]
            out = [f"# {k}: {c['outcome']} in {report['environment'].get('env_name')} "
                   f"(Keras {report['environment'].get('keras')}, backend {report['environment'].get('backend')})"]
            for reason in c["reasons"]:
                out.append(f"# {reason}")
            reps = raw[k].get("reproducers") or []
            if reps:
                for r in reps:
                    out += ["", f"# {r['node']}", r["code"].rstrip()]
            else:
                out += ["", "# this failure printed no numpy + keras snippet; rerun the claim to see it:",
                        f"#   rnnspec run --profile ci -- -k {k.split('::')[-1]!s}"]
            return "\n".join(out) + "\n"
        if hits:
            status = ", ".join(k + ": " + claims[k]["outcome"] for k in hits[:5])
            raise LookupError(f"{ident!r} is not failing in {report['_source']} ({status})")
    where = f" nor a claim of {report['_source']}" if report is not None else ""
    raise LookupError(f"no divergence or finding {ident!r}{where}. Known ids: " + ", ".join(known_ids()))
