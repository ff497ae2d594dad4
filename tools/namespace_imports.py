"""Rewrite old-style imports of the project's packages to the ``rnnspec`` namespace (issue #13).

The repository keeps its folders ``spec/``, ``reference/``, ``tools/`` and
``faults/``; installed, they are ``rnnspec.spec``, ``rnnspec.reference``,
``rnnspec.tools`` and ``rnnspec.faults`` (pyproject.toml, ``package-dir``).
This script rewrites what still names them the old way::

    python tools/namespace_imports.py            # the whole tree (tracked and untracked text files)
    python tools/namespace_imports.py FILE...    # only these files
    python tools/namespace_imports.py --check    # list what would change; exit 1 if anything would

It is idempotent (a second run changes nothing) and needs only the standard
library, so it runs before the package is installed (e.g. right after a
merge of a branch written against the old layout).

What it rewrites, with OLD one of spec, reference, tools, faults:

- in Python code, import statements (not other code, so a name bound by an
  import, e.g. ``reference.run_layer(...)``, stays as it is):
  ``from OLD[.sub] import x`` -> ``from rnnspec.OLD[.sub] import x``;
  ``import OLD.sub as y`` -> ``import rnnspec.OLD.sub as y``;
  ``import OLD [as y]`` -> ``from rnnspec import OLD [as y]``;
  ``import OLD.sub`` (binds OLD) -> ``from rnnspec import OLD; import rnnspec.OLD.sub``;
- in Python strings and comments, and anywhere in other text files (tox.ini,
  shell scripts, Markdown, TOML...): the same ``from``/``import`` forms
  (e.g. in ``python -c "..."``), and a dotted name of one of the project's
  modules, found on disk (``-m tools.report``, ``-p faults.plugin``,
  ``"spec.adapter"``), gets the ``rnnspec.`` prefix. A dotted name that is
  not a module (``spec.json``) is left alone.

File paths (``spec/test_structure.py``) are not names and stay as they are.
Skipped: JSON (recorded results), generated files (``do not edit by hand``
near the top: they change when regenerated), anything under .git, .tox,
build, dist, *.egg-info, and every file that contains the marker
``namespace_imports: skip-file`` (this script, and its test, which holds
old-style examples on purpose). A line that holds ``namespace_imports: keep``
(e.g. in a Markdown ``<!-- -->`` comment) is kept as it is: prose that
shows the old style on purpose.
"""

import argparse
import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "rnnspec"
PACKAGES = ("spec", "reference", "tools", "faults")
SKIP_MARKER = "namespace_imports: " + "skip-file"   # split, so that this file is skipped by the marker below
# namespace_imports: skip-file
KEEP_MARKER = "namespace_imports: " + "keep"
GENERATED = "do not edit by hand"   # e.g. docs/conformance/matrix.md (tools/report.py writes it)
TEXT_SUFFIXES = {".py", ".ini", ".toml", ".cfg", ".sh", ".md", ".txt", ".rst", ".yml", ".yaml"}
TEXT_NAMES = {"run"}   # .ci/run
SKIP_DIRS = {".git", ".tox", "build", "dist", "__pycache__", ".hypothesis", ".venv", "reports", ".whl"}

_PKG = "|".join(PACKAGES)
# `from OLD[.a.b] import` anywhere in text (a shell -c string, a Markdown code block, a docstring)
_FROM = re.compile(rf"(?<![\w.])(from\s+)({_PKG})((?:\.\w+)*\s+import\b)")
# `import OLD.sub as y` / `import OLD as y` / a bare `import OLD` ending the statement
_IMPORT_AS = re.compile(rf"(?<![\w.])import\s+({_PKG})((?:\.\w+)*)\s+as\s+(\w+)")
_IMPORT_BARE = re.compile(rf"(?<![\w.])import\s+({_PKG})(?=\s*(?:$|;|#|\"|'))", re.M)


def module_names(root=ROOT):
    """Dotted names of the project's modules and subpackages below each package, as found on disk."""
    names = set()
    for pkg in PACKAGES:
        base = root / pkg
        if not (base / "__init__.py").is_file():
            continue
        for path in base.rglob("*.py"):
            rel = path.relative_to(root).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            if len(parts) > 1 and all(p.isidentifier() for p in parts):
                names.add(".".join(parts))
    return names


def _dotted_pattern(names):
    if not names:
        return None
    alts = "|".join(sorted((re.escape(n) for n in names), key=len, reverse=True))
    return re.compile(rf"(?<![\w./-])({alts})(?![\w])")


def rewrite_text(text, dotted):
    """Rewrite free text: a string, a comment, a non-Python file."""
    text = _FROM.sub(rf"\1{NAMESPACE}.\2\3", text)
    text = _IMPORT_AS.sub(rf"import {NAMESPACE}.\1\2 as \3", text)
    text = _IMPORT_BARE.sub(rf"from {NAMESPACE} import \1", text)
    if dotted is not None:
        text = dotted.sub(rf"{NAMESPACE}.\1", text)
    return text


# --------------------------------------------------------------------------- Python

