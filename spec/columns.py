"""What a column of the conformance matrix is: its class, and the spec it ran.

**Classes** (``spec/data/columns.toml``, the one definition; README "Columns"):

- ``supported``: tox's ``env_list``, its ``jax`` and ``torch`` labels, and every
  backend column added later. They gate, and all of them are rerun at one spec hash.
- ``device``: the GPU columns. Run when a device is lent; shown apart, with their hash.
- ``never-gating``: keras-nightly and the release sweep. They report, never gate.

A column whose name matches none of the lists (a user's own CI environment) is
gated like a supported one.

**The spec hash** (:func:`spec_hash`) is a digest of what decides a column's
outcomes: the content of ``spec/`` (the chapters, the harness, ``spec/data/``) and
``reference/``. Not the git commit: a docs commit moves HEAD and changes no
outcome. Every report records it (``environment.spec_hash``); a supported column
whose hash differs from the spec's is *stale*: it says what an older spec found.

Standard library only: ``tools/report.py`` and the gate read it without Keras.
"""

import fnmatch
import functools
import hashlib
import importlib.util
import tomllib
from pathlib import Path

COLUMNS = Path(__file__).resolve().parent / "data" / "columns.toml"

SUPPORTED, DEVICE, NEVER_GATING = "supported", "device", "never-gating"
#: the classes in the order the matrix shows them
CLASSES = (SUPPORTED, DEVICE, NEVER_GATING)

#: the packages whose content is the spec, by the name their files are hashed under
SPEC_PACKAGES = {"spec": "rnnspec.spec", "reference": "rnnspec.reference"}


@functools.cache
def definitions(path=COLUMNS):
    """``{"supported": [names], "device": [patterns], "never_gating": [patterns]}``."""
    data = tomllib.loads(Path(path).read_text())
    return {k: list(data.get(k, [])) for k in ("supported", "device", "never_gating")}


def column_class(env_name, path=COLUMNS):
    """``"supported"``, ``"device"`` or ``"never-gating"`` for a column's environment name."""
    d = definitions(path)
    name = str(env_name or "")
    if name in d["supported"]:
        return SUPPORTED
    if any(fnmatch.fnmatch(name, p) for p in d["device"]):
        return DEVICE
    if any(fnmatch.fnmatch(name, p) for p in d["never_gating"]):
        return NEVER_GATING
    return SUPPORTED


def supported_columns(path=COLUMNS):
    return list(definitions(path)["supported"])


# --------------------------------------------------------------------------- the spec hash

def _spec_files(root):
    """The files of one package that decide outcomes: its modules and its data (what the wheel ships)."""
    for p in sorted(root.rglob("*")):
        if not p.is_file() or "__pycache__" in p.parts:
            continue
        rel = p.relative_to(root)
        if p.suffix in (".py", ".toml") or rel.parts[:2] == ("data", "golden"):
            yield rel, p


def hash_of(roots):
    """12 hex digits of sha256 over the path (under its prefix) and content of every file
    :func:`_spec_files` selects in ``roots``, ``{prefix: folder}``."""
    digest = hashlib.sha256()
    for prefix, root in sorted(roots.items()):
        for rel, p in _spec_files(Path(root)):
            digest.update(f"{prefix}/{rel.as_posix()}".encode() + b"\0")
            digest.update(p.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


@functools.cache
def spec_hash():
    """The hash of ``spec/`` and ``reference/`` (modules, ``spec/data/``) where rnnspec is
    installed from: the same in a checkout and an installed wheel."""
    roots = {}
    for prefix, package in SPEC_PACKAGES.items():
        found = importlib.util.find_spec(package)
        roots[prefix] = Path(list(found.submodule_search_locations)[0])
    return hash_of(roots)


def staleness(reports, reference=None):
    """``{env_name: "current" | "stale" | "unknown"}`` for ``reports`` (normalised dicts).

    ``reference`` is the spec hash the columns must carry (default: this rnnspec's own,
    :func:`spec_hash`). A report with no recorded hash (written before the hash existed)
    is ``"unknown"``, which counts as stale.
    """
    reference = reference or spec_hash()
    out = {}
    for r in reports:
        env = r["environment"]
        h = env.get("spec_hash")
        out[env.get("env_name")] = "unknown" if not h else "current" if h == reference else "stale"
    return out
