"""The behavior timeline: what every claim and every divergence did in every Keras release.

    rnnspec report timeline reports/sweep/*.json [-o docs/conformance/timeline]

Reads sweep reports (``rnnspec sweep``; any conformance report works) and the
``*.status`` files next to them, and writes per backend

- ``<backend>.md``: one row per claim and one per divergence, one column per Keras
  release in version order. A claim's cell is pass / diverged (which divergences,
  by their number in the page) / refused / crashed / failed / fixed / unsupported /
  harness gap / skip / not run / not installable. A divergence's cell is the
  number of examples asserted against its model, ``0`` (its entry applies and no
  example fell in it), or ``n/a`` (its entry's ``when`` excludes the release).
  Above the grids: for each divergence and each finding (a claim that failed,
  crashed or was fixed somewhere) its first bad and first fixed release, or
  "still in the latest"; where it comes and goes, every bad run.
- ``<backend>.json``: the same, for ``rnnspec bisect`` (it warns where the
  outcome changes more than once in its range).

"Absent" means no example was asserted against the divergence's model in a
release that ran its claims. The sweep profile draws few examples per claim:
a rare divergence can be missed in one release, which then shows as a
one-release gap ("comes and goes"); rerun that release with ``ci`` or bisect it.
"""

import json
from pathlib import Path

from rnnspec.spec.outcomes import FINDINGS
from rnnspec.tools.report import (_divergence_id, _md, _vtuple, claims_of, divergence_applies,
                                  is_hollow, load_divergence_entries)

LABELS = {"passed": "pass", "refused": "refused", "unsupported": "unsupported", "skipped": "skip",
          "harness-gap": "harness gap", "crashed": "**crashed**", "failed": "**FAILED**",
          "fixed": "**fixed**", "harness-error": "**harness error**"}


def statuses_beside(paths):
    """The ``*.status`` files (``rnnspec sweep``) in the folders of ``paths``, parsed."""
    out, seen = [], set()
    for folder in {Path(p).parent for p in paths}:
        for f in sorted(folder.glob("*.status")):
            if f in seen:
                continue
            seen.add(f)
            try:
                out.append(json.loads(f.read_text()))
            except (OSError, ValueError):
                continue
    return out


# --------------------------------------------------------------------------- the model

def signature(summary):
    """A claim's outcome in one release, as bisect compares it: ``(outcome, divergence ids)``."""
    if summary is None:
        return None
    return (summary["outcome"], tuple(sorted({_divergence_id(k) for k in summary["examples"]["models"]})))


def build(reports, statuses=(), divergences=None):
    """``{backend: timeline}`` (the dict ``<backend>.json`` holds) from normalised reports."""
    divergences = load_divergence_entries() if divergences is None else divergences
    by_backend = {}
    for r in reports:
        env = r["environment"]
        cols = by_backend.setdefault(env.get("backend") or "tensorflow", {})
        key = str(env.get("keras"))
        prev = cols.get(key)
        # two reports of one release: a sweep column wins, else the later file
        if prev is None or not str(prev["environment"].get("env_name", "")).startswith("sweep-") \
                or str(env.get("env_name", "")).startswith("sweep-"):
            cols[key] = r
    failed_installs = {}
    for s in statuses:
        if s.get("status") in ("install-failed", "no-report"):
            failed_installs.setdefault(s.get("backend"), {})[str(s.get("keras"))] = s
    out = {}
    for backend in sorted(set(by_backend) | set(failed_installs)):
        cols = by_backend.get(backend, {})
        fails = {k: v for k, v in failed_installs.get(backend, {}).items() if k not in cols}
        out[backend] = _timeline(backend, cols, fails, divergences)
    return out


