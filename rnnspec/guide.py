"""The behavior guide: a static HTML site from conformance reports, the chapters and ``spec/data/``.

``rnnspec report guide REPORTS... -o DIR`` writes:

- ``index.html``: the overview -- the environments, and per chapter a grid of
  its claims' outcomes per environment; the findings and conventions at a glance;
- ``<chapter>.html``: one page per chapter of the spec (``spec/test_*.py``):
  its docstring as prose, the formulas it holds Keras to (the docstrings of
  ``reference/``), and each claim with its outcome per environment as a
  coloured grid (the cell's title gives the examples and the reason);
- ``findings.html``: every finding listed in ``spec/data/`` (divergences,
  crashes, saving, saved files across versions) with its reason, the
  versions it applies to, the environments where the reports hit it, and its
  reproducer;
- ``conventions.html``: the conventions (``spec/data/conventions.toml``)
  resolved for each environment, differing values marked.

The chapters are read with ``ast`` (never imported: that would import Keras),
so the guide renders anywhere rnnspec is installed. Templates: ``rnnspec/templates/``
(jinja2, package data).
"""

import ast
import html
import importlib.util
import re
import tomllib
from pathlib import Path

import jinja2
from markupsafe import Markup

from rnnspec.spec import versions
from rnnspec.spec.outcomes import GATE_FAILING
from rnnspec.tools import findings as _findings
from rnnspec.spec.columns import CLASSES, column_class, spec_hash as _spec_hash
from rnnspec.tools.report import cell, claims_of, column_status, env_sort_key
from rnnspec.tools.repro import divergence_snippet
from rnnspec.tools.upgrade import CONVENTION_MEANINGS, CONVENTIONS, divergences_hit, env_label

TEMPLATES = Path(__file__).parent / "templates"

#: the reference modules whose formulas each chapter holds Keras to
FORMULAS = {
    "structure": ["structure"],
    "equivalence": ["cells", "layer"],
    "gradients": ["gradients"],
    "training": ["training"],
    "stateful": ["layer"],
    "dropout": ["dropout"],
    "initializers": ["activations"],
    "composition": ["layer"],
}

#: outcome -> (short label in a grid cell, CSS class)
SHORT = {
    "passed": ("pass", "passed"), "diverged": ("div", "diverged"), "refused": ("ref", "refused"),
    "unsupported": ("n/s", "unsupported"), "skipped": ("skip", "skipped"), "harness-gap": ("gap", "skipped"),
    "fixed": ("FIXED", "failing"),
    "failed": ("FAIL", "failing"), "crashed": ("CRASH", "failing"), "harness-error": ("H.ERR", "failing"),
}


def _package_dir(name):
    spec = importlib.util.find_spec(name)
    return Path(list(spec.submodule_search_locations)[0])


# --------------------------------------------------------------------------- docstrings -> HTML

def _inline(text):
    out = html.escape(text, quote=False)
    out = re.sub(r"``(.+?)``", r"<code>\1</code>", out)
    out = re.sub(r":(?:mod|func|data|class):`~?(.+?)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return out


def rst_to_html(text):
    """The small reStructuredText subset of rnnspec's docstrings: paragraphs, ``-`` lists,
    ``::`` literal blocks, ``====`` tables (as literal blocks), inline ``code``."""
    lines = (text or "").splitlines()
    out, i, n = [], 0, len(lines)
    while i < n:
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        if re.match(r"^\s*={3,}", line):   # a simple table: keep it as it is
            block = []
            while i < n and lines[i].strip():
                block.append(lines[i])
                i += 1
            out.append(f"<pre class='table'>{html.escape(chr(10).join(block))}</pre>")
            continue
        if line.lstrip().startswith("- "):
            items = []
            while i < n and lines[i].strip() and (lines[i].lstrip().startswith("- ") or items):
                if lines[i].lstrip().startswith("- "):
                    items.append(lines[i].lstrip()[2:])
                else:
                    items[-1] += " " + lines[i].strip()
                i += 1
            out.append("<ul>" + "".join(f"<li>{_inline(it)}</li>" for it in items) + "</ul>")
            continue
        para = []
        while i < n and lines[i].strip() and not lines[i].lstrip().startswith("- ") \
                and not re.match(r"^\s*={3,}", lines[i]):
            para.append(lines[i].strip())
            i += 1
        text_ = " ".join(para)
        literal = text_.endswith("::")
        if literal:
            text_ = text_[:-1] if not text_.endswith(" ::") else text_[:-3]
        if text_:
            out.append(f"<p>{_inline(text_)}</p>")
        if literal:   # the indented block that follows
            while i < n and not lines[i].strip():
                i += 1
            indent = len(lines[i]) - len(lines[i].lstrip()) if i < n else 0
            block = []
            while i < n and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) >= indent > 0):
                block.append(lines[i][indent:])
                i += 1
            out.append(f"<pre class='formula'>{html.escape(chr(10).join(block).rstrip())}</pre>")
    return Markup("\n".join(out))


