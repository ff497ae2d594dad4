"""Merge and compare the conformance reports written by ``spec/report.py``.

Every pytest run of the spec writes one JSON report (``--report-json``, schema
:data:`SCHEMA`): the environment (Python, TensorFlow, Keras, backend,
devices, ...) and, per claim, its outcome (``spec/outcomes.py``) and its
examples -- drawn, asserted against the formulas, asserted against each
divergence model, refused, unasserted -- and the graph-shape pool entries it
ran.  This tool reads them back (a report of another schema is refused with
a message saying so); it needs only the standard library.

    python -m rnnspec.tools.report merge reports/*.json -o docs/conformance/matrix.md
    python -m rnnspec.tools.report diff OLD.json NEW.json

merge
    A Markdown matrix: one row per claim, one column per environment.  Cells
    give the outcome and the examples: ``pass · 236 f`` (236 asserted against
    the formulas), ``diverged · 220 f + 16 m`` (16 more against divergence
    models), ``refused · 40``, **FAILED** / **CRASHED** / **FIXED** /
    **HARNESS ERROR**, ``skip: reason``, ``unsupported: reason``, ``—`` (not
    run there).  Below it: the examples and pool coverage per environment, the
    failures with their first line, the environments in full, and the known
    divergences with their example counts per environment.  Paths may be
    files, directories (all ``*.json`` in them) or glob patterns, which the
    tool expands itself (tox runs no shell).

diff
    What changed between two reports: claims whose outcome changed, claims
    added or removed, and differing environment fields.  The exit status is
    1 when a claim that passed in OLD fails the gate or diverges in NEW, so
    it can gate an upgrade; otherwise 0.
"""

import argparse
import fnmatch
import glob
import json
import re
import sys
import tomllib
from collections import Counter
from pathlib import Path

from rnnspec.spec import columns as _columns
from rnnspec.spec.versions import applies as _applies_to
from rnnspec.spec.outcomes import GATE_FAILING, hollow
from rnnspec import spec as _spec_package

#: the spec's data, wherever rnnspec.spec is installed from (spec/data in a checkout)
DIVERGENCES = Path(_spec_package.__file__).resolve().parent / "data" / "divergences.toml"
#: the report schema this tool reads (spec/report.py writes it)
SCHEMA = 2

#: outcomes that count as a regression when a passing claim moves to them
BROKEN = set(GATE_FAILING) | {"diverged"}


# --------------------------------------------------------------------------- loading

def expand_paths(args, exclude=()):
    """Files, directories (their ``*.json``) and glob patterns -> list of Paths.

    ``exclude``: file-name patterns to leave out of what a directory or glob
    matched (e.g. ``latest.json``, a local run); a file named explicitly is kept.
    """
    out = []
    for arg in args:
        p = Path(arg)
        if p.is_dir():
            found = sorted(p.glob("*.json"))
        elif glob.has_magic(arg):
            found = sorted(Path(m) for m in glob.glob(arg))
        else:
            found = None
        if found is not None:
            found = [f for f in found if not any(fnmatch.fnmatch(f.name, x) for x in exclude)]
        else:
            if not p.exists():
                raise FileNotFoundError(f"no such report: {arg}")
            found = [p]
        for f in found:
            if f not in out:
                out.append(f)
    return out


