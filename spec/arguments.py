"""Which documented arguments the claims exercise: the recorder, the argument map and the coverage.

**The recorder.** :func:`install` wraps the constructor of every class of the
recurrent API (:data:`rnnspec.spec.inventory.CLASSES`) and the ``__call__`` of
the recurrent layers and ``Bidirectional``. When rnnspec's own code (a module
named ``rnnspec.*``, not Keras calling itself, as in ``super().__init__`` or
``from_config``) constructs or calls one, each argument it passes -- by name
or by position, bound with the signature -- is noted for the claim that runs
(:func:`rnnspec.spec.report.note_argument`) as a short key of its value: the
``repr`` of a scalar or string, the class and config of an initializer,
regularizer or constraint, the class of a layer or cell, a digest of the
values of an array or an eager tensor, the shape of a symbolic one. Arguments
left at their defaults are not noted: only what a claim passes counts.

**The map** (``spec/data/arguments.toml``) gives each documented argument the
claims that specify it (patterns of claim ids), or an out-of-scope reason.

**Coverage.** An argument is *exercised* in a run when the claims mapped to it
passed it with at least two different values. ``spec/test_contract.py`` fails
when the installed Keras documents an argument the map does not cover; the
report plugin (``spec/report.py``) fails the run, as the claim
``spec/test_contract.py::test_every_mapped_argument_is_exercised``, when a
mapped argument whose claims ran was never exercised.
"""

import ast
import fnmatch
import functools
import hashlib
import inspect
import sys
import tomllib
from pathlib import Path

from rnnspec.spec import versions
from rnnspec.spec.inventory import CLASSES

DATA = Path(__file__).parent / "data"
MAP_FILE = DATA / "arguments.toml"
#: A claim notes at most this many distinct values per argument: two make it exercised.
VALUES_PER_CLAIM = 2
EXERCISED_CLAIM = "spec/test_contract.py::test_every_mapped_argument_is_exercised"
#: Argument coverage is judged (and can fail the run) in profiles that draw at least this many
#: examples per claim (ci: 40); dev (15) and debug (10) report it, as a skipped claim.
MIN_EXAMPLES_TO_JUDGE = 40

_CALL_CLASSES = ("RNN", "Bidirectional")


# --------------------------------------------------------------------------- the argument map

@functools.cache
def load_map(path=MAP_FILE):
    """The argument map: ``[{"name", "classes", "claims" | "out_of_scope", "why"}]``."""
    return tomllib.loads(Path(path).read_text())["argument"]


def entry_for(cls, arg, where="init", env=None, entries=None):
    """The first map entry for argument ``arg`` (``where``: "init" or "call") of class ``cls`` in
    environment ``env``; None when the map has none. An entry's ``when`` table
    (``spec/versions.py``) limits it to some environments; without ``env`` it is not consulted."""
    for entry in load_map() if entries is None else entries:
        if fnmatch.fnmatchcase(arg, entry["name"]) and any(fnmatch.fnmatchcase(cls, c) for c in entry["classes"]) \
                and entry.get("where", where) == where \
                and (env is None or versions.applies(entry.get("when"), env)):
            return entry
    return None


def claims_match(patterns, claim):
    return any(fnmatch.fnmatchcase(claim, p) for p in patterns)