# --------------------------------------------------------------------------- the chapters

def chapters():
    """``[{slug, module, number, title, doc, tests: {name: first docstring line}}]``, in chapter order."""
    spec_dir = _package_dir("rnnspec.spec")
    out = []
    for path in sorted(spec_dir.glob("test_*.py")):
        tree = ast.parse(path.read_text())
        doc = ast.get_docstring(tree) or ""
        first, _, rest = doc.partition("\n")
        m = re.match(r"Chapter\s+(\d+)([a-z]?)\s*--\s*(.*)", first)
        number = (int(m.group(1)), m.group(2)) if m else (99, "")
        title = m.group(3) if m else first or path.stem
        tests = {}
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
                tdoc = ast.get_docstring(node) or ""
                tests[node.name] = tdoc.strip().splitlines()[0] if tdoc.strip() else node.name
        slug = path.stem.removeprefix("test_")
        out.append({"slug": slug, "module": f"spec/{path.name}",
                    "number": f"{number[0]}{number[1]}" if m else "", "sort": number,
                    "title": Markup(_inline(title.rstrip(".")[:1].upper() + title.rstrip(".")[1:])),
                    "doc": rst_to_html(rest.strip()), "tests": tests})
    out.sort(key=lambda c: c["sort"])
    return out


def formulas(slug):
    ref_dir = _package_dir("rnnspec.reference")
    out = []
    for name in FORMULAS.get(slug, []):
        path = ref_dir / f"{name}.py"
        if path.is_file():
            doc = ast.get_docstring(ast.parse(path.read_text())) or ""
            out.append({"module": f"reference/{name}.py", "html": rst_to_html(doc)})
    return out


# --------------------------------------------------------------------------- the site

def _env_columns(reports):
    reports = sorted(reports, key=lambda r: (CLASSES.index(column_class(r["environment"].get("env_name"))),
                                             env_sort_key(r)))
    cols = []
    for r, (klass, spec_hash, status) in zip(reports, column_status(reports)):
        env = r["environment"]
        keras = env.get("keras", "?")
        pkg = " tf-keras" if env.get("keras_package") == "tf_keras" else ""
        backend = env.get("backend", "?")
        cols.append({"name": env.get("env_name", "?"), "keras": f"{keras}{pkg}", "backend": backend,
                     "label": env_label(env), "tensorflow": env.get("tensorflow") or "—",
                     "devices": ", ".join(env.get("devices") or []), "profile": r.get("profile", "?"),
                     "python": env.get("python", "?"), "source": Path(r["_source"]).name,
                     "klass": klass, "spec_hash": spec_hash or "none", "status": status,
                     "stale": status in ("stale", "unknown"),
                     "claims": claims_of(r), "report": r})
    return cols


def _grid_cell(summary):
    if summary is None:
        return {"label": "—", "cls": "absent", "title": "not run in this environment"}
    label, cls = SHORT.get(summary["outcome"], (summary["outcome"], "failing"))
    title = cell(summary).replace("**", "")
    if summary["reasons"] and summary["outcome"] not in ("passed",):
        title += " — " + summary["reasons"][0]
    return {"label": label, "cls": cls, "title": title[:400]}


