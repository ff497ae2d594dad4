"""Refused or crashed: tell a documented refusal from a crash inside Keras.

Chapter 7 (``spec/test_bad_input.py``) and the stateful chapter
(``test_other_batch_size_is_refused`` in ``spec/test_stateful.py``) claim
that Keras *refuses* some inputs. Any exception used to count; now every
example ends in one outcome:

refused
    Keras raised the exception it documents, or raises on purpose: the class
    and a message naming the problem match a rule of the claim in
    ``spec/data/refusals.toml``, and (``explicit_raise = true``) the
    innermost frame of the traceback inside the Keras package is a ``raise``
    statement (Keras's own layer or argument-validation code said no).
crashed
    Keras failed otherwise: another class, a message that does not name the
    problem, or an exception that came from deeper down (an AttributeError
    in Keras code, a backend op error such as TensorFlow's
    InvalidArgumentError, a torch RuntimeError, a JAX TypeError) with the
    innermost Keras frame a call, not a ``raise``. A crash is a finding
    (``[[crash]]`` in the same file lists the ones measured).

The rules are data: per claim id, a list of ``[[refusal]]`` entries with
``when`` bounds in the format of ``divergences.toml``
(:func:`rnnspec.spec.report.divergence_applies`), ``exception`` (class names;
``module.Class`` or bare ``Class``, matched against the exception's MRO),
``message`` (a regex that must ``search`` the message), ``explicit_raise``
and optionally ``raised_in`` (a regex on the raising file).

Traceback filtering (measured: ``docs/measurements/refusals-*.json``)
    Keras 3 wraps ``Layer.__call__`` and ``Operation.__call__`` in
    ``keras.src.utils.traceback_utils.filter_traceback``: it re-raises the
    exception with ``e.with_traceback(filtered) from None``, where
    ``filtered`` is a new chain of traceback entries without the frames in
    ``keras/src`` and ``tensorflow/python``, or only the innermost frame when
    every frame is one of those. Where other frames survive (torch's or
    JAX's own frames under a backend error), the Keras frames are gone from
    the exception for good, and the one Keras frame left is the filter's own
    re-raise in ``traceback_utils.py`` (a ``raise`` statement, which would
    pass for a refusal). Inside, ``inject_argument_info_in_traceback``
    re-raises errors from ``call`` as a new exception of the same class with
    the message wrapped in "Exception encountered when calling ... Arguments
    received by ...", ``from None``, so the original, with its full traceback,
    is its ``__context__``. tf.keras 2.x and tf_keras do the same (their
    filter is switched by ``tf.debugging.disable_traceback_filtering``), and
    they wrap the message whether or not filtering is on.

    What this module does:

    - :func:`innermost_keras_frame` skips ``traceback_utils.py`` frames and,
      when the exception's own traceback has no other Keras frame, reads the
      ``__cause__``/``__context__`` chain. In the survey (Keras 3.3.3-3.15.1
      on TF, Keras 3.15.1 on torch and jax, Keras 2.15, tf_keras 2.21; every
      refusal claim and layer kind) this gives the same class, frame and
      outcome with filtering on as with it off: a refusal raised in Keras's
      own code keeps its raising frame (all its frames are Keras's), and an
      op error is found through ``__context__``.
    - :func:`message_of` removes the argument wrapper, so that the argument
      listing (``initial_state=...``) can never match a rule.
    - Filtering can still hide the raising frame where a non-Keras frame
      (the standard library, optree, ...) sits between the filter and the
      raise and nothing is chained; ``classify`` then reports a crash whose
      detail says "no Keras frame ... run the call inside
      keras_tracebacks()", never a refusal. So the caller should run the
      refused call inside :func:`keras_tracebacks` (it switches off Keras 3's
      ``keras.config`` and TensorFlow's ``tf.debugging`` filtering, which
      tf.keras 2.x and tf_keras read, and restores both on exit), or use
      :func:`outcome_of`, which does both.
"""

