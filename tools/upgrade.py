"""The upgrade note and the regression gate: two reports (or two sets of them) compared for a user.

``rnnspec report diff OLD NEW`` (:func:`upgrade_note`) reads as a note for
someone moving a model from the Keras of OLD to the Keras of NEW:

- conventions that differ (``spec/data/conventions.toml`` resolved for each
  report's environment by :func:`rnnspec.spec.versions.conventions_for`, the
  resolver the adapter uses): a definition (``hard_sigmoid``), a default, an API;
- known divergences (``spec/data/divergences.toml``) that appear or disappear:
  the ones each report's claims were asserted against, and the ones whose
  ``when`` covers its environment;
- claims whose outcome changed (what ``python -m rnnspec.tools.report diff`` lists);
- where the compatibility matrix (``docs/compat/cells.json``) has both
  environments: whether files saved under OLD load under NEW, per format.

``rnnspec gate --baseline BASE CURRENT`` (:func:`gate`): a claim that fails the
gate (:data:`rnnspec.spec.outcomes.GATE_FAILING`) in CURRENT and did not in
BASE, or a divergence hit in CURRENT and not in BASE, fails it; so does, whatever
the baseline, a CURRENT column that is stale (its spec hash is not this rnnspec's,
:mod:`rnnspec.spec.columns`) or a claim that passed with nothing asserted (a hollow
pass). The fixed ones (failing or divergent in BASE, no longer in CURRENT) are
listed. Never-gating columns (nightly, the release sweep) are reported, never gated.
Reports are paired by environment name (``RNNSPEC_ENV``; tox sets it).

Standard library only (plus rnnspec.spec's data helpers), like tools/report.py.
"""

import json
import tomllib
from pathlib import Path

from rnnspec.spec import versions
from rnnspec.tools import findings
from rnnspec.spec.outcomes import GATE_FAILING, SPEC_ROOT
from rnnspec.spec import columns
from rnnspec.tools.report import (DIVERGENCES, _divergence_id, _md, cell, claims_of, column_status,
                                  hollow_passes, load_divergence_entries)

CONVENTIONS = DIVERGENCES.parent / "conventions.toml"
#: the committed compatibility matrix (a checkout only; a wheel has none)
COMPAT_CELLS = SPEC_ROOT / "docs" / "compat" / "cells.json"

#: what a difference in each convention means for a user's model (one line each)
CONVENTION_MEANINGS = {
    "hard_sigmoid": "`activation`/`recurrent_activation='hard_sigmoid'` computes another function: "
                    "keras2 is clip(0.2x + 0.5, 0, 1), keras3 is clip(x/6 + 0.5, 0, 1); a model "
                    "trained with it gives different outputs after the upgrade (retrain or check it).",
    "return_state_container": "`return_state=True` returns this container: code that indexes or "
                              "concatenates the result (e.g. `out + [h]`) may need a change.",
    "gru_reset_after_default": "GRU's default `reset_after`: weights saved with the other default "
                               "have another bias shape.",
    "accepts_implementation": "LSTM/GRU accept `implementation=`: when false, passing it raises "
                              "'Unrecognized keyword arguments'.",
    "device_name": "how `keras.device()` names a device (how rnnspec places layers; "
                   "your code passes device names the same way).",
    "weights_formats": "the files `save_weights`/`load_weights` handle: a format missing under NEW "
                       "cannot be written there.",
    "model_formats": "the files `save`/`load_model` (and `export`) handle: a format missing under "
                     "NEW cannot be written there.",
    "reset_method": "the documented method that resets a stateful layer (the other is an alias "
                    "or missing).",
    "dropout_masks": "how a cell draws its dropout masks in training: the same seed trains "
                     "differently (per-gate masks or one shared mask).",
    "dropout_seed_argument": "the layers take `seed=` for dropout: code passing it fails on a "
                             "version without it.",
    "dropout_masks_outside_loop": "dropout masks are drawn before the time loop (how rnnspec "
                                  "observes them; no effect on a model's values).",
    "fused_kernel_module": "where Keras keeps its fused LSTM/GRU kernels (internal; no effect "
                           "on a model).",
    "internal_package": "where Keras keeps its implementation (internal; matters only to code "
                        "importing keras.src).",
    "activity_regularizer_reduction": "an `activity_regularizer`'s penalty in `layer.losses`: "
                                      "batch_mean divides it by the batch size, sum does not; the "
                                      "regularization strength of a trained model changes with it.",
    "mixed_policy_argument": "how `dtype=` names a mixed precision policy: a Policy object "
                             "(Keras 2) or its name (Keras 3).",
    "unsupported_dtypes": "layer dtypes this backend does not compute on the CPU (JAX without "
                          "jax_enable_x64 computes float64 in float32).",
}