def _timeline(backend, cols, fails, divergences):
    releases = sorted(set(cols) | set(fails), key=_vtuple)
    per = {v: claims_of(cols[v]) for v in cols}
    claim_ids = sorted({c for cs in per.values() for c in cs})
    claims = {}
    for c in claim_ids:
        row = {}
        for v in releases:
            s = per.get(v, {}).get(c)
            row[v] = None if s is None else {"outcome": s["outcome"], "divergences": list(signature(s)[1]),
                                             "hollow": is_hollow(s)}
        claims[c] = row
    hits = {}
    for v, cs in per.items():
        for s in cs.values():
            for key, n in s["examples"]["models"].items():
                d = hits.setdefault(_divergence_id(key), {})
                d[v] = d.get(v, 0) + n
    applied = [d for d, e in divergences.items()
               if any(divergence_applies(e, cols[v]["environment"]) for v in cols)]
    ids = sorted(set(hits) | set(applied))
    divs = {}
    for d in ids:
        entry, row = divergences.get(d), {}
        for v in releases:
            if v not in cols:
                row[v] = None
            elif hits.get(d, {}).get(v):
                row[v] = hits[d][v]
            elif entry is not None and not divergence_applies(entry, cols[v]["environment"]):
                row[v] = "n/a"
            else:
                row[v] = 0
        divs[d] = row
    spans = {}
    for d, row in divs.items():
        spans[d] = bad_runs([(v, None if row[v] is None else isinstance(row[v], int) and row[v] > 0)
                             for v in releases])
    for c, row in claims.items():
        seq = [(v, None if row[v] is None else row[v]["outcome"] in FINDINGS) for v in releases]
        if any(bad for _, bad in seq):
            spans[c] = bad_runs(seq)
    columns = {}
    for v in releases:
        if v in cols:
            env = cols[v]["environment"]
            columns[v] = {"status": "ran", "env_name": env.get("env_name"), "spec_hash": env.get("spec_hash"),
                          "profile": cols[v].get("profile"), "wall_time_s": cols[v].get("wall_time_s"),
                          "library": _library(env), "numpy": env.get("numpy"), "source": cols[v]["_source"]}
        else:
            s = fails[v]
            columns[v] = {"status": s.get("status"), "reason": s.get("reason", ""),
                          "requirements": s.get("requirements", [])}
    return {"backend": backend, "releases": releases, "columns": columns, "claims": claims,
            "divergences": divs, "spans": spans}


def _library(env):
    for lib in ("tensorflow", "jax", "torch"):
        if env.get(lib):
            return f"{lib} {env[lib]}"
    return ""


def bad_runs(seq):
    """First bad / first fixed over ``[(release, bad: True/False/None unknown)]`` (version order).

    ``{"runs": [[first bad, first fixed or None], ...], "first_bad", "first_fixed",
    "still_in_latest", "comes_and_goes"}``; unknown releases are passed over."""
    known = [(v, b) for v, b in seq if b is not None]
    runs, start = [], None
    for v, bad in known:
        if bad and start is None:
            start = v
        elif not bad and start is not None:
            runs.append([start, v])
            start = None
    if start is not None:
        runs.append([start, None])
    return {"runs": runs, "first_bad": runs[0][0] if runs else None,
            "first_fixed": runs[0][1] if runs else None,
            "still_in_latest": bool(runs) and runs[-1][1] is None,
            "comes_and_goes": len(runs) > 1}


def changes(timeline, claim, good, bad):
    """The changes of ``claim``'s signature over the releases from ``good`` to ``bad``
    (inclusive) that ran it: ``[(release a, signature a, next release b, signature b)]``."""
    row = timeline["claims"].get(claim) or {}
    lo, hi = _vtuple(good), _vtuple(bad)
    seq = []
    for v in timeline["releases"]:
        cell = row.get(v)
        if cell is not None and lo <= _vtuple(v) <= hi:
            seq.append((v, (cell["outcome"], tuple(cell["divergences"]))))
    return [(a, sa, b, sb) for (a, sa), (b, sb) in zip(seq, seq[1:]) if sa != sb]


# --------------------------------------------------------------------------- the page

def _span_text(span):
    if not span["runs"]:
        return "never bad", ""
    parts = []
    for a, b in span["runs"]:
        parts.append(f"{a}–" + ("still in the latest" if b is None else f"fixed in {b}"))
    first_fixed = "still in the latest" if span["first_fixed"] is None else span["first_fixed"]
    note = ("comes and goes: " + "; ".join(parts)) if span["comes_and_goes"] else ""
    return first_fixed, note


