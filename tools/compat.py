"""The compatibility matrix: every environment writes the corpus, every environment reads it.

Three phases (tox.ini drives them; README "Saved models across versions"):

    python -m rnnspec.tools.compat write      # in each environment: reports/compat/written/<env>/
    python -m rnnspec.tools.compat read       # in each environment: every writer's directory ->
                                      #   reports/compat/read/<env>.json
    python -m rnnspec.tools.compat merge      # anywhere (standard library only): the results ->
                                      #   docs/compat/matrix.md and docs/compat/cells.json

``write`` and ``read`` run inside a Keras environment (they import ``rnnspec.spec.compat``);
``merge`` needs only the standard library, like ``tools/report.py``.

The gate (``merge`` exits 1): a cell (writer, reader, format, model) that loaded and matched
in the committed ``docs/compat/cells.json`` no longer does; an outcome that no entry of
``spec/data/compat.toml`` lists (a new finding); a listed finding that now matches (fixed:
remove or narrow the entry); or an environment of tox.ini's ``env_list`` that wrote or read
nothing (the matrix must cover every environment). ``cells.json`` is rewritten only when
the gate passes (or with ``--accept``).
"""

import argparse
import json
import os
import re
import sys
from pathlib import Path

from rnnspec.spec import compat_rules
from rnnspec.spec.compat import GOLDEN
from rnnspec.spec.versions import version_tuple

ROOT = Path(__file__).resolve().parent.parent

WRITTEN = ROOT / "reports" / "compat" / "written"
READ = ROOT / "reports" / "compat" / "read"
OUTCOMES = ("match", "differs", "refused", "unsupported", "crash", "not-written", "harness-error")
SYMBOL = {"match": "✓", "differs": "≠", "refused": "R", "unsupported": "–", "crash": "✗", "not-written": "!",
          "harness-error": "H"}
FORMAT_ORDER = ["json", "weights:weights.h5", "weights:h5", "weights:tf",
                "model:keras", "model:h5", "model:savedmodel", "model:export"]


def env_name():
    return os.environ.get("RNNSPEC_ENV") or os.environ.get("TOX_ENV_NAME") or "local"


# --------------------------------------------------------------------------- write / read (Keras)

def cmd_write(args):
    from rnnspec.spec import compat
    out = Path(args.out or WRITTEN / env_name())
    manifest = compat.write(out, models=args.models, formats=args.formats)
    written = sum(a["saved"] for m in manifest["models"].values() for a in m["artifacts"].values())
    print(f"rnnspec compat: {env_name()} wrote {written} artifacts of {len(manifest['models'])} models "
          f"({sum(1 for _ in out.rglob('*') if _.is_file())} files) into {out}")
    return 0


#: what the golden corpus leaves out, and why (measured: rnnspec.tools.compat write in k2-tf212)
GOLDEN_LEFT_OUT = {
    "model:savedmodel": "a SavedModel directory of the corpus is 0.2-4 MB per model (13.4 MB for the "
                        "savedmodel and export artifacts of one Keras 2 writer): over the 5 MB budget; "
                        "kept for the two smallest models only",
    "model:export": "the same: Model.export writes a SavedModel (0.1-2.6 MB per model); kept for the "
                    "two smallest models only",
}
#: the corpus models whose SavedModels the golden corpus keeps (0.2-0.4 MB each)
GOLDEN_KEEP_LARGE = ("hard_sigmoid", "user_cell")


