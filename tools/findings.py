"""Every finding that ``spec/data/`` lists, by the id a report counts examples under.

A report's ``examples.models`` counts the examples asserted against each listed
model of what Keras does instead of the formulas; its keys come from four files:

- ``divergences.toml`` ``[[divergence]]``: a value model or a raising one (key: its id,
  ``"ID (raises)"`` for a raising one);
- ``refusals.toml`` ``[[crash]]``: a crash where a refusal is documented (its id);
- ``saving.toml`` ``[[load_crash]]``: a saved model that does not load (its id), and
  ``[[loss]]``: arguments ``get_config`` drops (key ``"config-losses: ARG, ..."``);
- ``compat.toml`` ``[[finding]]``: saved files across versions (the compatibility matrix).

:func:`catalogue` gives each one a kind, its reason, its ``when`` and its reproducer
(where the data has one). Standard library only.
"""

import functools
import tomllib

from rnnspec.tools.report import DIVERGENCES

DATA = DIVERGENCES.parent


def _read(name):
    path = DATA / name
    return tomllib.loads(path.read_text()) if path.is_file() else {}


def _text(value):
    return " ".join(str(value or "").split())


@functools.cache
def catalogue():
    """``{id: {"kind", "source", "reason", "when", "claims", "reproducer", "upstream"}}``."""
    out = {}
    for d in _read("divergences.toml").get("divergence", []):
        out[d["id"]] = {"kind": "divergence", "source": "spec/data/divergences.toml",
                        "reason": _text(d.get("reason")), "when": d.get("when") or {},
                        "claims": d.get("claims", []), "upstream": d.get("upstream", ""),
                        "reproducer": (d.get("reproducer") or "").strip(), "entry": d}
    for c in _read("refusals.toml").get("crash", []):
        out[c["id"]] = {"kind": "crash", "source": "spec/data/refusals.toml",
                        "reason": _text(c.get("why")), "when": c.get("when") or {},
                        "claims": [c["claim"]] if c.get("claim") else [],
                        "detail": f"raises {c.get('exception', '')}: {c.get('message', '')}",
                        "frame": c.get("frame", "")}
    saving = _read("saving.toml")
    for c in saving.get("load_crash", []):
        out[c["id"]] = {"kind": "load crash", "source": "spec/data/saving.toml",
                        "reason": _text(c.get("reason")), "when": c.get("when") or {},
                        "claims": ["spec/test_serialization.py::*"]}
    losses = {}
    for loss in saving.get("loss", []):
        losses.setdefault(loss["argument"], []).append(loss)
    for arg, rows in losses.items():
        out[f"config-losses: {arg}"] = {
            "kind": "config loss", "source": "spec/data/saving.toml",
            "reason": _text(rows[0].get("reason")),
            "when": rows[0].get("when") or {},
            "claims": ["spec/test_serialization.py::*"],
            "detail": f"{', '.join(r['layer'] for r in rows)}.get_config() drops `{arg}`"}
    for f in _read("compat.toml").get("finding", []):
        formats = f.get("format") or []
        formats = [formats] if isinstance(formats, str) else formats
        out[f["id"]] = {"kind": "saved files", "source": "spec/data/compat.toml",
                        "reason": _text(f.get("reason") or f.get("why")), "when": f.get("when") or {},
                        "claims": [], "reproducer": (f.get("reproducer") or "").strip(),
                        "applies_text": f"written under {when_text(f.get('writer'))}, read under "
                                        f"{when_text(f.get('reader'))}: {f.get('outcome', '?')}"
                                        + (f" ({', '.join(formats)})" if formats else ""),
                        "across_versions": True}
    return out


def lookup(ident):
    """The catalogue entry of a report key (``"ID (raises)"`` -> ``ID``; a combined
    ``"config-losses: a, b"`` -> the first argument's), or None."""
    ident = ident.removesuffix(" (raises)")
    cat = catalogue()
    if ident in cat:
        return cat[ident]
    if ident.startswith("config-losses: "):
        for arg in ident.removeprefix("config-losses: ").split(", "):
            if f"config-losses: {arg}" in cat:
                return cat[f"config-losses: {arg}"]
    return None


def when_text(when):
    return ", ".join(f"{k} {v if not isinstance(v, list) else ' or '.join(v)}"
                     for k, v in (when or {}).items()) or "every environment"