def render(t):
    """The Markdown page of one backend's timeline."""
    releases = t["releases"]
    numbers = {d: i + 1 for i, d in enumerate(t["divergences"])}
    hashes = sorted({c.get("spec_hash") for c in t["columns"].values() if c.get("spec_hash")})
    profiles = sorted({str(c.get("profile")) for c in t["columns"].values() if c.get("status") == "ran"})
    out = [f"# Behavior timeline: {t['backend']}", "",
           f"Written by `rnnspec report timeline` from {sum(c['status'] == 'ran' for c in t['columns'].values())} "
           f"reports of {len(releases)} Keras releases (profile {', '.join(profiles) or '—'}; "
           f"spec hash {', '.join(hashes) or '—'}). Columns are Keras releases in version order.", "",
           "## First bad and first fixed", "",
           "Per divergence (examples asserted against its model) and per finding (a claim that failed, "
           "crashed or was fixed): the first release where it shows and the first later release where it "
           "no longer does. Releases not run or not installable are passed over.", "",
           "| | Divergence or finding | First bad | First fixed | Note |", "|---|---|---|---|---|"]
    for key, span in t["spans"].items():
        if not span["runs"]:
            continue
        label = f"D{numbers[key]}" if key in numbers else "claim"
        fixed, note = _span_text(span)
        out.append(f"| {label} | `{_md(key)}` | {span['first_bad']} | {fixed} | {_md(note)} |")
    never = [d for d, s in t["spans"].items() if d in numbers and not s["runs"]]
    if never:
        out += ["", "Listed, applying to some release, never hit: " + ", ".join(
            f"D{numbers[d]} `{d}`" for d in never) + "."]
    head = "| " + " | ".join(releases) + " |"
    rule = "|---|" + "---|" * len(releases)
    out += ["", "## Claims", "", "| Claim " + head, rule]
    for c, row in t["claims"].items():
        cells = [_claim_cell(row[v], t["columns"][v], numbers) for v in releases]
        out.append(f"| `{_md(c)}` | " + " | ".join(cells) + " |")
    out += ["", "## Divergences", "",
            "Examples asserted against each divergence's model; `0`: its entry applies and no example fell "
            "in it; `n/a`: its entry does not apply to that release.", "", "| Divergence " + head, rule]
    for d, row in t["divergences"].items():
        cells = [_status_cell(t["columns"][v]) if row[v] is None else str(row[v]) for v in releases]
        out.append(f"| D{numbers[d]} `{_md(d)}` | " + " | ".join(cells) + " |")
    out += ["", "## Releases", "", "| Keras | Status | Backend library | NumPy | Wall time | Spec hash | Source |",
            "|---|---|---|---|---:|---|---|"]
    for v in releases:
        c = t["columns"][v]
        if c["status"] == "ran":
            wall = f"{c['wall_time_s']:.0f} s" if c.get("wall_time_s") is not None else "—"
            out.append(f"| {v} | ran | {_md(c['library'])} | {c.get('numpy') or '—'} | {wall} | "
                       f"`{c.get('spec_hash') or '—'}` | `{_md(Path(c['source']).name)}` |")
        else:
            reason = (c.get("reason") or "").strip().splitlines()
            out.append(f"| {v} | {c['status']}: {_md(reason[-1] if reason else '')} | "
                       f"{_md(' '.join(c.get('requirements') or []))} | | | | |")
    return "\n".join(out) + "\n"


def _status_cell(column):
    return {"install-failed": "not installable", "no-report": "no report"}.get(column.get("status"), "not run")


def _claim_cell(cell, column, numbers):
    if cell is None:
        return _status_cell(column) if column.get("status") != "ran" else "not run"
    if cell["outcome"] == "diverged":
        return "diverged " + ",".join(f"D{numbers[d]}" for d in cell["divergences"] if d in numbers)
    text = LABELS.get(cell["outcome"], cell["outcome"])
    return text + (" (hollow)" if cell.get("hollow") else "")


def write(timelines, folder):
    """Write ``<backend>.md`` and ``<backend>.json`` per timeline into ``folder``; the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for backend, t in timelines.items():
        md, js = folder / f"{backend}.md", folder / f"{backend}.json"
        md.write_text(render(t))
        js.write_text(json.dumps(t, indent=1, sort_keys=True) + "\n")
        written += [md, js]
    return written


def load(folder, backend):
    """A written timeline (``<folder>/<backend>.json``), or None."""
    path = Path(folder) / f"{backend}.json"
    return json.loads(path.read_text()) if path.is_file() else None