#: what a compatibility outcome means when a file written under OLD is read under NEW
COMPAT_MEANINGS = {
    "match": "loads and computes the same outputs",
    "differs": "loads but computes other outputs",
    "refused": "refused on purpose (the reader documents it does not read it)",
    "unsupported": "not written or not readable in this pair (a format one side lacks)",
    "crash": "loading crashes",
    "not-written": "the writer wrote nothing",
}


# --------------------------------------------------------------------------- facts per report

def env_label(env):
    keras = f"Keras {env.get('keras', '?')}"
    if env.get("keras_package") == "tf_keras":
        keras += " (tf-keras)"
    parts = [keras, f"backend {env.get('backend', '?')}"]
    if env.get("tensorflow"):
        parts.append(f"TensorFlow {env['tensorflow']}")
    return f"{env.get('env_name', '?')}: " + ", ".join(parts)


def conventions_of(env, path=CONVENTIONS):
    """The conventions that hold in the environment of a report."""
    return versions.conventions_for(env, tomllib.loads(Path(path).read_text()))


def divergences_hit(report):
    """``{divergence id: examples}`` asserted against each divergence model in a report."""
    out = {}
    for c in claims_of(report).values():
        for key, n in c["examples"]["models"].items():
            out[_divergence_id(key)] = out.get(_divergence_id(key), 0) + n
    return out


def divergences_applying(report, entries):
    """Ids of the listed divergences whose ``when`` covers the report's environment, or that it hit."""
    env = report["environment"]
    ids = {i for i, e in entries.items() if versions.applies(e.get("when"), env)}
    return ids | set(divergences_hit(report))


def failing_claims(report):
    return {k: c for k, c in claims_of(report).items() if c["outcome"] in GATE_FAILING}


def _first_sentence(text, width=220):
    text = " ".join(str(text or "").split())
    cut = text.find(". ")
    text = text if cut < 0 else text[:cut + 1]
    return text if len(text) <= width else text[:width - 1] + "…"


def load_compat_cells(path=COMPAT_CELLS):
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text()).get("cells") or {}
    except (ValueError, AttributeError) as exc:
        raise ValueError(f"{path}: not a compatibility matrix ({exc})") from None


# --------------------------------------------------------------------------- the upgrade note

