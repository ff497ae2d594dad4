"""The pytest plugin of rnnspec (entry point ``pytest11``: ``rnnspec = rnnspec.plugin``).

Installing rnnspec (``pip install -e .``, a wheel, or tox) makes pytest load
this module in that environment; ``-p no:rnnspec`` switches it off. It holds
what the checkout's conftest.py did before the package was installable:

Profiles (choose with ``--hypothesis-profile NAME`` or ``RNNSPEC_PROFILE=NAME``):

- ``dev``: fast feedback while editing (few examples, random); the default.
- ``ci``: deterministic (``derandomize``), prints the failure blob, the
  regression gate and the mutation runner use it (tox sets it).
- ``thorough``: many examples, random, for a pre-upgrade run.
- ``nightly``: exploring: many examples, random, and an example database
  (``.hypothesis/examples``, or ``$RNNSPEC_EXAMPLE_DB``) that keeps every
  failing example it finds and replays it first on the next run; cache the
  directory between nightly jobs.
- ``debug``: 10 examples, verbose.
- ``sweep``: the release sweep (``rnnspec sweep``, one run per Keras release):
  deterministic like ``ci``, no example database, 10 examples per claim instead
  of 40. Every claim and every pool entry still runs (pools are parametrized,
  ``spec/pool.py``; budgets scale with max_examples, ``spec/profiles.py``);
  argument coverage is reported, not judged, below 40 examples (``spec/arguments.py``).

Deadlines are off: the first call of a new configuration traces a graph
(tens to hundreds of ms on TF, about 1 s on JAX), which is not a fault.
Slow examples are visible in ``--hypothesis-show-statistics``.

Health checks: all are on, except the ones listed in ``_SUPPRESSED`` with
the measured reason for each.

It also

- loads the conformance report plugin, :mod:`rnnspec.spec.report`;
- registers the markers (``keras``, ``slow``, ``gpu``), so that the spec
  runs with ``--strict-markers`` from outside the checkout too;
- imports every test module and package inside rnnspec's own folders under
  its one name, ``rnnspec.<package>.<module>``. In a checkout the folders
  are ``spec/``, ``reference/``..., not ``rnnspec/spec/``: left to itself,
  pytest would name ``spec/test_structure.py`` after its folder, and import
  ``spec/__init__.py`` as a second, top-level package ``spec``;
- fails the run (exit 1) when any of rnnspec's own module files (its
  packages; in a checkout also tests/ and bench/) is loaded as two module
  objects under two names, at the end of collection or of the session, in
  xdist workers too: two copies of the report plugin would count every
  example twice. (Other libraries are not held to it: TensorFlow itself
  loads ``tensorflow/_api/v2/experimental`` as two modules.)
"""

import importlib
import importlib.util
import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Verbosity, settings  # noqa: F401 (HealthCheck: for _SUPPRESSED)
from hypothesis.database import DirectoryBasedExampleDatabase

from rnnspec import PACKAGES

pytest_plugins = ["rnnspec.spec.report"]

# --------------------------------------------------------------------------- Hypothesis profiles

#: Health checks switched off, each with its reason.
_SUPPRESSED = {
    # none needed: measured with every health check on, `RNNSPEC_PROFILE=ci pytest spec`
    # (TF 2.21 / Keras 3.15.1) raised none. Add an entry here with its reason if one fires.
}
_COMMON = dict(deadline=None, suppress_health_check=list(_SUPPRESSED))
settings.register_profile("dev", max_examples=15, **_COMMON)
settings.register_profile("ci", max_examples=40, derandomize=True, print_blob=True,
                          database=None, **_COMMON)
settings.register_profile("thorough", max_examples=600, print_blob=True, **_COMMON)
settings.register_profile(
    "nightly", max_examples=600, print_blob=True,
    database=DirectoryBasedExampleDatabase(os.environ.get("RNNSPEC_EXAMPLE_DB", ".hypothesis/examples")),
    **_COMMON)
settings.register_profile("debug", max_examples=10, verbosity=Verbosity.verbose, **_COMMON)
settings.register_profile("sweep", max_examples=10, derandomize=True, print_blob=True,
                          database=None, **_COMMON)

PROFILE = os.environ.get("RNNSPEC_PROFILE", "dev")
settings.load_profile(PROFILE)

MARKERS = (
    "keras: the test needs the installed Keras (all of spec/)",
    "slow: long-running; deselected in the quick CI subset",
    "gpu: runs only where the backend sees a GPU",
)


def pytest_configure(config):
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    config._rnnspec_double = {}


def pytest_report_header(config):
    from rnnspec.spec import report
    env = report.environment()
    profile = config.getoption("hypothesis_profile", default=None) or PROFILE
    cur = settings.get_profile(profile)
    return [
        f"rnnspec: python {env['python']}, tensorflow {env['tensorflow']}, "
        f"keras {env['keras']} ({env['keras_package']}), backend {env['backend']}",
        f"rnnspec: devices {env['devices']}, tf32 {env['tf32']}",
        f"rnnspec: hypothesis profile {profile!r} (max_examples={cur.max_examples}, "
        f"derandomize={cur.derandomize}); report -> {report.report_path(config)}",
        f"rnnspec: graph-shape pool seed {os.environ.get('RNNSPEC_POOL_SEED', '0')} (RNNSPEC_POOL_SEED); "
        f"spec hash {env['spec_hash']} (spec/ + reference/)",
    ]


# --------------------------------------------------------------------------- one name per module

_DIRS = None