def load_report(path):
    """One report as a dict, with ``_source`` (its path) added."""
    try:
        with open(path, "rb") as fh:
            data = json.loads(fh.read().decode("utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"no such report: {path}") from None
    except IsADirectoryError:
        raise IsADirectoryError(f"{path}: a directory, not a report file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a JSON conformance report (corrupt or truncated: {exc})") from None
    return normalise(data, source=str(path))


def load_reports(args, exclude=()):
    """Every report that ``args`` (files, directories, glob patterns) names, loaded and checked:
    the one loader of the command line (``rnnspec report``, ``rnnspec gate``) and of this tool.
    Raises FileNotFoundError when nothing matches, ValueError on a corrupt report or another schema."""
    paths = expand_paths(args, exclude)
    if not paths:
        raise FileNotFoundError(f"no reports match {' '.join(map(str, args))}")
    return [load_report(p) for p in paths]


def normalise(data, source="<dict>"):
    """Check the schema and fill in what a partial report lacks, so the rest can rely on it."""
    if not isinstance(data, dict) or ("claims" not in data and "results" not in data):
        raise ValueError(f"{source}: not a conformance report (no 'claims')")
    schema = data.get("schema")
    if schema != SCHEMA:
        written = f"schema {schema}" if schema is not None else "no schema version (an rnnspec report from before schema 2)"
        raise ValueError(f"{source}: report has {written}; this rnnspec reads schema {SCHEMA}. "
                         f"Rerun the spec with this rnnspec to write a report it can read.")
    data = dict(data)
    env = dict(data.get("environment") or {})
    env.setdefault("env_name", Path(source).stem if source != "<dict>" else "local")
    data["environment"] = env
    data.setdefault("profile", "?")
    data.setdefault("wall_time_s", None)
    data.setdefault("unmatched_divergence_entries", [])
    data.setdefault("pools", {})
    data["_source"] = source
    return data


def load_divergence_entries(path=DIVERGENCES):
    path = Path(path)
    if not path.exists():
        return {}
    return {d["id"]: d for d in tomllib.loads(path.read_text()).get("divergence", [])}


# --------------------------------------------------------------------------- claims

_EXAMPLE_KEYS = ("drawn", "formulas", "refused", "unsupported", "harness_gap", "unasserted")


def claims_of(report):
    """``{claim key: summary}``: the report's claims with every field filled in.

    A summary has ``title``, ``outcome``, ``reasons``, ``nodes``,
    ``examples`` (drawn, formulas, models {divergence id: n}, refused,
    unsupported, unasserted), ``observed`` and, for a pooled claim, ``pool``.
    """
    out = {}
    for key, c in sorted(report["claims"].items()):
        ex = dict(c.get("examples") or {})
        for k in _EXAMPLE_KEYS:
            ex[k] = int(ex.get(k) or 0)
        ex["models"] = dict(ex.get("models") or {})
        out[key] = {"title": c.get("title") or key.split("::")[-1],
                    "outcome": c.get("outcome") or "failed", "reasons": list(c.get("reasons") or []),
                    "nodes": int(c.get("nodes") or 1), "examples": ex, "variants": dict(c.get("variants") or {}),
                    "observed": dict(c.get("observed") or {}), "pool": c.get("pool")}
    return out


def _md(text):
    """Text safe inside a Markdown table cell."""
    return re.sub(r"\s+", " ", str(text)).replace("|", r"\|").strip()


def _short_skip(reason, width=60):
    reason = re.sub(r"^Skipped:\s*", "", reason or "").strip()
    return reason if len(reason) <= width else reason[:width - 1] + "…"


def _divergence_id(key):
    return key.removesuffix(" (raises)")


def asserted(summary):
    """Examples of a claim asserted against the formulas, a divergence model or a refusal rule."""
    ex = summary["examples"]
    return ex["formulas"] + ex["refused"] + sum(ex["models"].values())


def is_hollow(summary):
    """A claim that says ``passed`` with nothing asserted (:func:`rnnspec.spec.outcomes.hollow`)."""
    return hollow(summary["outcome"], summary["examples"])


def cell(summary):
    """The matrix cell for one claim in one environment (``None`` -> not run)."""
    if summary is None:
        return "—"
    outcome, ex = summary["outcome"], summary["examples"]
    if outcome in ("skipped", "unsupported", "harness-gap"):
        label = {"skipped": "skip", "unsupported": "unsupported", "harness-gap": "**harness gap**"}[outcome]
        text = f"{label}: " + _md(_short_skip(summary["reasons"][0] if summary["reasons"] else ""))
        return text + (f" · 0/{ex['drawn']} asserted" if ex["drawn"] else "")
    modelled = sum(ex["models"].values())
    counts = []
    if ex["formulas"]:
        counts.append(f"{ex['formulas']} f")
    if modelled:
        counts.append(f"{modelled} m")
    if ex["refused"]:
        counts.append(f"{ex['refused']} r")
    text = {"passed": "pass", "diverged": "diverged", "refused": "refused"}.get(
        outcome, f"**{outcome.upper().replace('-', ' ')}**")
    if counts:
        text += " · " + " + ".join(counts)
    if ex["drawn"]:
        text += f" · {asserted(summary)}/{ex['drawn']} asserted"
    if is_hollow(summary):
        text += " · **HOLLOW PASS**"
    if ex["unasserted"]:
        text += f" · **{ex['unasserted']} unasserted**"
    pool = summary.get("pool")
    if pool and pool.get("entries"):
        text += f" · pool {len(pool['run'])}/{pool['entries']}"
    return text


# --------------------------------------------------------------------------- environments

def _vtuple(v):
    return tuple(int(p) for p in re.findall(r"\d+", str(v or ""))[:3])


def env_sort_key(report):
    env = report["environment"]
    backend = env.get("backend") or "tensorflow"
    return (_vtuple(env.get("keras"))[:1], env.get("keras_package") == "tf_keras",
            backend != "tensorflow", backend, _vtuple(env.get("tensorflow")),
            _vtuple(env.get("keras")), env.get("env_name", ""))


def versions(env):
    """``TF 2.16.2 · Keras 3.3.3`` (``tf_keras 2.21.0`` for the legacy package; ``jax 0.5.3 · Keras 3.9.2``)."""
    parts = []
    if env.get("tensorflow"):
        parts.append(f"TF {env['tensorflow']}")
    for lib in ("jax", "torch"):   # recorded by rnnspec.spec.report.environment() since issue #15
        if env.get(lib):
            parts.append(f"{lib} {env[lib]}")
    pkg = "tf_keras" if env.get("keras_package") == "tf_keras" else "Keras"
    parts.append(f"{pkg} {env.get('keras', '?')}")
    return " · ".join(parts)


def devices(env):
    d = env.get("devices") or []
    return ",".join(d) if isinstance(d, list) else str(d)


def column_header(env):
    return (f"{_md(env['env_name'])}<br>{_md(versions(env))}<br>"
            f"{_md(env.get('backend', '?'))} · {_md(devices(env))}")


def _unique_names(reports):
    """Two reports with the same env_name get their file stem appended."""
    names = Counter(r["environment"]["env_name"] for r in reports)
    for r in reports:
        env = r["environment"]
        if names[env["env_name"]] > 1:
            env["env_name"] = f"{env['env_name']} ({Path(r['_source']).stem})"


def divergence_applies(entry, env):
    """The same test as spec/report.py, on the recorded environment."""
    return _applies_to(entry.get("when"), env)


# --------------------------------------------------------------------------- merge

def column_status(reports, reference_hash=None):
    """Per report (in order): ``(class, spec hash or None, status)``; status is ``current``,
    ``stale`` (a supported column whose hash differs from ``reference_hash``, default this
    rnnspec's :func:`~rnnspec.spec.columns.spec_hash`), ``unknown`` (no hash recorded: stale
    too), or for device and never-gating columns ``matches`` / ``differs``."""
    reference_hash = reference_hash or _columns.spec_hash()
    out = []
    for r in reports:
        env = r["environment"]
        klass = _columns.column_class(env.get("env_name"))
        h = env.get("spec_hash")
        if klass == _columns.SUPPORTED:
            status = "unknown" if not h else "current" if h == reference_hash else "stale"
        else:
            status = "matches" if h == reference_hash else "differs"
        out.append((klass, h, status))
    return out


def stale_columns(reports, reference_hash=None):
    """The env names of the supported columns among ``reports`` that are stale (or carry no hash)."""
    return [r["environment"].get("env_name") for r, (_, _, status) in
            zip(reports, column_status(reports, reference_hash)) if status in ("stale", "unknown")]


def hollow_passes(report):
    """The claims of ``report`` that say ``passed`` with nothing asserted."""
    return [k for k, s in claims_of(report).items() if is_hollow(s)]


def merge(reports, divergences=None, claim_prefixes=(), reference_hash=None, expect_supported=False):
    """The Markdown matrix for ``reports`` (normalised dicts); ``expect_supported``: list the
    supported columns (rnnspec.spec.columns) that have no report among them (the project's matrix)."""
    divergences = load_divergence_entries() if divergences is None else divergences
    reference_hash = reference_hash or _columns.spec_hash()
    reports = sorted(reports, key=lambda r: (_columns.CLASSES.index(
        _columns.column_class(r["environment"].get("env_name"))), env_sort_key(r)))
    _unique_names(reports)
    status = column_status(reports, reference_hash)
    envs = [r["environment"] for r in reports]
    per_env = [claims_of(r) for r in reports]
    claims = sorted({c for cs in per_env for c in cs
                     if not claim_prefixes or c.startswith(tuple(claim_prefixes))},
                    key=lambda c: (not c.startswith("spec/"), c))
    titles = {}
    for cs in per_env:
        for c, s in cs.items():
            titles.setdefault(c, s["title"])

    out = ["# Conformance matrix: Keras recurrent layers", ""]
    out.append(f"Generated by `python -m rnnspec.tools.report merge` from {len(reports)} report(s); "
               "do not edit by hand, rerun the matrix (`tox -p auto`) and `tox -e report`.")
    out.append("")
    out.append("Every drawn example ends in one outcome (`spec/outcomes.py`). Cells: the claim's outcome "
               "(the worst of its examples), then its examples: `f` asserted against the documented "
               "formulas, `m` asserted against the model of a listed known divergence (where the model "
               "differs from the formulas; everything else in those examples is held to the formulas), "
               "`r` refused as documented; `pool k/n` graph-shape pool entries run; "
               "**FAILED** / **CRASHED** / **FIXED** / **HARNESS ERROR** fail the gate; "
               "`skip: reason` a claim that cannot fail there; `unsupported: reason` a feature the "
               "version lacks; **harness gap** a feature that exists but rnnspec cannot observe there; "
               "`k/n asserted` of the examples drawn; **HOLLOW PASS** a claim that says passed with "
               "nothing asserted (fails the gate); `—` not run in that environment.")
    out.append("")
    out.append(f"Columns (README \"Columns\"): **supported** columns gate and must all carry the spec hash "
               f"of this rnnspec, `{reference_hash}` (a digest of `spec/` and `reference/`); one that "
               f"carries another is **STALE** and fails the gate. **Device** (GPU) columns and "
               f"**never-gating** ones (nightly, the release sweep) are listed apart with their hash.")
    out.append("")

    # summary
    out += ["## Summary", "",
            "| Environment | Class | Spec hash | Versions | Backend | Devices | Profile | Claims | pass | diverged | refused | gate-failing | skip/unsupported | harness gap | Examples drawn | vs formulas | vs models | refused | unasserted | Pool entries run | Wall time |",
            "|---|---|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r, env, cs, (klass, h, stat) in zip(reports, envs, per_env, status):
        st = Counter(s["outcome"] for s in cs.values())
        fails = sum(st[o] for o in GATE_FAILING) + sum(is_hollow(x) for x in cs.values())
        hash_cell = f"`{h or 'none'}`" + (" **STALE**" if stat in ("stale", "unknown") else "")
        ex = _sum_examples(cs.values())
        wall = r.get("wall_time_s")
        run, total = _pool_totals(cs.values())
        out.append(
            f"| {_md(env['env_name'])} | {klass} | {hash_cell} | {_md(versions(env))} | {_md(env.get('backend', '?'))} "
            f"| {_md(devices(env))} | {_md(r.get('profile', '?'))} | {len(cs)} | {st['passed']} "
            f"| {st['diverged']} | {st['refused']} | {'**' + str(fails) + '**' if fails else 0} "
            f"| {st['skipped'] + st['unsupported']} | {st['harness-gap']} | {ex['drawn']} | {ex['formulas']} "
            f"| {sum(ex['models'].values())} | {ex['refused']} "
            f"| {'**' + str(ex['unasserted']) + '**' if ex['unasserted'] else 0} "
            f"| {f'{run}/{total}' if total else '—'} "
            f"| {'—' if wall is None else f'{wall:.0f} s'} |")
    out.append("")
    # the columns by class (README "Columns"), each with its spec hash
    out += ["## Columns by class", ""]
    for klass, what in ((_columns.SUPPORTED, "gate; all at one spec hash"),
                        (_columns.DEVICE, "GPU columns, run when a device is lent; their hash shown, never stale"),
                        (_columns.NEVER_GATING, "report only")):
        rows = [(e, h, stat) for e, (k, h, stat) in zip(envs, status) if k == klass]
        if not rows:
            continue
        out.append(f"- **{klass}** ({what}): " + ", ".join(
            f"{_md(e['env_name'])} `{h or 'none'}`"
            + (" **STALE**" if stat in ("stale", "unknown") else " (another spec)" if stat == "differs" else "")
            for e, h, stat in rows))
    out.append("")
    present = {e.get("env_name") for e in envs}
    missing = [n for n in _columns.supported_columns() if n not in present]
    if expect_supported:
        out += [f"**Supported columns without a report here: {', '.join(missing)}.**" if missing
                else f"Every supported column is here ({len(_columns.supported_columns())}).", ""]

    # the matrix
    out += ["## Matrix", ""]
    out.append("| Claim | " + " | ".join(column_header(e) for e in envs) + " |")
    out.append("|---|" + "---|" * len(envs))
    group = None
    for c in claims:
        file = c.split("::")[0]
        if file != group:
            group = file
            out.append(f"| **{_md(file)}** |" + " |" * len(envs))
        out.append(f"| {_md(titles[c])}<br>`{_md(c)}` | "
                   + " | ".join(cell(cs.get(c)) for cs in per_env) + " |")
    out.append("")

    out += _pool_section(reports, envs)
    out += _argument_section(reports, envs)

    # failures, verbatim first lines
    failing = [(env, c, cs[c]) for env, cs in zip(envs, per_env) for c in claims
               if c in cs and cs[c]["outcome"] in GATE_FAILING]
    hollows = [(env, c) for env, cs in zip(envs, per_env) for c in claims if c in cs and is_hollow(cs[c])]
    stale_cols = [(env, h, stat) for env, (klass, h, stat) in zip(envs, status) if stat in ("stale", "unknown")]
    out += ["## Gate failures", ""]
    if not (failing or hollows or stale_cols):
        out += ["None.", ""]
    for env, h, stat in stale_cols:
        out.append(f"- **{_md(env['env_name'])}** is STALE: spec hash `{h or 'none recorded'}`, "
                   f"not `{reference_hash}`: rerun it")
    for env, c in hollows:
        out.append(f"- **{_md(env['env_name'])}** `{c}`: HOLLOW PASS (passed with nothing asserted)")
    for env, c, s in failing:
        reason = s["reasons"][0] if s["reasons"] else "(no message recorded)"
        out.append(f"- **{_md(env['env_name'])}** `{c}` ({s['outcome']}): `{_md(reason)}`")
    if failing or hollows or stale_cols:
        out.append("")

    # harness gaps: features that exist where rnnspec cannot observe them
    gaps = {}
    for env, cs in zip(envs, per_env):
        for c, s in cs.items():
            if s["outcome"] == "harness-gap":
                for reason in s["reasons"] or [""]:
                    gaps.setdefault(reason, []).append((env["env_name"], c))
    out += ["## Harness gaps", "",
            "Claims whose feature exists in that Keras but whose examples rnnspec could not observe "
            "(a limit of the suite, not of Keras; each with its reason). They do not fail the gate "
            "and assert nothing: they are blind spots, listed so that they are closed.", ""]
    if not gaps:
        out += ["None.", ""]
    for reason, where in sorted(gaps.items()):
        envs_here = sorted({e for e, _ in where})
        ids = sorted({n.split("::", 1)[-1] for _, n in where})
        out.append(f"- {_md(reason)} — {len(where)} claim(s) in {', '.join(map(_md, envs_here))}: "
                   + ", ".join(f"`{_md(i)}`" for i in ids))
    if gaps:
        out.append("")

    # skipped and unsupported claims, with their reasons (e.g. the GPU cases on a CPU machine)
    skipped = {}
    for env, cs in zip(envs, per_env):
        for c, s in cs.items():
            if s["outcome"] in ("skipped", "unsupported"):
                for reason in s["reasons"] or [""]:
                    skipped.setdefault(reason, []).append((env["env_name"], c))
    out += ["## Skipped and unsupported", ""]
    if not skipped:
        out += ["None.", ""]
    for reason, where in sorted(skipped.items()):
        envs_here = sorted({e for e, _ in where})
        ids = sorted({n.split("::", 1)[-1] for _, n in where})
        out.append(f"- {_md(reason)} — {len(where)} claim(s) in {', '.join(map(_md, envs_here))}: "
                   + ", ".join(f"`{_md(i)}`" for i in ids))
    if skipped:
        out.append("")

    # environments in full
    out += ["## Environments", "",
            "| Environment | Class | Spec hash | Python | TensorFlow | Keras | Keras package | Backend | Devices | TF32 | Commit | Profile | Wall time | Platform | Report |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r, env, (klass, h, stat) in zip(reports, envs, status):
        wall = r.get("wall_time_s")
        out.append("| " + " | ".join(_md(x) for x in (
            env["env_name"], klass, f"{h or 'none'} ({stat})", env.get("python", "?"), env.get("tensorflow") or "—",
            env.get("keras", "?"), env.get("keras_package", "?"), env.get("backend", "?"),
            devices(env), env.get("tf32", "?"), env.get("commit", "?"), r.get("profile", "?"),
            "—" if wall is None else f"{wall:.1f} s", env.get("platform", "?"),
            Path(r["_source"]).name)) + " |")
    out.append("")
    stale = [(env["env_name"], r["unmatched_divergence_entries"])
             for r, env in zip(reports, envs) if r["unmatched_divergence_entries"]]
    if stale:
        out.append("Known-divergence entries that apply but matched no collected claim "
                   "(normal for a partial run): "
                   + "; ".join(f"{_md(n)}: {', '.join(ids)}" for n, ids in stale) + ".")
        out.append("")

    out += _divergence_section(reports, envs, per_env, divergences)
    out += _observation_section(envs, per_env, claims)
    return "\n".join(out).rstrip() + "\n"


def _sum_examples(summaries):
    total = {k: 0 for k in _EXAMPLE_KEYS}
    total["models"] = Counter()
    for s in summaries:
        for k in _EXAMPLE_KEYS:
            total[k] += s["examples"][k]
        total["models"].update(s["examples"]["models"])
    return total


def _pool_totals(summaries):
    run = total = 0
    for s in summaries:
        pool = s.get("pool")
        if pool and pool.get("entries") and s["outcome"] not in ("skipped", "unsupported"):
            run += len(pool["run"])
            total += pool["entries"]
    return run, total


def _pool_section(reports, envs):
    rows = []
    for r, env in zip(reports, envs):
        for key, p in sorted((r.get("pools") or {}).items()):
            pairs, triples = p["pairs"], p["triples"]
            rows.append(f"| {_md(env['env_name'])} | `{_md(key.split('::')[-1])}` | {_md(p['pool'])} "
                        f"| {p['run']}/{p['entries']} | {pairs[0]}/{pairs[1]} | {triples[0]}/{triples[1]} |")
    if not rows:
        return []
    return ["## Graph-shape pool coverage", "",
            "Entries of each pool (`spec/pool.py`) that ran at least one asserted example, and the "
            "pairs of values of any two dimensions / triples of the loop-steering dimensions that "
            "those entries executed, out of those the whole pool covers.", "",
            "| Environment | Claim | Pool | Entries run | Pairs | Triples |",
            "|---|---|---|---:|---:|---:|"] + rows + [""]


def _argument_section(reports, envs):
    """Argument coverage per environment (spec/arguments.py; reports without it show "—")."""
    rows = []
    for r, env in zip(reports, envs):
        cov = r.get("arguments") or {}
        if not cov:
            rows.append(f"| {_md(env['env_name'])} | — | — | — | not computed (spec/test_contract.py did not run) |")
            continue
        missing = [f"{x['class']}.{x['argument']}" for x in cov["rows"] if x["status"] in ("unexercised", "unmapped")]
        not_run = [f"{x['class']}.{x['argument']}" for x in cov["rows"] if x["status"] == "not-run"]
        note = ("**" + ", ".join(missing) + "**") if missing else ""
        if not_run:
            note += (" · " if note else "") + f"not run: {', '.join(not_run)}"
        rows.append(f"| {_md(env['env_name'])} | {cov['mapped']}/{cov['documented']} | {cov['exercised']}/{cov['in_scope']} "
                    f"| {cov['documented'] - cov['in_scope']} | {_md(note) if note else '—'} |")
    if not any(r.get("arguments") for r in reports):
        return []
    return ["## Argument coverage", "",
            "Per environment: documented arguments (docstring, signature or config of the installed Keras) "
            "that `spec/data/arguments.toml` maps to claims or to an out-of-scope reason; arguments in scope "
            "that the claims mapped to them passed with at least two different values in the run; "
            "out-of-scope ones; unmapped or unexercised ones (bold, gate-failing).", "",
            "| Environment | Mapped / documented | Exercised / in scope | Out of scope | Missing |",
            "|---|---:|---:|---:|---|"] + rows + [""]


def _divergence_section(reports, envs, per_env, divergences):
    # id -> env index -> {claim: examples asserted against its model}
    hits = {}
    for i, cs in enumerate(per_env):
        for c, s in cs.items():
            for key, n in s["examples"]["models"].items():
                div_id = _divergence_id(key)
                per = hits.setdefault(div_id, {}).setdefault(i, {})
                per[c] = per.get(c, 0) + n
    ids = list(divergences) + sorted(set(hits) - set(divergences))
    out = ["## Known divergences", ""]
    if not ids:
        return out + ["None listed in `spec/data/divergences.toml` and none hit.", ""]
    out.append("Examples asserted against the model of each entry of `spec/data/divergences.toml` "
               "(a value model, or for a raising divergence its exception class and message); "
               "`n/a`: the entry does not apply to that environment; `0`: it applies and no "
               "drawn example fell inside it where the model differs from the formulas.")
    out.append("")
    out.append("| Divergence | " + " | ".join(_md(e["env_name"]) for e in envs) + " |")
    out.append("|---|" + "---:|" * len(envs))
    for div_id in ids:
        entry = divergences.get(div_id)
        cells = []
        for i, env in enumerate(envs):
            h = hits.get(div_id, {}).get(i)
            if h:
                cells.append(f"{sum(h.values())} ex")
            elif entry is not None and not divergence_applies(entry, env):
                cells.append("n/a")
            else:
                cells.append("0")
        out.append(f"| `{_md(div_id)}` | " + " | ".join(cells) + " |")
    out.append("")
    for div_id in ids:
        entry = divergences.get(div_id)
        out.append(f"### `{div_id}`")
        out.append("")
        if entry is None:
            out += ["Not in `spec/data/divergences.toml` (an entry from another revision).", ""]
        else:
            out.append(_md(entry.get("reason", "")))
            out.append("")
            when = entry.get("when") or {}
            out.append(f"- applies to: {', '.join(f'{k} {v}' for k, v in when.items()) or 'all environments'}")
            out.append(f"- claims: {', '.join(f'`{c}`' for c in entry.get('claims', []))}")
            if entry.get("predicate"):
                out.append(f"- recognised by `spec/divergences.py::{entry['predicate']}`")
            if entry.get("model"):
                out.append(f"- model: `spec/divergence_models.py::{entry['model']}`")
            if entry.get("raises"):
                out.append(f"- model: raises {', '.join(entry['raises'].get('exception', []))} "
                           f"matching `{_md(entry['raises'].get('message', ''))}`")
            if entry.get("upstream"):
                out.append(f"- upstream: {entry['upstream']}")
        for i, env in enumerate(envs):
            h = hits.get(div_id, {}).get(i)
            if not h:
                continue
            parts = [f"`{c}` {n}" for c, n in sorted(h.items())]
            out.append(f"- {_md(env['env_name'])}: " + ", ".join(parts))
        out.append("")
    return out


def _observation_section(envs, per_env, claims):
    rows = []
    for c in claims:
        keys = sorted({k for cs in per_env if c in cs for k in cs[c]["observed"]})
        for k in keys:
            vals = [(env["env_name"], cs[c]["observed"][k]) for env, cs in zip(envs, per_env)
                    if c in cs and k in cs[c]["observed"]]
            rows.append(f"- `{c}` {_md(k)}: "
                        + "; ".join(f"{_md(n)}: {_md(', '.join(map(str, v)))}" for n, v in vals))
    if not rows:
        return []
    return ["## Observed behaviour", "",
            "What Keras did where a claim records it (e.g. which exception it raised).", ""] + rows + [""]


# --------------------------------------------------------------------------- diff

def diff(old, new):
    """``(markdown, regressions)``: what changed from report ``old`` to ``new``.

    ``regressions`` lists the claims that passed in ``old`` and failed,
    diverged or went stale in ``new``.
    """
    a, b = claims_of(old), claims_of(new)
    ea, eb = old["environment"], new["environment"]
    out = [f"# Conformance diff: {ea['env_name']} → {eb['env_name']}", "",
           f"Old: `{old['_source']}`; new: `{new['_source']}`.", ""]

    fields = sorted(set(ea) | set(eb))
    env_rows = [(k, ea.get(k), eb.get(k)) for k in fields if ea.get(k) != eb.get(k)]
    for k in ("profile",):
        if old.get(k) != new.get(k):
            env_rows.append((k, old.get(k), new.get(k)))
    out += ["## Environment", ""]
    if env_rows:
        out += ["| Field | Old | New |", "|---|---|---|"]
        out += [f"| {k} | {_md(va)} | {_md(vb)} |" for k, va, vb in env_rows]
    else:
        out.append("Identical.")
    out.append("")

    regressions, changed = [], []
    for c in sorted(set(a) & set(b)):
        if a[c]["outcome"] != b[c]["outcome"]:
            bad = a[c]["outcome"] == "passed" and b[c]["outcome"] in BROKEN
            changed.append((c, bad))
            if bad:
                regressions.append(c)
    out += ["## Outcome changes", ""]
    if changed:
        out += ["| Claim | Old | New | |", "|---|---|---|---|"]
        for c, bad in changed:
            out.append(f"| `{c}` | {cell(a[c])} | {cell(b[c])} | {'**regression**' if bad else ''} |")
        out.append("")
        notes = [f"- `{c}` (new): `{_md(b[c]['reasons'][0])}`" for c, _ in changed
                 if b[c]["outcome"] != "passed" and b[c]["reasons"]]
        out += notes + ([""] if notes else [])
        out.pop()  # the blank line the section ends with follows
    else:
        out.append("None.")
    out.append("")

    for heading, only, side in (("Added claims (only in new)", sorted(set(b) - set(a)), b),
                                ("Removed claims (only in old)", sorted(set(a) - set(b)), a)):
        out += [f"## {heading}", ""]
        out += [f"- `{c}`: {cell(side[c])}" for c in only] or ["None."]
        out.append("")

    known = [(c, a[c]["examples"]["models"], b[c]["examples"]["models"]) for c in sorted(set(a) & set(b))
             if set(a[c]["examples"]["models"]) != set(b[c]["examples"]["models"])]
    if known:
        out += ["## Known divergences asserted (examples per entry)", ""]
        out += [f"- `{c}`: {ka or '{}'} → {kb or '{}'}" for c, ka, kb in known]
        out.append("")

    out.append(f"**{len(regressions)} regression(s)**" + (": " + ", ".join(f"`{c}`" for c in regressions)
                                                         if regressions else "."))
    return "\n".join(out) + "\n", regressions


# --------------------------------------------------------------------------- CLI

def _write(text, path):
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)
        print(f"wrote {path}", file=sys.stderr)
    else:
        sys.stdout.write(text)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m rnnspec.tools.report", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("merge", help="Markdown matrix of several reports")
    m.add_argument("reports", nargs="+", help="report files, directories or glob patterns")
    m.add_argument("-o", "--output", help="write here instead of stdout")
    m.add_argument("--divergences", default=str(DIVERGENCES), help="the known-divergence list")
    m.add_argument("--exclude", action="append", default=[], metavar="PATTERN",
                   help="leave out matched files with this name pattern (repeatable), e.g. latest.json")
    m.add_argument("--expect-supported", action="store_true",
                   help="say which supported columns (spec/data/columns.toml) have no report (the project's matrix)")
    m.add_argument("--claims", action="append", default=[], metavar="PREFIX",
                   help="only claims whose id starts with PREFIX (repeatable), e.g. spec/")
    d = sub.add_parser("diff", help="what changed between two reports (exit 1 on a regression)")
    d.add_argument("old")
    d.add_argument("new")
    d.add_argument("-o", "--output", help="write here instead of stdout")
    args = parser.parse_args(argv)

    try:
        if args.command == "merge":
            paths = expand_paths(args.reports, args.exclude)
            if not paths:
                print(f"no reports match {' '.join(args.reports)}", file=sys.stderr)
                return 2
            reports = [load_report(p) for p in paths]
            text = merge(reports, load_divergence_entries(args.divergences), args.claims,
                         expect_supported=args.expect_supported)
            _write(text, args.output)
            return 0
        text, regressions = diff(load_report(args.old), load_report(args.new))
        _write(text, args.output)
        return 1 if regressions else 0
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