def cmd_golden(args):
    """Copy written corpora into spec/data/golden/, without the formats of GOLDEN_LEFT_OUT."""
    import shutil
    for src in writer_dirs(args.sources):
        manifest = json.loads((src / "manifest.json").read_text())
        dst = Path(args.into) / src.name
        if dst.exists():
            shutil.rmtree(dst)
        kept_files = {}
        for model_id, entry in manifest["models"].items():
            for name in [n for n in entry["artifacts"] if n in GOLDEN_LEFT_OUT and model_id not in GOLDEN_KEEP_LARGE]:
                del entry["artifacts"][name]
            keep_dirs = {f"{model_id}/{n.replace(':', '-')}" for n in entry["artifacts"]}
            for rel, digest in manifest["files"].items():
                parts = rel.split("/")
                if parts[0] == model_id and (len(parts) == 2 or "/".join(parts[:2]) in keep_dirs):
                    kept_files[rel] = digest
        manifest["files"] = kept_files
        manifest["left_out"] = {fmt: {"models": sorted(set(manifest["models"]) - set(GOLDEN_KEEP_LARGE)), "why": why}
                                for fmt, why in GOLDEN_LEFT_OUT.items()}
        for rel in kept_files:
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / rel, dst / rel)
        (dst / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        size = sum(p.stat().st_size for p in dst.rglob("*") if p.is_file())
        print(f"rnnspec compat: golden {dst}: {len(kept_files)} files, {size / 1e6:.2f} MB")
    return 0


def writer_dirs(roots):
    found = []
    for root in roots:
        root = Path(root)
        if (root / "manifest.json").is_file():
            found.append(root)
        else:
            found += sorted(p.parent for p in root.glob("*/manifest.json"))
    return found


def cmd_read(args):
    import time
    from rnnspec.spec import compat
    from rnnspec.spec.report import environment
    env = environment()
    started = time.time()
    results, writers = [], {}
    for d in writer_dirs(args.sources or [WRITTEN]):
        writers[d.name] = json.loads((d / "manifest.json").read_text())["environment"]
        bad = compat.verify_checksums(d)
        if bad:
            raise SystemExit(f"{d}: files differ from manifest.json checksums: {bad[:5]}")
        t = time.time()
        got = compat.read(d, env)
        results += got
        print(f"rnnspec compat: {env['env_name']} read {d.name}: {len(got)} artifacts in {time.time() - t:.1f} s",
              flush=True)
    out = Path(args.out or READ / f"{env['env_name']}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"reader": env["env_name"], "environment": env, "seconds": round(time.time() - started, 1),
                               "writers": writers, "results": results}, indent=1, default=str) + "\n")
    counts = {o: sum(r["outcome"] == o for r in results) for o in OUTCOMES}
    new = [r for r in results if r["outcome"] in ("differs", "crash") and not r["listed"]]
    print(f"rnnspec compat: {env['env_name']} read {len(results)} artifacts: {counts}; "
          f"{len(new)} not listed in spec/data/compat.toml -> {out}")
    return 0


# --------------------------------------------------------------------------- merge (stdlib)

def tox_env_list(tox_ini=ROOT / "tox.ini"):
    """The environments of tox.ini's ``env_list``, generative braces expanded."""
    import configparser
    cp = configparser.ConfigParser(interpolation=None)
    cp.read(tox_ini)
    names = []
    for line in cp["tox"]["env_list"].split("\n"):
        line = line.strip()
        if not line:
            continue
        parts = [[""]]
        for chunk in re.split(r"(\{[^}]*\})", line):
            parts.append(chunk[1:-1].split(",") if chunk.startswith("{") else [chunk])
        expanded = [""]
        for options in parts:
            expanded = [e + o for e in expanded for o in options]
        names += expanded
    return names


def _env_key(env, listed=()):
    """Chronological order of an environment: its Keras version, then its place in tox.ini's env_list."""
    name = env.get("env_name", "")
    return (version_tuple(env.get("keras")), listed.index(name) if name in listed else len(listed), name)


def upgrade_direction(writer_env, reader_env):
    """Whether the reader's Keras is at least as new as the writer's (the mandatory direction)."""
    return version_tuple(reader_env.get("keras")) >= version_tuple(writer_env.get("keras"))


