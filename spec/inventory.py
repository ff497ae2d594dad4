"""What the installed Keras documents: every argument of the recurrent API, from three sources.

For each class of :data:`CLASSES` (``SimpleRNN``, ``LSTM``, ``GRU``, ``RNN``,
``Bidirectional`` and the cells ``SimpleRNNCell``, ``LSTMCell``, ``GRUCell``,
``StackedRNNCells``) the inventory reconciles, argument by argument:

- ``inspect.signature`` of the constructor (``__init__``) and of ``call``;
- the docstring's ``Args:`` (or ``Arguments:``) and ``Call arguments:``
  sections, read with ``docstring_parser`` (Google style). Keras 2's
  docstrings continue some descriptions at the item's own indentation, which
  the parser reads as a new item without a colon: a continuation line is
  indented one step further before parsing. A section without any
  ``name: text`` item (Keras 2's Bidirectional: "The call arguments for this
  layer are the same as those of the wrapped RNN layer") is kept as prose;
- the keys of ``get_config()`` of a small instance.

A name found in only some of them is reported so: documented but not accepted,
accepted (through ``**kwargs`` or the signature) but undocumented, configured
but neither. Keras is passed in (the adapter's), so this module imports no
Keras itself; ``python -m rnnspec.tools.api_inventory`` writes the inventory
of an environment, and ``spec/test_contract.py`` holds it against the
argument map (``spec/data/arguments.toml``).
"""

import inspect
import re

import docstring_parser
from docstring_parser.google import DEFAULT_SECTIONS, GoogleParser, Section, SectionType

#: The classes of the recurrent API, in the order the report lists them.
CLASSES = ("SimpleRNN", "LSTM", "GRU", "RNN", "Bidirectional",
           "SimpleRNNCell", "LSTMCell", "GRUCell", "StackedRNNCells")

#: Docstring section titles -> where the argument goes ("init": constructor, "call": call).
SECTION_TITLES = {"Args": "init", "Arguments": "init", "Call arguments": "call", "Call args": "call",
                  "Call Arguments": "call", "Call Args": "call"}

_KEY = {"init": "param", "call": "attribute"}
_WHERE = {v: k for k, v in _KEY.items()}
_SKIP_PARAMS = {"self", "args", "kwargs"}
_ITEM = re.compile(r"^(?P<name>\*{0,2}[A-Za-z_]\w*)(\s*\([^)]*\))?\s*:(\s|$)")


def _parser():
    sections = [s for s in DEFAULT_SECTIONS if s.title not in SECTION_TITLES]
    # docstring_parser makes a DocstringParam only for its parameter keywords: "param" marks a
    # constructor argument, "attribute" a call argument (translated back by _WHERE)
    sections += [Section(title, _KEY[where], SectionType.MULTIPLE) for title, where in SECTION_TITLES.items()]
    return GoogleParser(sections=sections, title_colon=True)


def _indent(line):
    return len(line) - len(line.lstrip())


def normalize(doc):
    """``(text for the parser, {where: prose})``.

    Inside an argument section, a line at the items' indentation that is not a
    ``name: ...`` item is a continuation: indent it further. A section with no
    item at all is taken out and returned as prose.
    """
    lines = doc.splitlines()
    out, prose, i = [], {}, 0
    while i < len(lines):
        line = lines[i]
        title = line.strip().rstrip(":")
        if line.strip().endswith(":") and title in SECTION_TITLES:
            base, j = _indent(line), i + 1
            body = []
            while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > base):
                body.append(lines[j])
                j += 1
            filled = [b for b in body if b.strip()]
            item_indent = _indent(filled[0]) if filled else base + 2
            if not any(_indent(b) == item_indent and _ITEM.match(b.strip()) for b in filled):
                prose[SECTION_TITLES[title]] = " ".join(b.strip() for b in filled)
                i = j
                continue
            out.append(line)
            for b in body:
                if b.strip() and _indent(b) == item_indent and not _ITEM.match(b.strip()):
                    b = " " * (item_indent + 2) + b.strip()
                out.append(b)
            i = j
            continue
        out.append(line)
        i += 1
    return "\n".join(out), prose