import ast
import contextlib
import functools
import linecache
import os
import re
import sys
import tomllib
from pathlib import Path

DATA = Path(__file__).parent / "data"

CLAIM_IDS = (
    "spec/test_bad_input.py::test_zero_timesteps_is_refused",
    "spec/test_bad_input.py::test_wrong_rank_is_refused",
    "spec/test_bad_input.py::test_mismatched_initial_state_is_refused",
    "spec/test_bad_input.py::test_stateful_without_batch_size_is_refused",
    "spec/test_bad_input.py::test_non_positive_units_are_refused",
    "spec/test_stateful.py::test_other_batch_size_is_refused",
    "spec/test_kernels.py::test_use_cudnn_on_the_cpu",
    "spec/test_cells.py::test_bidirectional_refuses_a_mismatched_backward_layer",
)

# A file inside an installed keras / tf_keras package, or inside TensorFlow's
# own old copy, tensorflow/python/keras (a source checkout elsewhere is found
# through the imported package's directory, _package_dirs).
_KERAS_PATH = re.compile(
    r"(?:^|[\\/])(?:site-packages|dist-packages)[\\/](?:keras|tf_keras)[\\/]"
    r"|[\\/]tensorflow[\\/]python[\\/]keras[\\/]")
# Frames that only re-raise what happened deeper down: never the origin.
_RERAISE_FILES = re.compile(r"[\\/]utils[\\/]traceback_utils\.py$")


def _package_dirs():
    """Directories of the Keras packages already imported (no import is triggered)."""
    dirs = []
    for name in ("keras", "tf_keras", "tensorflow.python.keras"):
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None)
        if path:
            dirs.append(os.path.dirname(os.path.abspath(path)) + os.sep)
    return tuple(dirs)


def is_keras_file(filename):
    """True when ``filename`` lies inside the keras, tf_keras or tensorflow/python/keras package."""
    if not filename:
        return False
    if _KERAS_PATH.search(filename):
        return True
    absolute = os.path.abspath(filename)
    return any(absolute.startswith(d) for d in _package_dirs())


@functools.lru_cache(maxsize=256)
def _statements(filename):
    """(first line, last line, is-raise-with-exception) of every statement of a source file."""
    source = "".join(linecache.getlines(filename))
    if not source:
        return ()
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return ()
    return tuple((node.lineno, node.end_lineno or node.lineno, isinstance(node, ast.Raise) and node.exc is not None)
                 for node in ast.walk(tree) if isinstance(node, ast.stmt))


def is_raise_statement(filename, lineno):
    """Whether the innermost statement at ``filename:lineno`` is ``raise <exception>``.

    A bare ``raise`` (re-raising what was caught) does not count. Read from the
    source's AST, so a ``raise ValueError(`` whose message spans several lines
    counts; without the source, the line's text decides.
    """
    spans = [(last - first, is_raise) for first, last, is_raise in _statements(filename) if first <= lineno <= last]
    if spans:
        return min(spans)[1]
    line = linecache.getline(filename, lineno).strip()
    return bool(re.match(r"raise\s+\S", line))


def _frames(exc):
    """(filename, lineno) of each traceback entry of ``exc``, outermost first."""
    out, tb = [], exc.__traceback__
    while tb is not None:
        out.append((tb.tb_frame.f_code.co_filename, tb.tb_lineno))
        tb = tb.tb_next
    return out