def load_results(read_dir):
    reads = {}
    for p in sorted(Path(read_dir).glob("*.json")):
        data = json.loads(p.read_text())
        reads[data["reader"]] = data
    return reads


def load_manifests(written_dirs):
    manifests = {}
    for d in writer_dirs(written_dirs):
        m = json.loads((d / "manifest.json").read_text())
        manifests[m["environment"]["env_name"]] = m
    return manifests


def gate(results, baseline, expected_envs, writers, readers, envs=None):
    """The gate's failures, as lines. ``envs`` (name -> environment) tells the upgrade direction:
    a listed finding that now matches fails the gate there only (newer to older is optional)."""
    envs = envs or {}
    failures = []
    for env in expected_envs:
        if env not in writers:
            failures.append(f"incomplete: {env} (tox.ini env_list) wrote no corpus")
        if env not in readers:
            failures.append(f"incomplete: {env} (tox.ini env_list) read nothing")
    now = {cell_key(r): r for r in results}
    for key, outcome in sorted((baseline or {}).items()):
        if outcome == "match" and key in now and now[key]["outcome"] != "match":
            r = now[key]
            failures.append(f"regression: {key} loaded and matched before, now {r['outcome']}: {r['detail']}")
        elif outcome == "match" and key not in now and key.split("|")[1] in readers and key.split("|")[0] in writers:
            failures.append(f"regression: {key} loaded and matched before, now not read")
    for r in results:
        if r["outcome"] == "harness-error":
            failures.append(f"harness error: {cell_key(r)}: {r['detail']}")
        if r["outcome"] in ("differs", "crash") and not r.get("listed"):
            failures.append(f"new finding: {cell_key(r)} {r['outcome']}: {r['detail']}")
        upgrade = (r["writer"] not in envs or r["reader"] not in envs
                   or upgrade_direction(envs[r["writer"]], envs[r["reader"]]))
        if r.get("fixed") and upgrade:
            failures.append(f"fixed: {cell_key(r)} matches, but {', '.join(r['fixed'])} lists it "
                            "(spec/data/compat.toml): narrow or remove the entry")
    return failures


def cell_key(r):
    return f"{r['writer']}|{r['reader']}|{r['format']}|{r['model']}"