def _claims_for(prefix, cols, tests):
    keys = sorted({k for c in cols for k in c["claims"] if k.startswith(prefix + "::")})
    rows = []
    for key in keys:
        name = key.split("::", 1)[1]
        base = name.split("[")[0]
        title = next((c["claims"][key]["title"] for c in cols if key in c["claims"]), tests.get(base, name))
        cells = [_grid_cell(c["claims"].get(key)) for c in cols]
        reasons = []
        for c in cols:
            s = c["claims"].get(key)
            if s and s["outcome"] in GATE_FAILING | {"diverged"} and s["reasons"]:
                reasons.append((c["name"], s["outcome"], s["reasons"][0]))
            elif s and s["outcome"] == "diverged":
                reasons.append((c["name"], "diverged", ", ".join(sorted(s["examples"]["models"]))))
        rows.append({"key": key, "name": name, "title": title, "cells": cells, "reasons": reasons,
                     "anchor": re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")})
    return rows


def _tally(rows, ncols):
    """Per environment column: counts of each cell class."""
    out = []
    for j in range(ncols):
        counts = dict.fromkeys(("passed", "diverged", "refused", "skipped", "unsupported", "failing", "absent"), 0)
        for r in rows:
            cls = r["cells"][j]["cls"]
            counts[cls] = counts.get(cls, 0) + 1
        out.append(counts)
    return out


def build(reports):
    """The guide's pages: ``{file name: HTML}``."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                             autoescape=jinja2.select_autoescape(["html"]),
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    cols = _env_columns(reports)
    chaps = chapters()
    for ch in chaps:
        ch["rows"] = _claims_for(ch["module"], cols, ch["tests"])
        ch["tally"] = _tally(ch["rows"], len(cols))
        ch["formulas"] = formulas(ch["slug"])
        ch["failing"] = sum(r["cells"][j]["cls"] == "failing" for r in ch["rows"] for j in range(len(cols)))
    chaps = [ch for ch in chaps if ch["rows"] or ch["tests"]]

    # findings: listed in spec/data/, with the environments where the reports hit them
    hits = {}
    for c in cols:
        for key, n in divergences_hit(c["report"]).items():
            f_id = key
            entry = _findings.lookup(key)
            if entry is not None and key not in _findings.catalogue():
                f_id = next(k for k, v in _findings.catalogue().items() if v is entry)
            hits.setdefault(f_id, []).append((c["name"], n))
    finds = []
    for f_id, f in _findings.catalogue().items():
        applies = [] if f.get("across_versions") else \
            [c["name"] for c in cols if versions.applies(f["when"], c["report"]["environment"])]
        reproducer = f.get("reproducer") or ""
        if not reproducer and f["kind"] == "divergence" and "case" in f.get("entry", {}):
            reproducer = divergence_snippet(f["entry"])
        finds.append({"id": f_id, "kind": f["kind"], "source": f["source"], "reason": f["reason"],
                      "when": f.get("applies_text") or _findings.when_text(f["when"]), "applies": applies,
                      "across_versions": f.get("across_versions", False),
                      "hits": hits.get(f_id, []), "detail": f.get("detail", ""),
                      "upstream": f.get("upstream", ""), "reproducer": reproducer,
                      "claims": f.get("claims", []),
                      "anchor": re.sub(r"[^A-Za-z0-9_-]+", "-", f_id).strip("-")})
    kinds = ["divergence", "crash", "load crash", "config loss", "saved files"]
    finds.sort(key=lambda f: (kinds.index(f["kind"]) if f["kind"] in kinds else 9, f["id"]))

    # conventions per environment
    raw = tomllib.loads(Path(CONVENTIONS).read_text())
    per_env = [versions.conventions_for(c["report"]["environment"], raw) for c in cols]
    conv_rows = []
    for key in sorted(set().union(*per_env) if per_env else raw["default"],
                      key=lambda k: (list(CONVENTION_MEANINGS).index(k) if k in CONVENTION_MEANINGS else 99, k)):
        values = [str(p.get(key)) for p in per_env]
        groups = {}
        for c, v in zip(cols, values):
            groups.setdefault(v, []).append(c["name"])
        conv_rows.append({"key": key, "groups": list(groups.items()), "differs": len(groups) > 1,
                          "meaning": Markup(re.sub(r"`(.+?)`", r"<code>\1</code>",
                                                   html.escape(CONVENTION_MEANINGS.get(key, ""), quote=False)))})

    # behavior the docs leave open, which the reference follows (spec/data/undocumented.toml)
    undocumented = tomllib.loads((Path(CONVENTIONS).parent / "undocumented.toml").read_text())["convention"]

    ctx = {"cols": cols, "chapters": chaps, "findings": finds, "conventions": conv_rows,
           "undocumented": undocumented,
           "failing_total": sum(ch["failing"] for ch in chaps),
           "spec_hash": _spec_hash(), "stale_total": sum(c["stale"] for c in cols)}
    pages = {"index.html": env.get_template("index.html").render(page="index", **ctx),
             "findings.html": env.get_template("findings.html").render(page="findings", **ctx),
             "conventions.html": env.get_template("conventions.html").render(page="conventions", **ctx)}
    for ch in chaps:
        pages[f"{ch['slug']}.html"] = env.get_template("chapter.html").render(page=ch["slug"], chapter=ch, **ctx)
    pages["style.css"] = (TEMPLATES / "style.css").read_text()
    return pages


def render(reports, output):
    """Write the guide into the folder ``output``; returns the file names written."""
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    pages = build(reports)
    for name, text in pages.items():
        (out / name).write_text(text.rstrip() + "\n")
    return sorted(pages)