def upgrade_note(old, new, divergences=None, conventions=CONVENTIONS, compat=None):
    """Markdown: what moving from the environment of report ``old`` to that of ``new`` means."""
    divergences = load_divergence_entries() if divergences is None else divergences
    ea, eb = old["environment"], new["environment"]
    out = [f"# Upgrade note: {ea.get('env_name')} → {eb.get('env_name')}", "",
           f"- from **{_md(env_label(ea))}** (`{old['_source']}`)",
           f"- to **{_md(env_label(eb))}** (`{new['_source']}`)", ""]

    # conventions
    ca, cb = conventions_of(ea, conventions), conventions_of(eb, conventions)
    order = list(CONVENTION_MEANINGS)
    changed = sorted((k for k in set(ca) | set(cb) if ca.get(k) != cb.get(k)),
                     key=lambda k: (order.index(k) if k in order else len(order), k))
    out += ["## Conventions that differ", "",
            "Definitions, defaults and APIs that legitimately differ between the two versions "
            "(`spec/data/conventions.toml`).", ""]
    if changed:
        for k in changed:
            out.append(f"- **`{k}`**: `{ca.get(k)}` → `{cb.get(k)}`. "
                       + CONVENTION_MEANINGS.get(k, "See spec/data/conventions.toml."))
    else:
        out.append("None: every convention is the same.")
    out.append("")

    # divergences
    da, db = divergences_applying(old, divergences), divergences_applying(new, divergences)
    out += ["## Known divergences and findings", "",
            "Where Keras disagrees with its documented formulas or documented refusals "
            "(`spec/data/`: divergences, crashes, saving); `rnnspec repro ID` prints the reproducer.", ""]
    rows = []
    for label, ids in (("appears", sorted(db - da)), ("disappears", sorted(da - db))):
        for i in ids:
            f = findings.lookup(i)
            reason = f["reason"] if f else "(not in this rnnspec's data)"
            kind = f["kind"] if f else "finding"
            what = ("a model using this feature may now hit it" if label == "appears"
                    else "gone in NEW: a workaround for it can go")
            rows.append(f"- **{label}** ({kind}) `{i}`: {what}. {_md(_first_sentence(reason))}")
    still = sorted(da & db)
    out += rows or ["None appears or disappears."]
    if still:
        out += ["", "Still present in both: " + ", ".join(f"`{i}`" for i in still) + "."]
    out.append("")

    # claims
    a, b = claims_of(old), claims_of(new)
    moved = [c for c in sorted(set(a) & set(b)) if a[c]["outcome"] != b[c]["outcome"]]
    out += ["## Claims whose status changed", ""]
    if moved:
        for c in moved:
            oa, ob = a[c]["outcome"], b[c]["outcome"]
            if ob in GATE_FAILING:
                meaning = "a new finding under NEW: check models that use this feature"
            elif oa in GATE_FAILING:
                meaning = "fixed under NEW"
            elif ob == "diverged":
                meaning = "NEW computes something else than the formulas here (a known divergence)"
            elif ob in ("skipped", "unsupported"):
                meaning = "not checked under NEW: " + _md(_first_sentence((b[c]["reasons"] or [""])[0], 140))
            elif oa in ("skipped", "unsupported"):
                meaning = "now checked under NEW"
            else:
                meaning = f"{oa} → {ob}"
            out.append(f"- `{c}`: {cell(a[c])} → {cell(b[c])}: {meaning}.")
    else:
        out.append("None.")
    added, removed = sorted(set(b) - set(a)), sorted(set(a) - set(b))
    if added or removed:
        out += ["", f"{len(added)} claim(s) only in NEW, {len(removed)} only in OLD "
                    "(another rnnspec version or a partial run)."]
    out.append("")

    # saved files
    out += ["## Files saved under OLD, loaded under NEW", ""]
    cells = load_compat_cells() if compat is None else compat
    na, nb = ea.get("env_name"), eb.get("env_name")
    pairs = {k: v for k, v in (cells or {}).items() if k.startswith(f"{na}|{nb}|")}
    if not cells:
        out.append("No compatibility matrix here (`docs/compat/cells.json`, a checkout's `tox -e compat`).")
    elif not pairs:
        out.append(f"The compatibility matrix has no cell for {na} → {nb}.")
    else:
        out += ["From the compatibility matrix (`docs/compat/matrix.md`): each format, the corpus "
                "models written by OLD and read by NEW.", ""]
        for key in sorted(pairs):
            fmt = key.split("|", 2)[2]
            by = {}
            for model, outcome in sorted(pairs[key].items()):
                by.setdefault(outcome, []).append(model)
            if set(by) == {"match"}:
                out.append(f"- `{fmt}`: every model {COMPAT_MEANINGS['match']}.")
            else:
                out.append(f"- `{fmt}`: " + "; ".join(
                    f"{', '.join(ms)}: {COMPAT_MEANINGS.get(o, o)}" for o, ms in sorted(by.items())) + ".")
    out.append("")
    return "\n".join(out).rstrip() + "\n"


# --------------------------------------------------------------------------- the gate

def pair_reports(baseline, current):
    """``[(base report or None, current report)]``, paired by environment name."""
    by_name = {}
    for r in baseline:
        name = r["environment"].get("env_name")
        if name in by_name:
            raise ValueError(f"two baseline reports for environment {name!r}: "
                             f"{by_name[name]['_source']} and {r['_source']}")
        by_name[name] = r
    seen, out = set(), []
    for r in current:
        name = r["environment"].get("env_name")
        if name in seen:
            raise ValueError(f"two current reports for environment {name!r}")
        seen.add(name)
        out.append((by_name.get(name), r))
    return out


def gate_one(base, current):
    """``{"new_failures", "new_divergences", "fixed_failures", "fixed_divergences"}`` for one environment.

    Without a baseline (a new environment), every gate-failing claim is new and
    every divergence is listed as new but does not fail (it is known and modelled).
    """
    fa = failing_claims(base) if base else {}
    fb = failing_claims(current)
    da = set(divergences_hit(base)) if base else set()
    db = set(divergences_hit(current))
    cb = claims_of(current)
    ca = claims_of(base) if base else {}
    return {
        "new_failures": [(k, c) for k, c in sorted(fb.items()) if k not in fa],
        "new_divergences": sorted(db - da),
        "fixed_failures": [(k, ca[k], cb.get(k)) for k in sorted(fa) if k not in fb],
        "fixed_divergences": sorted(da - db),
    }


