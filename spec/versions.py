"""Version bounds and environment matching: the one implementation.

Data files (``spec/data/*.toml``) say where an entry applies with a ``when``
table: ``keras = ">=3,<3.12"``, ``tensorflow = ">=2.16"``, ``numpy = ">=2"``, ``backend =
"jax"`` (or a list), ``keras_package = "tf_keras"``. This module (standard
library only, so that ``tools/`` can use it without Keras) decides whether an
environment -- a dict with those keys, as ``rnnspec.spec.report.environment()``
returns and every report records -- falls inside.
"""

import re

_CLAUSE = re.compile(r"\s*(>=|<=|==|<|>)\s*([\d.]+)\s*$")


def version_tuple(version):
    """``"3.15.1rc0"`` -> ``(3, 15, 1)``; ``None`` or ``""`` -> ``()``."""
    return tuple(int(p) for p in re.findall(r"\d+", str(version or ""))[:3])


def in_bounds(version, bounds):
    """Whether ``version`` satisfies every comma-separated clause of ``bounds`` (``""``: always).

    A bound compares on as many components as it names: ``<3.12`` admits 3.11.9.
    """
    mine = version_tuple(version) if not isinstance(version, tuple) else version
    for clause in filter(None, (c.strip() for c in (bounds or "").split(","))):
        m = _CLAUSE.match(clause)
        if not m:
            raise ValueError(f"bad version bound {clause!r} in {bounds!r}; use e.g. '>=3,<3.12'")
        op, num = m.groups()
        bound = version_tuple(num)
        v = mine[:len(bound)]
        if not {">=": v >= bound, "<=": v <= bound, "==": v == bound,
                "<": v < bound, ">": v > bound}[op]:
            return False
    return True


def _as_list(value):
    return value if isinstance(value, list) else [value]


def applies(when, env):
    """Whether a data entry's ``when`` table covers the environment ``env``."""
    when = when or {}
    if "keras" in when and not in_bounds(env.get("keras"), when["keras"]):
        return False
    if "tensorflow" in when and not (env.get("tensorflow") and in_bounds(env["tensorflow"], when["tensorflow"])):
        return False
    if "numpy" in when and not (env.get("numpy") and in_bounds(env["numpy"], when["numpy"])):
        return False
    if "backend" in when and env.get("backend") not in _as_list(when["backend"]):
        return False
    if "keras_package" in when and env.get("keras_package") not in _as_list(when["keras_package"]):
        return False
    if "device" in when and not set(_as_list(when["device"])) <= set(env.get("devices") or ["cpu"]):
        return False
    return True


def conventions_for(env, raw):
    """The conventions (``spec/data/conventions.toml``, parsed: ``raw``) that hold in ``env``.

    ``[default]``, overridden by every ``[[rule]]`` whose ``keras`` / ``backend``
    bounds cover ``env``, later rules last. The adapter resolves the installed
    Keras with it; the upgrade note (``rnnspec report diff``) resolves the two
    environments of two reports.
    """
    out = dict(raw["default"])
    for rule in raw.get("rule", []):
        when = {k: rule[k] for k in ("keras", "backend") if k in rule}
        if applies(when, env):
            out.update(rule["set"])
    return out