def render(results, manifests, reads, table, failures, command):
    listed_envs = tox_env_list()
    envs = sorted({**{w: m["environment"] for w, m in manifests.items()},
                   **{r: d["environment"] for r, d in reads.items()}}.items(),
                  key=lambda kv: _env_key(kv[1], listed_envs))
    order = [name for name, _ in envs]
    info = dict(envs)
    rank = {name: i for i, name in enumerate(order)}
    findings = {e["id"]: e for e in table.get("finding", [])}
    labels = {fid: f"F{i + 1}" for i, fid in enumerate(findings)}
    refusals = {e["id"]: e for e in table.get("refusal", [])}
    rlabels = {rid: f"R{i + 1}" for i, rid in enumerate(refusals)}
    by_cell = {}
    for r in results:
        by_cell.setdefault((r["writer"], r["reader"], r["format"]), []).append(r)
    formats = [f for f in FORMAT_ORDER if any(k[2] == f for k in by_cell)]
    formats += sorted({k[2] for k in by_cell} - set(formats))
    counts = {o: 0 for o in OUTCOMES}
    for r in results:
        counts[r["outcome"]] += 1
    upgrade = [r for r in results if r["writer"] in info and r["reader"] in info
               and upgrade_direction(info[r["writer"]], info[r["reader"]])]
    ucounts = {o: sum(r["outcome"] == o for r in upgrade) for o in OUTCOMES}
    lines = [
        "# Saved models across versions: the compatibility matrix",
        "",
        "Generated by `tox -e compat` (`python -m rnnspec.tools.compat merge`) from the corpus that every",
        "environment of tox.ini's `env_list` writes and every environment reads; do not edit by hand.",
        "How to regenerate it, and what each outcome means: [README.md](../../README.md#saved-models-across-versions).",
        "",
        f"Command: `{command}`",
        "",
        "Environments, oldest first (Keras version, then tox.ini order); a row is the writer, a column",
        "the reader. The upgrade direction is every cell whose reader has a Keras at least as new",
        "as the writer's (on and below the diagonal): all of them are read. Above it, newer to older.",
        "",
        "| env | Keras | package | backend | TensorFlow |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name in order:
        e = info[name]
        lines.append(f"| {name} | {e.get('keras')} | {e.get('keras_package')} | {e.get('backend')} | {e.get('tensorflow') or '-'} |")
    lines += [
        "",
        "## Summary",
        "",
        "Artifacts read (writer × reader × format × corpus model):",
        "",
        "| outcome | all | upgrade direction |",
        "| --- | ---: | ---: |",
    ]
    for o in OUTCOMES:
        lines.append(f"| {SYMBOL[o]} {o} | {counts[o]} | {ucounts[o]} |")
    severity = ("match", "unsupported", "refused", "differs", "not-written", "crash", "harness-error")
    cell_worst = {k: max((r["outcome"] for r in v), key=severity.index) for k, v in by_cell.items()}
    lines += ["", "Cells (writer × reader × format), each counted under the worst outcome of its models "
              "(crash, then differs, refused, unsupported; match: every model loads and matches):", "",
              "| cell outcome | all | upgrade direction |", "| --- | ---: | ---: |"]
    for o in reversed(severity):
        n_all = sum(1 for v in cell_worst.values() if v == o)
        n_up = sum(1 for (w, rd, _), v in cell_worst.items() if v == o and w in info and rd in info
                   and upgrade_direction(info[w], info[rd]))
        if n_all or o in ("match", "crash"):
            lines.append(f"| {SYMBOL[o]} {o} | {n_all} | {n_up} |")
    lines += ["", f"Gate: {'**FAILED**' if failures else 'passed'} ({len(failures)} failures)."]
    lines += [f"- {f}" for f in failures[:50]]
    codes = {"json": "J", "weights:weights.h5": "W", "weights:h5": "H", "weights:tf": "C", "model:keras": "K",
             "model:h5": "h", "model:savedmodel": "S", "model:export": "E"}
    lines += [
        "",
        "## Which formats carry a model across",
        "",
        "Per writer × reader, the formats in which *every* corpus model loads and matches: "
        + ", ".join(f"`{c}` {f}" for f, c in codes.items()) + ". `-`: none.",
        "",
        "| writer \\ reader | " + " | ".join(order) + " |",
        "| --- |" + " --- |" * len(order),
    ]
    for w in order:
        row = []
        for rd in order:
            ok = [codes.get(f, f) for f in formats if by_cell.get((w, rd, f))
                  and all(r["outcome"] == "match" for r in by_cell[(w, rd, f)])]
            row.append("".join(ok) or "-")
        lines.append(f"| {w} | " + " | ".join(row) + " |")
    lines += [
        "",
        "## Cells",
        "",
        "A cell is one writer × reader × format; it holds the corpus models "
        f"({', '.join(sorted({r['model'] for r in results}))}). "
        "`✓` every model loads and matches the writer's reference outputs; otherwise the count",
        "of each outcome: `≠` loads but computes something else, `R` refused with a clear error,",
        "`–` the reader does not read the format, `✗` crash or unclear error, `!` the writer",
        "could not save it; the label names the finding or refusal below. An empty cell: the",
        "writer does not write that format.",
        "",
    ]
    for fmt in formats:
        lines += [f"### {fmt}", "", "| writer \\ reader | " + " | ".join(order) + " |",
                  "| --- |" + " --- |" * len(order)]
        for w in order:
            row = []
            for rd in order:
                cell = by_cell.get((w, rd, fmt))
                row.append(_cell_text(cell, labels, rlabels) if cell else "")
            lines.append(f"| {w} | " + " | ".join(row) + " |")
        lines.append("")
    lines += ["## Findings", "",
              "Listed in `spec/data/compat.toml` (`[[finding]]`), each with its reason and reproducer.", ""]
    for fid, e in findings.items():
        hit = [r for r in results if r.get("listed") == fid]
        cells = sorted({(r["writer"], r["reader"], r["format"]) for r in hit}, key=lambda c: (rank.get(c[0], 0), rank.get(c[1], 0), c[2]))
        lines += [f"### {labels[fid]} `{fid}` ({e['outcome']})", "",
                  e["reason"].strip(), "",
                  f"Cells ({len(cells)}; models: {', '.join(sorted({r['model'] for r in hit})) or '-'}): "
                  + _cells_summary(cells), ""]
        if e.get("reproducer"):
            lines += ["```python", e["reproducer"].strip(), "```", ""]
    new = [r for r in results if r["outcome"] in ("differs", "crash") and not r.get("listed")]
    if new:
        lines += ["## New findings (not listed: the gate fails)", ""]
        lines += [f"- {cell_key(r)}: {r['outcome']}: {r['detail']}" for r in new[:80]]
        lines.append("")
    lines += ["## Refusals and unsupported formats", "",
              "Clear refusals (`[[refusal]]`) and formats a reader does not read (`[[unsupported]]`):", ""]
    for rid, e in refusals.items():
        n = sum(r.get("listed") == rid for r in results)
        lines.append(f"- {rlabels[rid]} `{rid}` ({n} artifacts): {' '.join(e['reason'].split())}")
    for e in table.get("unsupported", []):
        n = sum(r.get("listed") == e["id"] for r in results)
        lines.append(f"- `{e['id']}` ({n} artifacts): {' '.join(e['reason'].split())}")
    not_written = [r for r in results if r["outcome"] == "not-written"]
    if not_written:
        lines += ["", "Artifacts a writer could not save (`!`):", ""]
        for (w, f, m), d in sorted({(r["writer"], r["format"], r["model"]): r["detail"] for r in not_written}.items()):
            lines.append(f"- {w} {f} {m}: {d}")
    timing = [(r, d.get("seconds")) for r, d in reads.items()]
    lines += ["", "## Read times", "", "Seconds each reader took to read every writer's corpus: "
              + ", ".join(f"{r} {s}" for r, s in sorted(timing, key=lambda t: rank.get(t[0], 0))) + "."]
    return "\n".join(lines) + "\n"


def _cells_summary(cells):
    by_pair = {}
    for w, r, f in cells:
        by_pair.setdefault((w, r), []).append(f)
    return "; ".join(f"{w} → {r} ({', '.join(fs)})" for (w, r), fs in by_pair.items())


def _cell_text(cell, labels, rlabels):
    if all(r["outcome"] == "match" for r in cell):
        return "✓"
    parts = []
    for o in OUTCOMES:
        hit = [r for r in cell if r["outcome"] == o]
        if not hit:
            continue
        tags = sorted({labels.get(r.get("listed")) or rlabels.get(r.get("listed")) or ("NEW" if o in ("differs", "crash") else "")
                       for r in hit} - {""})
        parts.append(f"{SYMBOL[o]}{len(hit)}" + (" " + ",".join(tags) if tags and o != "unsupported" else ""))
    return " ".join(parts)


def reclassify(reads, data=None):
    """Every result, its outcome decided again from its raw facts with compat.toml as it is now."""
    from rnnspec.spec.compat_rules import classify
    results = []
    for d in reads.values():
        writers = {w["env_name"]: w for w in d.get("writers", {}).values()}
        for r in d["results"]:
            if "loaded" in r or r.get("harness_error"):
                r = {k: v for k, v in r.items() if k not in ("outcome", "listed", "fixed")}
                r.update(classify(r, fmt=r["format"], model_id=r["model"], writer_env=writers[r["writer"]],
                                  reader_env=d["environment"], data=data))
            results.append(r)
    return results


def write_cells(path, results):
    """The outcomes as the gate's baseline: one line per writer|reader|format, {model: outcome}."""
    cells = {}
    for r in results:
        cells.setdefault(f"{r['writer']}|{r['reader']}|{r['format']}", {})[r["model"]] = r["outcome"]
    body = ",\n".join(f"  {json.dumps(k)}: {json.dumps(dict(sorted(v.items())))}" for k, v in sorted(cells.items()))
    Path(path).write_text('{"cells": {\n' + body + "\n}}\n")


def read_cells(path):
    """``{"writer|reader|format|model": outcome}`` from :func:`write_cells`'s file."""
    return {f"{k}|{m}": o for k, per in json.loads(Path(path).read_text())["cells"].items() for m, o in per.items()}


def cmd_merge(args):
    reads = load_results(args.reads)
    manifests = load_manifests(args.written)
    data = compat_rules.table(args.data)
    results = reclassify(reads, data)
    baseline_path = Path(args.cells)
    baseline = read_cells(baseline_path) if baseline_path.is_file() else {}
    expected = [] if args.no_env_list else tox_env_list()
    envs = {**{w: m["environment"] for w, m in manifests.items()}, **{r: d["environment"] for r, d in reads.items()}}
    failures = gate(results, baseline, expected, set(manifests), set(reads), envs)
    command = args.command or ('tox -p auto -x "testenv.commands=python -m rnnspec.tools.compat write" && '
                               'tox -p auto -x "testenv.commands=python -m rnnspec.tools.compat read" && tox -e compat')
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(results, manifests, reads, data, failures, command))
    if not failures or args.accept:
        write_cells(baseline_path, results)
    print(f"rnnspec compat: {len(results)} artifacts from {len(manifests)} writers, {len(reads)} readers -> {out}")
    for f in failures[:40]:
        print("  GATE:", f)
    return 1 if failures and not args.accept else 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m rnnspec.tools.compat", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write", help="write the corpus in this environment")
    w.add_argument("--out", help="directory (default reports/compat/written/<env>)")
    w.add_argument("--models", nargs="*", help="corpus models (default: all)")
    w.add_argument("--formats", nargs="*", help="formats, e.g. json model:keras (default: all this version writes)")
    r = sub.add_parser("read", help="read every writer's corpus in this environment")
    r.add_argument("sources", nargs="*", help="writer directories or their parents (default reports/compat/written)")
    r.add_argument("-o", "--out", help="results (default reports/compat/read/<env>.json)")
    m = sub.add_parser("merge", help="merge the read results into the matrix (standard library only)")
    m.add_argument("--reads", default=str(READ))
    m.add_argument("--written", nargs="*", default=[str(WRITTEN)])
    m.add_argument("-o", "--output", default=str(ROOT / "docs" / "compat" / "matrix.md"))
    m.add_argument("--cells", default=str(ROOT / "docs" / "compat" / "cells.json"),
                   help="the committed outcomes: the gate's baseline, rewritten when the gate passes")
    m.add_argument("--accept", action="store_true", help="rewrite --cells even when the gate fails")
    m.add_argument("--no-env-list", action="store_true", help="do not require every tox.ini env_list environment")
    m.add_argument("--command", help="the command line to print in the matrix")
    m.add_argument("--data", help="the rules (default spec/data/compat.toml)")
    g = sub.add_parser("golden", help="copy written corpora into spec/data/golden/ (without large formats)")
    g.add_argument("sources", nargs="+", help="writer directories, e.g. reports/compat/written/k2-tf215")
    g.add_argument("--into", default=str(GOLDEN))
    args = parser.parse_args(argv)
    return {"write": cmd_write, "read": cmd_read, "merge": cmd_merge, "golden": cmd_golden}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
