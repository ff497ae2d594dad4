"""The outcome of a read artifact, from what happened and ``spec/data/compat.toml`` (standard library only).

``spec/compat.py`` records what happened when a reader loaded an artifact -- the raw facts:
``loaded`` (False: the exception's class names, most derived first, and message), and when
it loaded, whether the outputs equal the writer's reference outputs (``matches``) and
whether they equal the formulas under the reader's own conventions
(``matches_reader_conventions``). :func:`classify` turns those into the one outcome of the
matrix, with the entry that lists it. ``tools/compat.py merge`` classifies again with the
data as it is now, so an edit of ``compat.toml`` needs no new read.
"""

import functools
import re
import tomllib
from pathlib import Path

from rnnspec.spec.versions import applies

DATA = Path(__file__).parent / "data"


@functools.cache
def table(path=None):
    return tomllib.loads(Path(path or DATA / "compat.toml").read_text())


def _listify(v):
    return v if isinstance(v, list) else [v]


def covers(entry, *, fmt, model_id, writer_env, reader_env):
    """Whether a compat.toml entry covers this artifact (format, corpus model, writer, reader)."""
    if "format" in entry and fmt not in _listify(entry["format"]):
        return False
    if "model" in entry and model_id not in _listify(entry["model"]):
        return False
    return applies(entry.get("writer"), writer_env) and applies(entry.get("reader"), reader_env)


def raises_as(entry, raw):
    """Whether the raw read's exception is the one the entry names (class in its MRO, message pattern)."""
    return (bool(set(raw.get("exception_mro", [])) & set(_listify(entry["exception"])))
            and re.search(entry["message"], raw.get("message", "")) is not None)


def unsupported_rule(*, fmt, reader_env, model_id=None, writer_env=None, data=None):
    """The ``[[unsupported]]`` entry saying this reader does not read ``fmt`` at all, or None."""
    return next((e for e in (data or table()).get("unsupported", [])
                 if covers(e, fmt=fmt, model_id=model_id, writer_env=writer_env or {}, reader_env=reader_env)), None)


def classify(raw, *, fmt, model_id, writer_env, reader_env, data=None):
    """``{"outcome", "listed", "fixed"?}`` for one raw read (see the module docstring)."""
    data = data or table()
    where = dict(fmt=fmt, model_id=model_id, writer_env=writer_env, reader_env=reader_env)
    if raw.get("harness_error"):
        return {"outcome": "harness-error", "listed": None}
    rule = unsupported_rule(data=data, **where)
    if rule is not None:
        return {"outcome": "unsupported", "listed": rule["id"]}
    if raw.get("not_attempted"):   # skipped as unsupported by a rule that no longer applies: read it again
        return {"outcome": "harness-error", "listed": None}
    findings = [e for e in data.get("finding", []) if covers(e, **where)]
    if not raw["loaded"]:
        for e in data.get("refusal", []):
            if covers(e, **where) and raises_as(e, raw):
                return {"outcome": "refused", "listed": e["id"]}
        for e in findings:
            if e["outcome"] == "crash" and raises_as(e, raw):
                return {"outcome": "crash", "listed": e["id"]}
        return {"outcome": "crash", "listed": None}
    if raw["matches"]:
        stale = [e["id"] for e in findings]
        return {"outcome": "match", "listed": None, **({"fixed": stale} if stale else {})}
    for e in findings:
        if e["outcome"] != "differs":
            continue
        if e.get("model_of_values", "any") == "any" or (
                e["model_of_values"] == "reader-conventions" and raw.get("matches_reader_conventions")):
            return {"outcome": "differs", "listed": e["id"]}
    return {"outcome": "differs", "listed": None}