def package_dirs():
    """``[(folder, package name)]`` of the distribution's packages where they are installed from,
    most specific first (in a wheel, ``rnnspec/spec`` lies inside ``rnnspec``)."""
    global _DIRS
    if _DIRS is None:
        dirs = []
        for name in PACKAGES:
            found = importlib.util.find_spec(name)
            for loc in (found.submodule_search_locations or []) if found else []:
                dirs.append((Path(loc).resolve(), name))
        _DIRS = sorted(dirs, key=lambda d: len(d[0].parts), reverse=True)
    return _DIRS


def canonical_name(path):
    """The one name of the module at ``path`` (a ``.py`` file or a package's ``__init__.py``)
    when it lies in one of rnnspec's folders, else None."""
    path = Path(path).resolve()
    for folder, name in package_dirs():
        if not path.is_relative_to(folder):
            continue
        rel = path.relative_to(folder).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        sub = folder
        for part in rel.parts[:-1]:   # every folder between must be a package
            sub = sub / part
            if not (sub / "__init__.py").is_file():
                return None
        if not all(p.isidentifier() for p in parts):
            return None
        return ".".join((name, *parts))
    return None


def _import(node, name):
    try:
        mod = importlib.import_module(name)
    except ImportError as exc:
        raise node.CollectError(f"ImportError while importing {name} ({node.path}):\n"
                                f"{type(exc).__name__}: {exc}") from exc
    origin = Path(getattr(mod, "__file__", "") or "").resolve()
    expected = node.path.resolve()
    if origin != expected:
        raise node.CollectError(f"{name} is {origin}, not the file collected here, {expected}")
    return mod


class _Module(pytest.Module):
    """A test module of rnnspec, imported under its one name."""

    def _getobj(self):   # "May be overwritten by subclasses" (pytest's PyobjMixin)
        mod = _import(self, self.rnnspec_name)
        self.config.pluginmanager.consider_module(mod)
        return mod


class _Package(pytest.Package):
    """A package of rnnspec (e.g. ``spec/``): its ``__init__.py`` imported under its one name.
    (rnnspec's packages define no ``setup_module``; pytest's own Package would run it.)"""

    def setup(self):
        init = self.path / "__init__.py"
        mod = importlib.import_module(self.rnnspec_name)
        if Path(mod.__file__).resolve() != init.resolve():
            raise self.CollectError(f"{self.rnnspec_name} is {mod.__file__}, not {init}")


@pytest.hookimpl(tryfirst=True)
def pytest_collect_directory(path, parent):
    init = path / "__init__.py"
    name = canonical_name(init) if init.is_file() else None
    if name is None:
        return None
    pkg = _Package.from_parent(parent, path=path)
    pkg.rnnspec_name = name
    return pkg


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makemodule(module_path, parent):
    name = canonical_name(module_path)
    if name is None:
        return None
    mod = _Module.from_parent(parent, path=module_path)
    mod.rnnspec_name = name
    return mod


# --------------------------------------------------------------------------- the double-import check

def modules_under_two_names(modules=None, within=None):
    """``{file: [names]}`` for every module file that ``modules`` (default ``sys.modules``)
    holds as two or more distinct module objects, among the files inside the
    folders ``within`` (default: rnnspec's own, :func:`rnnspec.spec.outcomes.own_dirs`).
    One object under two names (an alias) is not a copy and is not reported."""
    modules = sys.modules if modules is None else modules
    if within is None:
        from rnnspec.spec.outcomes import own_dirs
        within = own_dirs()
    within = [Path(d).resolve() for d in within]
    by_file = {}
    for name, mod in list(modules.items()):
        if mod is None or name in ("__main__", "__mp_main__"):
            continue
        try:   # without triggering lazy modules' __getattr__/__getattribute__
            path = object.__getattribute__(mod, "__dict__").get("__file__")
        except Exception:
            continue
        if not isinstance(path, str) or not path:
            continue
        path = os.path.realpath(path)
        if not any(Path(path).is_relative_to(d) for d in within):
            continue
        objs = by_file.setdefault(path, {})
        objs.setdefault(id(mod), []).append(name)
    return {f: sorted(n for names in objs.values() for n in names)
            for f, objs in sorted(by_file.items()) if len(objs) > 1}


def _record(config, when):
    found = modules_under_two_names()
    for path, names in found.items():
        config._rnnspec_double.setdefault(path, (names, when))


def pytest_collection_finish(session):
    _record(session.config, "at the end of collection")


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """xdist controller: collect what each worker found."""
    config = node.config
    for path, (names, when) in (getattr(node, "workeroutput", {}) or {}).get("rnnspec_double", {}).items():
        config._rnnspec_double.setdefault(path, (names, f"{when}, worker {node.gateway.id}"))


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    config = session.config
    _record(config, "at the end of the session")
    if hasattr(config, "workerinput"):
        config.workeroutput["rnnspec_double"] = {k: list(v) for k, v in config._rnnspec_double.items()}
        return
    if config._rnnspec_double and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    double = getattr(config, "_rnnspec_double", None)
    if not double:
        return
    tr = terminalreporter
    tr.write_sep("=", "rnnspec: modules imported under two names (the run fails)", red=True)
    for path, (names, when) in double.items():
        tr.write_line(f"  {path}: {', '.join(names)} ({when})", red=True)
    tr.write_line("  Import rnnspec's modules only as rnnspec.<package>.<module> "
                  "(tools/namespace_imports.py rewrites old-style imports).")