def gate(baseline, current, divergences=None, annotate=False):
    """``(text, exit status)``: 1 on a new failure, a new divergence, a stale column or a hollow
    pass, else 0."""
    divergences = load_divergence_entries() if divergences is None else divergences
    lines, n_fail, n_div, n_fixed, n_stale, n_hollow = [], 0, 0, 0, 0, 0
    lines.append(f"rnnspec gate: {len(current)} report(s) against {len(baseline)} baseline report(s)")
    status = dict(zip((id(r) for r in current), column_status(current)))
    for base, cur in pair_reports(baseline, current):
        env = cur["environment"]
        klass, spec_hash, stat = status[id(cur)]
        res = gate_one(base, cur)
        new_div = res["new_divergences"] if base else []
        # whatever the baseline: a never-gating column reports only; a stale supported one,
        # or a claim that passed with nothing asserted, is a defect of this run
        stale = stat in ("stale", "unknown")
        hollows = hollow_passes(cur)
        if klass == columns.NEVER_GATING:
            bad, stale, hollows = 0, False, []
        else:
            bad = len(res["new_failures"]) + len(new_div) + int(stale) + len(hollows)
            n_fail += len(res["new_failures"])
            n_div += len(new_div)
            n_stale += int(stale)
            n_hollow += len(hollows)
        n_fixed += len(res["fixed_failures"]) + len(res["fixed_divergences"])
        verdict = "FAIL" if bad else "ok  "
        lines.append("")
        lines.append(f"[{verdict}] {env_label(env)}"
                     + ("" if base else "  (no baseline for this environment: a new one)")
                     + ("  (never gating: reported only)" if klass == columns.NEVER_GATING else ""))
        if stale:
            lines.append(f"  STALE          spec hash {spec_hash or '(none recorded)'}, this rnnspec's is "
                         f"{columns.spec_hash()}: the column was not rerun since the spec changed; rerun it")
        for k in hollows:
            lines.append(f"  HOLLOW PASS    {k}: passed with none of its drawn examples asserted")
        if base:
            lines.append(f"       baseline {base['_source']}, current {cur['_source']}")
            va, vb = base["environment"].get("rnnspec"), env.get("rnnspec")
            if va != vb:
                lines.append(f"       note: written by rnnspec {va or '(unknown)'} and {vb or '(unknown)'}: "
                             "claims may differ because the spec itself changed")
        for k, c in res["new_failures"]:
            reason = (c["reasons"] or ["(no message recorded)"])[0]
            lines.append(f"  NEW {c['outcome'].upper():<14} {k}")
            lines.append(f"      {reason[:300]}")
            lines.append(f"      reproducer: rnnspec repro '{k}' --report {cur['_source']}")
            if annotate:
                lines.append(f"::error title=rnnspec {env.get('env_name')}: new {c['outcome']}::{k}: {reason[:200]}")
        for i in res["new_divergences"]:
            f = findings.lookup(i)
            reason = _first_sentence(f["reason"] if f else "", 200)
            tag = "NEW DIVERGENCE" if base else "divergence    "
            lines.append(f"  {tag} {i}: {reason}")
            if base:
                lines.append(f"      reproducer: rnnspec repro {i}")
            if annotate and base:
                lines.append(f"::error title=rnnspec {env.get('env_name')}: new divergence::{i}: {reason}")
        for k, old, now in res["fixed_failures"]:
            lines.append(f"  FIXED          {k}: {old['outcome']} → {now['outcome'] if now else 'not run'}")
        for i in res["fixed_divergences"]:
            lines.append(f"  FIXED          divergence {i}: no example hit it any more")
        if not (res["new_failures"] or res["new_divergences"] or res["fixed_failures"]
                or res["fixed_divergences"]):
            lines.append("  no change against the baseline")
    missing = sorted({r["environment"].get("env_name") for r in baseline}
                     - {r["environment"].get("env_name") for r in current})
    if missing:
        lines += ["", "Baseline environments without a current report (not gated): " + ", ".join(missing)]
    lines.append("")
    failed = n_fail + n_div + n_stale + n_hollow
    verdict = "FAILED" if failed else "PASSED"
    lines.append(f"rnnspec gate {verdict}: {n_fail} new failure(s), {n_div} new divergence(s), "
                 f"{n_stale} stale column(s), {n_hollow} hollow pass(es), {n_fixed} fixed.")
    if failed:
        lines.append("If the change is accepted, refresh the baseline (docs/ci/README.md); "
                     "otherwise fix the model or pin the old version.")
    return "\n".join(lines) + "\n", 1 if failed else 0