_STMT_START = {tokenize.NEWLINE, tokenize.NL, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING}
_FREE_TEXT = {tokenize.STRING, tokenize.COMMENT} | (
    {tokenize.FSTRING_MIDDLE} if hasattr(tokenize, "FSTRING_MIDDLE") else set())


def _import_edits(tokens, i):
    """Edits for the import statement whose first token is tokens[i] (``from`` or ``import``)."""
    tok = tokens[i]
    nxt = tokens[i + 1] if i + 1 < len(tokens) else None
    if nxt is None or nxt.type != tokenize.NAME or nxt.string not in PACKAGES:
        return []
    if tok.string == "from":
        return [(nxt.start, nxt.start, NAMESPACE + ".")]
    # `import a.b [as c], d ...`: handle the single-name forms; anything else is reported
    j = i + 1
    dotted_end = nxt.end
    while j + 2 < len(tokens) and tokens[j + 1].string == "." and tokens[j + 2].type == tokenize.NAME:
        j += 2
        dotted_end = tokens[j].end
    after = tokens[j + 1] if j + 1 < len(tokens) else None
    has_sub = j > i + 1
    if after is not None and after.string == "as":
        if has_sub:
            return [(nxt.start, nxt.start, NAMESPACE + ".")]
        return [(tok.start, nxt.start, f"from {NAMESPACE} import ")]
    if after is not None and after.string == ",":
        raise ValueError(f"line {tok.start[0]}: split `import a, b` into one import per line first")
    if not has_sub:
        return [(tok.start, nxt.start, f"from {NAMESPACE} import ")]
    # `import OLD.sub` binds OLD: bind it from the namespace, and import the submodule
    dotted = "".join(t.string for t in tokens[i + 1:j + 1])
    return [(tok.start, dotted_end, f"from {NAMESPACE} import {nxt.string}; import {NAMESPACE}.{dotted}")]


def rewrite_python(source, dotted):
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    edits = []
    prev = None
    for i, tok in enumerate(tokens):
        at_start = prev is None or prev.type in _STMT_START or (prev.type == tokenize.OP and prev.string == ";")
        if KEEP_MARKER in tok.line:
            pass
        elif tok.type == tokenize.NAME and tok.string in ("from", "import") and at_start:
            edits += _import_edits(tokens, i)
        elif tok.type in _FREE_TEXT:
            new = rewrite_text(tok.string, dotted)
            if new != tok.string:
                edits.append((tok.start, tok.end, new))
        if tok.type not in (tokenize.COMMENT,):
            prev = tok
    if not edits:
        return source
    lines = source.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))

    def pos(rc):
        return offsets[rc[0] - 1] + rc[1]

    out = source
    for start, end, new in sorted(edits, key=lambda e: pos(e[0]), reverse=True):
        out = out[:pos(start)] + new + out[pos(end):]
    return out


# --------------------------------------------------------------------------- files

def rewrite_file(path, dotted):
    """The file's new text, or None when it is left alone."""
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None
    if SKIP_MARKER in text or GENERATED in text[:500]:
        return None
    if path.suffix == ".py":
        new = rewrite_python(text, dotted)
    else:
        new = "".join(line if KEEP_MARKER in line else rewrite_text(line, dotted)
                      for line in text.splitlines(keepends=True))
    return new if new != text else None


def tree_files(root=ROOT):
    """Text files of the tree: what git lists (tracked and untracked, not ignored), else a walk."""
    try:
        out = subprocess.run(["git", "-C", str(root), "ls-files", "-co", "--exclude-standard", "-z"],
                             capture_output=True, text=True, check=True).stdout
        paths = [root / p for p in out.split("\0") if p]
    except (OSError, subprocess.CalledProcessError):
        paths = [p for p in root.rglob("*") if p.is_file()]
    for p in sorted(paths):
        rel = p.relative_to(root)
        if any(part in SKIP_DIRS or part.endswith(".egg-info") for part in rel.parts[:-1]):
            continue
        if p.is_file() and (p.suffix in TEXT_SUFFIXES or p.name in TEXT_NAMES):
            yield p


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", type=Path, help="files to rewrite (default: the whole tree)")
    ap.add_argument("--check", action="store_true", help="only list what would change; exit 1 if anything")
    ap.add_argument("--root", type=Path, default=ROOT, help="the checkout (default: this script's)")
    args = ap.parse_args(argv)
    root = args.root.resolve()
    dotted = _dotted_pattern(module_names(root))
    files = [f.resolve() for f in args.files] or list(tree_files(root))
    changed = []
    for path in files:
        try:
            new = rewrite_file(path, dotted)
        except (ValueError, SyntaxError, tokenize.TokenError) as exc:
            print(f"{path}: not rewritten: {exc}", file=sys.stderr)
            return 2
        if new is None:
            continue
        changed.append(path)
        if not args.check:
            path.write_text(new, encoding="utf-8")
    verb = "would rewrite" if args.check else "rewrote"
    for path in changed:
        print(f"{verb} {path.relative_to(root) if path.is_relative_to(root) else path}")
    print(f"namespace_imports: {verb} {len(changed)} file(s)")
    return 1 if (args.check and changed) else 0


if __name__ == "__main__":
    sys.exit(main())