def documented_arguments(cls):
    """``({name: (where, description)}, {where: prose})`` from the class docstring."""
    text, prose = normalize(inspect.getdoc(cls) or "")
    parsed = _parser().parse(text)
    found = {}
    for p in parsed.params:
        where = _WHERE.get(p.args[0])
        if where is not None and p.arg_name not in found:
            found[p.arg_name.lstrip("*")] = (where, " ".join((p.description or "").split()))
    return found, prose


def signature_arguments(fn):
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return []
    return [n for n, p in params.items() if n not in _SKIP_PARAMS
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def small_instance(keras, name):
    """A small instance of class ``name``, for ``get_config()``."""
    layers = keras.layers
    if name in ("SimpleRNN", "LSTM", "GRU", "SimpleRNNCell", "LSTMCell", "GRUCell"):
        return getattr(layers, name)(2)
    if name == "RNN":
        return layers.RNN(layers.SimpleRNNCell(2))
    if name == "Bidirectional":
        return layers.Bidirectional(layers.SimpleRNN(2))
    if name == "StackedRNNCells":
        return layers.StackedRNNCells([layers.SimpleRNNCell(2)])
    raise KeyError(name)


def class_inventory(keras, name):
    """``{argument: record}`` for one class; each record gives the sources that name it."""
    cls = getattr(keras.layers, name)
    docs, prose = documented_arguments(cls)
    init = signature_arguments(cls.__init__)
    call = signature_arguments(cls.call)
    try:
        config = set(small_instance(keras, name).get_config())
    except Exception as exc:   # noqa: BLE001 -- reported, not hidden
        config = {f"<get_config failed: {type(exc).__name__}: {exc}>"}
    out = {}
    names = list(dict.fromkeys([*init, *[n for n, (w, _) in docs.items() if w == "init"],
                                *call, *[n for n, (w, _) in docs.items() if w == "call"]]))
    for arg in names:
        where_doc, text = docs.get(arg, (None, ""))
        in_call = arg in call or where_doc == "call"
        rec = {
            "where": "call" if in_call and arg not in init else "init",
            "signature": arg in (call if in_call and arg not in init else init),
            "docstring": where_doc is not None,
            "config": arg in config,
            "text": text,
        }
        rec["sources"] = sorted(k for k in ("signature", "docstring", "config") if rec[k])
        out[arg] = rec
    for key in sorted(config - set(out)):
        if key.startswith("<"):
            out[key] = {"where": "init", "signature": False, "docstring": False, "config": False,
                        "text": key, "sources": []}
        elif key not in ("name", "trainable", "dtype"):   # the base Layer's own keys, below
            out[key] = {"where": "init", "signature": False, "docstring": False, "config": True,
                        "text": "", "sources": ["config"]}
    return {"arguments": out, "prose": prose}


def inventory(keras):
    """``{class name: {"arguments": {...}, "prose": {...}}}`` for every class of :data:`CLASSES`."""
    return {name: class_inventory(keras, name) for name in CLASSES if hasattr(keras.layers, name)}


def documented(inv):
    """``[(class, argument, where)]``: every argument that a docstring, a signature or the config names.

    The user passes these by name (a config-only key, such as Keras 2's ``implementation``, goes
    through ``**kwargs``), so each needs a claim or an out-of-scope reason
    (``spec/data/arguments.toml``).
    """
    return [(cls, arg, rec["where"]) for cls, c in inv.items() for arg, rec in c["arguments"].items()
            if rec["sources"]]


def single_source(inv):
    """``[(class, argument, sources)]`` for the names that the three sources do not agree on.

    A call argument has no config key, so it disagrees only when the signature and the
    docstring disagree."""
    out = []
    for cls, c in inv.items():
        for arg, rec in c["arguments"].items():
            expected = ("docstring", "signature") if rec["where"] == "call" else ("config", "docstring", "signature")
            if tuple(rec["sources"]) != expected:
                out.append((cls, arg, rec["sources"]))
    return out


__all__ = ["CLASSES", "class_inventory", "documented", "documented_arguments", "inventory",
           "normalize", "single_source", "docstring_parser"]