def _chain(exc):
    """``exc``, then its ``__cause__``/``__context__`` chain (no cycles)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _innermost_in(exc):
    for filename, lineno in reversed(_frames(exc)):
        if is_keras_file(filename) and not _RERAISE_FILES.search(filename):
            return filename, lineno
    return None


def innermost_keras_frame(exc):
    """``(filename, lineno, source_line)`` of the innermost traceback frame inside Keras, or None.

    Walks ``exc.__traceback__``; when that holds no Keras frame (Keras's or
    TensorFlow's traceback filtering re-raised it), the ``__cause__`` /
    ``__context__`` chain, first hit wins. Frames of ``traceback_utils.py``
    (the filters' own re-raise) are skipped.
    """
    for link in _chain(exc):
        hit = _innermost_in(link)
        if hit:
            filename, lineno = hit
            return filename, lineno, linecache.getline(filename, lineno).strip()
    return None


def short_path(filename):
    """``keras/src/layers/rnn/rnn.py`` from an absolute path (the part from the package on)."""
    m = re.search(r"(?:^|[\\/])((?:tensorflow[\\/]python[\\/])?(?:tf_keras|keras)[\\/].*)$", filename or "")
    return m.group(1).replace("\\", "/") if m else filename


# --------------------------------------------------------------------------- traceback filtering

@contextlib.contextmanager
def keras_tracebacks():
    """Switch off Keras's and TensorFlow's traceback filtering inside the block; restore it on exit."""
    undo = []
    for name in ("keras", "tf_keras"):
        config = getattr(sys.modules.get(name), "config", None)
        if config is not None and hasattr(config, "disable_traceback_filtering"):
            was = config.is_traceback_filtering_enabled()
            config.disable_traceback_filtering()
            undo.append(lambda config=config, was=was: config.enable_traceback_filtering() if was else None)
    tf = sys.modules.get("tensorflow")
    debugging = getattr(tf, "debugging", None)
    if debugging is not None and hasattr(debugging, "disable_traceback_filtering"):
        was_tf = debugging.is_traceback_filtering_enabled()
        debugging.disable_traceback_filtering()
        undo.append(lambda: debugging.enable_traceback_filtering() if was_tf else None)
    try:
        yield
    finally:
        for step in reversed(undo):
            step()


def outcome_of(claim_id, fn, env=None):
    """Run ``fn()`` with traceback filtering off: ``("accepted", result)`` or :func:`classify`'s pair."""
    with keras_tracebacks():
        try:
            result = fn()
        except Exception as exc:  # what Keras raised is exactly what is being judged
            return classify(claim_id, exc, env)
    return "accepted", result


# --------------------------------------------------------------------------- the rules

@functools.cache
def load():
    """``spec/data/refusals.toml`` as ``{"refusal": [...], "crash": [...]}`` (read once)."""
    raw = tomllib.loads((DATA / "refusals.toml").read_text())
    return {"refusal": raw.get("refusal", []), "crash": raw.get("crash", [])}


def rules(claim_id, env=None):
    """The refusal rules of ``claim_id`` that apply to ``env`` (None: the environment under test)."""
    from rnnspec.spec.report import divergence_applies
    env = env or current_environment()
    return [r for r in load()["refusal"] if r["claim"] == claim_id and divergence_applies(r, env)]


def known_crashes(claim_id, env=None):
    """The ``[[crash]]`` entries of ``claim_id`` measured in environments like ``env``."""
    from rnnspec.spec.report import divergence_applies
    env = env or current_environment()
    return [c for c in load()["crash"] if c["claim"] == claim_id and divergence_applies(c, env)]


@functools.cache
def _environment():
    from rnnspec.spec.report import environment
    return environment()


def current_environment():
    """The environment under test (``rnnspec.spec.report.environment()``, computed once)."""
    return _environment()


def class_matches(exc, names):
    """Whether ``exc`` is an instance of a class named in ``names`` (``Class`` or ``module.Class``)."""
    wanted = set(names)
    for cls in type(exc).__mro__:
        if cls.__name__ in wanted or f"{cls.__module__}.{cls.__qualname__}" in wanted:
            return True
    return False


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_WRAPPER_LINES = re.compile(r"^(Exception encountered when calling|in user code:|File \")")


_WRAPPED = re.compile(r"^Exception encountered when calling [^\n]*\n\n(?:\x1b\[1m)?(.*?)(?:\x1b\[0m)?"
                      r"\n\n(?:Call arguments|Arguments) received by", re.DOTALL)


def message_of(exc):
    """The exception's own message.

    Keras re-raises errors from a layer's ``call`` with the message wrapped in
    "Exception encountered when calling X. <message> (Call) Arguments received
    by X: <one line per argument>" (Keras 3 only while traceback filtering is
    on, tf.keras 2.x always). The argument listing (``initial_state=...``)
    must not match a rule, so only the wrapped message is kept, and Keras 3's
    terminal colour codes are dropped.
    """
    text = str(exc)
    wrapped = _WRAPPED.match(text)
    if wrapped:
        text = wrapped.group(1)
    return _ANSI.sub("", text)


def message_head(exc, width=120):
    """The first informative line of the message (skipping Keras's "Exception encountered ..." wrapper)."""
    lines = [line.strip() for line in message_of(exc).splitlines()]
    lines = [line for line in lines if line and not _WRAPPER_LINES.match(line)]
    head = lines[0] if lines else ""
    return head if len(head) <= width else head[:width - 3] + "..."


def describe(exc):
    """``module.Class: message head @ keras/file.py:line [raise|call]`` (one line)."""
    cls = type(exc)
    frame = innermost_keras_frame(exc)
    if frame is None:
        where = "no Keras frame in the traceback"
    else:
        filename, lineno, _ = frame
        where = f"{short_path(filename)}:{lineno} [{'raise' if is_raise_statement(filename, lineno) else 'not a raise'}]"
    return f"{cls.__module__}.{cls.__qualname__}: {message_head(exc)} @ {where}"


def rule_matches(rule, exc, frame):
    """Why ``rule`` does not accept ``exc`` whose innermost Keras frame is ``frame`` ("" when it does)."""
    if not class_matches(exc, rule["exception"]):
        return f"class not in {rule['exception']}"
    if not re.search(rule["message"], message_of(exc), re.IGNORECASE):
        return f"message does not match /{rule['message']}/"
    if rule.get("explicit_raise") or rule.get("raised_in"):
        if frame is None:
            return "no Keras frame in the traceback (filtered? run the call inside keras_tracebacks())"
        filename, lineno, _ = frame
        if rule.get("explicit_raise") and not is_raise_statement(filename, lineno):
            return "innermost Keras frame is not a raise statement"
        if rule.get("raised_in") and not re.search(rule["raised_in"], short_path(filename)):
            return f"raised in {short_path(filename)}, not /{rule['raised_in']}/"
    return ""


def _crash_class_matches(entry, exc):
    return class_matches(exc, entry["exception"] if isinstance(entry["exception"], list) else [entry["exception"]])


def classify(claim_id, exc, env=None):
    """``("refused" | "crashed", detail)`` for the exception ``exc`` seen in an example of ``claim_id``.

    Refused when one of the claim's rules for ``env`` (None: the environment
    under test) accepts the class, the message and, where the rule asks, the
    innermost Keras frame being a ``raise``. Otherwise crashed; ``detail``
    then ends with why the closest rule did not accept it.
    """
    detail = describe(exc)
    frame = innermost_keras_frame(exc)
    misses = []
    for rule in rules(claim_id, env):
        why = rule_matches(rule, exc, frame)
        if not why:
            return "refused", detail
        misses.append(why)
    # the closest rule: one whose class matched, if any
    misses.sort(key=lambda m: m.startswith("class not in"))
    why = misses[0] if misses else "no refusal rule for this claim in this environment"
    listed = [c["id"] for c in known_crashes(claim_id, env) if _crash_class_matches(c, exc)]
    if listed:
        why += f"; listed crash {', '.join(listed)}"
    return "crashed", f"{detail}; {why}"


def listed_crash(claim_id, exc, env=None):
    """The id of the ``[[crash]]`` entry (a recorded finding) that ``exc`` is, or None.

    An entry models the crash by its exception class and ``pattern``, a regex
    that must search the message: the spec then counts the example as that
    known divergence instead of a new crash.
    """
    for entry in known_crashes(claim_id, env):
        if _crash_class_matches(entry, exc) and re.search(entry["pattern"], message_of(exc)):
            return entry["id"]
    return None
