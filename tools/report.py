"""Merge and compare the conformance reports written by ``spec/report.py``.

Every pytest run of the spec writes one JSON report (``--report-json``): the
environment (Python, TensorFlow, Keras, backend, devices, ...) and, per test
node, its status, example count and known-divergence hits.  This tool reads
them back; it needs only the standard library.

    python -m tools.report merge reports/*.json -o docs/conformance/matrix.md
    python -m tools.report diff OLD.json NEW.json

merge
    A Markdown matrix: one row per claim (a test without its parameters), one
    column per environment.  Cells: ``pass (N)`` (N examples asserted),
    ``diverged`` (a listed known divergence, strict xfail), ``FAIL``,
    ``skip: reason``, ``—`` (not run there).  Below it: the failures with
    their first line, the environments in full, and the known divergences
    with their example counts per environment.  Paths may be files,
    directories (all ``*.json`` in them) or glob patterns, which the tool
    expands itself (tox runs no shell).

diff
    What changed between two reports: claims whose status changed, claims
    added or removed, and differing environment fields.  The exit status is
    1 when a claim that passed in OLD failed, diverged or went stale in NEW,
    so it can gate an upgrade; otherwise 0.
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

ROOT = Path(__file__).resolve().parent.parent
DIVERGENCES = ROOT / "spec" / "data" / "divergences.toml"

# Aggregation of a claim's test nodes: the first status present wins.
_PRECEDENCE = ["failed", "stale-divergence", "diverged", "passed", "skipped"]
#: statuses that count as a regression when a passing claim moves to them
BROKEN = {"failed", "stale-divergence", "diverged"}


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
    with open(path) as fh:
        data = json.load(fh)
    return normalise(data, source=str(path))


def normalise(data, source="<dict>"):
    """Fill in what an older or partial report lacks, so the rest can rely on it."""
    if not isinstance(data, dict) or "results" not in data:
        raise ValueError(f"{source}: not a conformance report (no 'results')")
    data = dict(data)
    env = dict(data.get("environment") or {})
    env.setdefault("env_name", Path(source).stem if source != "<dict>" else "local")
    data["environment"] = env
    data.setdefault("profile", "?")
    data.setdefault("wall_time_s", None)
    data.setdefault("unmatched_divergence_entries", [])
    data["_source"] = source
    return data


def load_divergence_entries(path=DIVERGENCES):
    path = Path(path)
    if not path.exists():
        return {}
    return {d["id"]: d for d in tomllib.loads(path.read_text()).get("divergence", [])}


# --------------------------------------------------------------------------- claims

def claims_of(report):
    """``{claim: summary}``: the report's test nodes grouped by claim id.

    A summary has ``title``, ``status`` (the worst of its nodes), ``nodes``,
    ``counts`` (per status), ``examples`` and ``known`` (divergence id ->
    examples, summed), ``reasons`` (first lines of failures, skips and
    divergences) and ``observed`` (key -> values seen).
    """
    out = {}
    for nodeid, r in sorted(report["results"].items()):
        claim = r.get("claim") or nodeid.split("[")[0]
        s = out.setdefault(claim, {"title": None, "nodes": 0, "counts": Counter(),
                                   "examples": 0, "known": Counter(), "reasons": [],
                                   "observed": {}})
        title = r.get("title") or ""
        if title and title != nodeid and s["title"] is None:
            s["title"] = title
        status = r.get("status", "failed")
        s["nodes"] += 1
        s["counts"][status] += 1
        s["examples"] += int(r.get("examples") or 0)
        s["known"].update(r.get("known_divergence_examples") or {})
        reason = (r.get("reason") or "").strip()
        if reason and status != "passed" and reason not in s["reasons"]:
            s["reasons"].append(reason)
        for key, values in (r.get("observed") or {}).items():
            seen = s["observed"].setdefault(key, [])
            for v in values if isinstance(values, list) else [values]:
                if v not in seen:
                    seen.append(v)
    for claim, s in out.items():
        s["status"] = next((st for st in _PRECEDENCE if s["counts"][st]), None) \
            or ("failed" if s["counts"] else "skipped")
        if s["title"] is None:
            s["title"] = claim.split("::")[-1]
    return out


def _md(text):
    """Text safe inside a Markdown table cell."""
    return re.sub(r"\s+", " ", str(text)).replace("|", r"\|").strip()


def _short_skip(reason, width=60):
    reason = re.sub(r"^Skipped:\s*", "", reason or "").strip()
    return reason if len(reason) <= width else reason[:width - 1] + "…"


def cell(summary):
    """The matrix cell for one claim in one environment (``None`` -> not run)."""
    if summary is None:
        return "—"
    st, counts, n = summary["status"], summary["counts"], summary["nodes"]
    if st == "failed":
        text = "**FAIL**" + (f" {counts['failed'] + counts['stale-divergence']}/{n}" if n > 1 else "")
        if counts["stale-divergence"]:
            text += " (stale divergence)"
        return text
    if st == "stale-divergence":
        return "**FAIL** (stale divergence)"
    if st == "diverged":
        return "diverged" + (f" {counts['diverged']}/{n}" if n > 1 else "")
    if st == "skipped":
        return "skip: " + _md(_short_skip(summary["reasons"][0] if summary["reasons"] else ""))
    text = f"pass ({summary['examples']})" if summary["examples"] else "pass"
    known = sum(summary["known"].values())
    if known:
        text += f", {known} known"
    if counts["skipped"]:
        text += f", {counts['skipped']}/{n} skip"
    return text


# --------------------------------------------------------------------------- environments

def _vtuple(v):
    return tuple(int(p) for p in re.findall(r"\d+", str(v or ""))[:3])


def env_sort_key(report):
    env = report["environment"]
    backend = env.get("backend") or "tensorflow"
    return (_vtuple(env.get("keras"))[:1], env.get("keras_package") == "tf_keras",
            backend != "tensorflow", backend, _vtuple(env.get("tensorflow")),
            env.get("env_name", ""))


def versions(env):
    """``TF 2.16.2 · Keras 3.3.3`` (``tf_keras 2.21.0`` for the legacy package)."""
    parts = []
    if env.get("tensorflow"):
        parts.append(f"TF {env['tensorflow']}")
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
    when = entry.get("when", {})

    def ok(version, spec):
        for clause in filter(None, (c.strip() for c in spec.split(","))):
            m = re.match(r"(>=|<=|==|<|>)\s*([\d.]+)", clause)
            if not m:
                continue
            bound = _vtuple(m.group(2))
            v = _vtuple(version)[:len(bound)]
            if not {">=": v >= bound, "<=": v <= bound, "==": v == bound,
                    "<": v < bound, ">": v > bound}[m.group(1)]:
                return False
        return True

    def as_list(v):
        return v if isinstance(v, list) else [v]

    if "keras" in when and not ok(env.get("keras"), when["keras"]):
        return False
    if "tensorflow" in when and not (env.get("tensorflow") and ok(env["tensorflow"], when["tensorflow"])):
        return False
    if "backend" in when and env.get("backend") not in as_list(when["backend"]):
        return False
    if "keras_package" in when and env.get("keras_package") not in as_list(when["keras_package"]):
        return False
    return True


_WHOLE_CLAIM = re.compile(r"known divergence ([\w.:-]+):")


# --------------------------------------------------------------------------- merge

def merge(reports, divergences=None, claim_prefixes=()):
    """The Markdown matrix for ``reports`` (normalised dicts)."""
    divergences = load_divergence_entries() if divergences is None else divergences
    reports = sorted(reports, key=env_sort_key)
    _unique_names(reports)
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
    out.append(f"Generated by `python -m tools.report merge` from {len(reports)} report(s); "
               "do not edit by hand, rerun the matrix (`tox -p auto`) and `tox -e report`.")
    out.append("")
    out.append("Cells: `pass (N)` N examples asserted (plain `pass`: a test that does not "
               "count examples), `, K known` K of them hit a listed known divergence and were "
               "counted instead of asserted; `diverged` the whole claim is a listed known "
               "divergence (strict xfail); **FAIL** (`k/n`: failing parametrizations); "
               "`skip: reason`; `—` not run in that environment.")
    out.append("")

    # summary
    out += ["## Summary", "",
            "| Environment | Versions | Backend | Devices | Profile | Claims | pass | FAIL | diverged | skip | Examples | Known-div. examples | Wall time |",
            "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r, env, cs in zip(reports, envs, per_env):
        st = Counter(s["status"] for s in cs.values())
        fails = st["failed"] + st["stale-divergence"]
        wall = r.get("wall_time_s")
        out.append(
            f"| {_md(env['env_name'])} | {_md(versions(env))} | {_md(env.get('backend', '?'))} "
            f"| {_md(devices(env))} | {_md(r.get('profile', '?'))} | {len(cs)} | {st['passed']} "
            f"| {'**' + str(fails) + '**' if fails else 0} | {st['diverged']} | {st['skipped']} "
            f"| {sum(s['examples'] for s in cs.values())} "
            f"| {sum(sum(s['known'].values()) for s in cs.values())} "
            f"| {'—' if wall is None else f'{wall:.0f} s'} |")
    out.append("")

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

    # failures, verbatim first lines
    failing = [(env, c, cs[c]) for env, cs in zip(envs, per_env) for c in claims
               if c in cs and cs[c]["status"] in ("failed", "stale-divergence")]
    out += ["## Failures", ""]
    if not failing:
        out += ["None.", ""]
    for env, c, s in failing:
        reason = s["reasons"][0] if s["reasons"] else "(no message recorded)"
        out.append(f"- **{_md(env['env_name'])}** `{c}`: `{_md(reason)}`")
    if failing:
        out.append("")

    # skipped parametrizations and claims, with their reasons (e.g. the GPU cases on a CPU machine)
    skipped = {}
    for r, env in zip(reports, envs):
        for nodeid, res in r["results"].items():
            if res["status"] == "skipped":
                reason = (res.get("reason") or "").removeprefix("Skipped: ")
                skipped.setdefault(reason, []).append((env["env_name"], nodeid))
    out += ["## Skipped", ""]
    if not skipped:
        out += ["None.", ""]
    for reason, where in sorted(skipped.items()):
        envs_here = sorted({e for e, _ in where})
        ids = sorted({n.split("::", 1)[-1] for _, n in where})
        out.append(f"- {_md(reason)} — {len(where)} case(s) in {', '.join(map(_md, envs_here))}: "
                   + ", ".join(f"`{_md(i)}`" for i in ids))
    if skipped:
        out.append("")

    # environments in full
    out += ["## Environments", "",
            "| Environment | Python | TensorFlow | Keras | Keras package | Backend | Devices | TF32 | Commit | Profile | Wall time | Platform | Report |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r, env in zip(reports, envs):
        wall = r.get("wall_time_s")
        out.append("| " + " | ".join(_md(x) for x in (
            env["env_name"], env.get("python", "?"), env.get("tensorflow") or "—",
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


def _divergence_section(reports, envs, per_env, divergences):
    # id -> env index -> {"examples": {claim: n}, "claims": [claim]}
    hits = {}
    for i, cs in enumerate(per_env):
        for c, s in cs.items():
            for div_id, n in s["known"].items():
                hits.setdefault(div_id, {}).setdefault(i, {"examples": {}, "claims": []})
                hits[div_id][i]["examples"][c] = hits[div_id][i]["examples"].get(c, 0) + n
            if s["status"] == "diverged":
                for reason in s["reasons"]:
                    m = _WHOLE_CLAIM.search(reason)
                    div_id = m.group(1) if m else "(unnamed)"
                    hits.setdefault(div_id, {}).setdefault(i, {"examples": {}, "claims": []})
                    hits[div_id][i]["claims"].append(c)
    ids = list(divergences) + sorted(set(hits) - set(divergences))
    out = ["## Known divergences", ""]
    if not ids:
        return out + ["None listed in `spec/data/divergences.toml` and none hit.", ""]
    out.append("Examples that hit each entry of `spec/data/divergences.toml` (counted, "
               "not asserted), and claims marked `diverged` as a whole; `n/a`: the entry "
               "does not apply to that environment; `0`: it applies and no example hit it.")
    out.append("")
    out.append("| Divergence | " + " | ".join(_md(e["env_name"]) for e in envs) + " |")
    out.append("|---|" + "---:|" * len(envs))
    for div_id in ids:
        entry = divergences.get(div_id)
        cells = []
        for i, env in enumerate(envs):
            h = hits.get(div_id, {}).get(i)
            if h:
                n = sum(h["examples"].values())
                text = f"{n} ex" if n else ""
                if h["claims"]:
                    text += (", " if text else "") + f"{len(h['claims'])} claim(s) diverged"
                cells.append(text)
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
                out.append(f"- example-level, recognised by `spec/divergences.py::{entry['predicate']}`")
            if entry.get("upstream"):
                out.append(f"- upstream: {entry['upstream']}")
        for i, env in enumerate(envs):
            h = hits.get(div_id, {}).get(i)
            if not h:
                continue
            parts = [f"`{c}` {n}" for c, n in sorted(h["examples"].items())]
            parts += [f"`{c}` (whole claim)" for c in h["claims"]]
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
        if a[c]["status"] != b[c]["status"]:
            bad = a[c]["status"] == "passed" and b[c]["status"] in BROKEN
            changed.append((c, bad))
            if bad:
                regressions.append(c)
    out += ["## Status changes", ""]
    if changed:
        out += ["| Claim | Old | New | |", "|---|---|---|---|"]
        for c, bad in changed:
            out.append(f"| `{c}` | {cell(a[c])} | {cell(b[c])} | {'**regression**' if bad else ''} |")
        out.append("")
        notes = [f"- `{c}` (new): `{_md(b[c]['reasons'][0])}`" for c, _ in changed
                 if b[c]["status"] != "passed" and b[c]["reasons"]]
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

    known = [(c, dict(a[c]["known"]), dict(b[c]["known"])) for c in sorted(set(a) & set(b))
             if set(a[c]["known"]) != set(b[c]["known"])]
    if known:
        out += ["## Known-divergence entries hit", ""]
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
    parser = argparse.ArgumentParser(prog="python -m tools.report", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("merge", help="Markdown matrix of several reports")
    m.add_argument("reports", nargs="+", help="report files, directories or glob patterns")
    m.add_argument("-o", "--output", help="write here instead of stdout")
    m.add_argument("--divergences", default=str(DIVERGENCES), help="the known-divergence list")
    m.add_argument("--exclude", action="append", default=[], metavar="PATTERN",
                   help="leave out matched files with this name pattern (repeatable), e.g. latest.json")
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
            text = merge(reports, load_divergence_entries(args.divergences), args.claims)
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