@functools.cache
def spec_claim_ids():
    """Every claim id of the spec (``spec/test_x.py::test_y``), read from the chapter files."""
    ids = []
    for path in sorted(Path(__file__).parent.glob("test_*.py")):
        tree = ast.parse(path.read_text())
        ids += [f"spec/{path.name}::{node.name}" for node in tree.body
                if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")]
    return tuple(ids)


# --------------------------------------------------------------------------- value keys

def _digest(data):
    return hashlib.blake2b(data, digest_size=6).hexdigest()


def value_key(value):
    """A short key of a value: equal values give equal keys (see the module docstring)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(value_key(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{value_key(v)}" for k, v in sorted(value.items())) + "}"
    name = type(value).__name__
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        try:
            import numpy as np
            arr = np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value)
            return f"array{arr.shape}:{_digest(arr.tobytes())}"
        except Exception:   # noqa: BLE001 -- a symbolic tensor (graph tracing): its shape only
            return f"{name}{tuple(getattr(value, 'shape', ()))}"
    if hasattr(value, "get_config") and not hasattr(value, "built"):   # initializers, regularizers...
        try:
            return f"{name}({_digest(repr(sorted(value.get_config().items())).encode())})"
        except Exception:   # noqa: BLE001
            return name
    return name


# --------------------------------------------------------------------------- the recorder

def _from_rnnspec(depth=2):
    """Whether the frame ``depth`` levels up (the caller of the wrapped method) is rnnspec's code."""
    try:
        frame = sys._getframe(depth)
    except ValueError:
        return False
    return str(frame.f_globals.get("__name__", "")).startswith("rnnspec.")


def _note(cls_name, bound):
    from rnnspec.spec.report import note_argument
    for arg, value in bound.items():
        if arg == "self":
            continue
        if arg == "kwargs" and isinstance(value, dict):
            for k, v in value.items():
                note_argument(cls_name, k, value_key(v))
            continue
        note_argument(cls_name, arg, value_key(value))


def _api_class(obj, default):
    for klass in type(obj).__mro__:
        if klass.__name__ in CLASSES:
            return klass.__name__
    return default


def _wrap(cls, attr, cls_name):
    original = cls.__dict__.get(attr) or getattr(cls, attr)
    if getattr(original, "_rnnspec_recorder", False):
        return
    target = inspect.unwrap(original)
    try:
        sig = inspect.signature(target if attr == "__init__" else getattr(cls, "call"))
    except (TypeError, ValueError):
        return

    @functools.wraps(original)
    def recorded(self, *args, **kwargs):
        if _from_rnnspec():
            try:
                bound = sig.bind_partial(self, *args, **kwargs).arguments
            except TypeError:
                bound = dict(kwargs)
            _note(cls_name if attr == "__init__" else _api_class(self, cls_name), bound)
        return original(self, *args, **kwargs)

    recorded._rnnspec_recorder = True
    # Keras 3's Operation.__new__ reads the constructor with inspect.getfullargspec, which does
    # not follow __wrapped__ but does honour __signature__: it must see the original arguments
    recorded.__signature__ = inspect.signature(original)
    setattr(cls, attr, recorded)


def install(keras):
    """Wrap the constructors of the recurrent API and the calls of RNN and Bidirectional (once)."""
    for name in CLASSES:
        cls = getattr(keras.layers, name, None)
        if cls is not None:
            _wrap(cls, "__init__", name)
    for name in _CALL_CLASSES:
        cls = getattr(keras.layers, name, None)
        if cls is not None:
            _wrap(cls, "__call__", name)


# --------------------------------------------------------------------------- coverage

def coverage(documented, claims, env=None, entries=None):
    """Argument coverage of one run.

    ``documented``: ``[(class, argument, where)]`` (:func:`rnnspec.spec.inventory.documented`);
    ``claims``: the report's ``{claim id: claim}``, each with ``arguments`` (``{"Class.arg": [keys]}``)
    and ``outcome``. Every documented argument gets a status: ``exercised``, ``out-of-scope``,
    ``unmapped`` (fails spec/test_contract.py), ``unexercised`` (every claim mapped to it ran, and
    none passed it with two values: fails the run) or ``not-run`` (a claim mapped to it did not run
    in this session -- a partial run, ``-k`` or one chapter -- and the others did not exercise it).
    """
    entries = load_map() if entries is None else entries
    ran = {k: c for k, c in claims.items() if c.get("outcome") not in (None, "skipped", "unsupported")}
    rows = []
    for cls, arg, where in documented:
        entry = entry_for(cls, arg, where, env, entries)
        row = {"class": cls, "argument": arg, "where": where}
        if entry is None:
            row["status"] = "unmapped"
        elif "out_of_scope" in entry:
            row.update(status="out-of-scope", why=entry["out_of_scope"])
        else:
            mapped = {k: c for k, c in ran.items() if claims_match(entry["claims"], k)}
            missing = [i for i in spec_claim_ids() if claims_match(entry["claims"], i) and i not in claims]
            values = set()
            for c in mapped.values():
                values.update((c.get("arguments") or {}).get(f"{cls}.{arg}", []))
            row.update(claims=sorted(mapped), values=len(values))
            row["status"] = "exercised" if len(values) >= 2 else "not-run" if missing else "unexercised"
        rows.append(row)
    counts = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    in_scope = len(rows) - counts.get("out-of-scope", 0)
    return {
        "documented": len(rows),
        "mapped": len(rows) - counts.get("unmapped", 0),
        "in_scope": in_scope,
        "exercised": counts.get("exercised", 0),
        "counts": counts,
        "rows": rows,
    }
