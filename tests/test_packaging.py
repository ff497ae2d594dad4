"""The distribution (issue #13): one namespace, rnnspec; one name per module; the extras; the wheel.

- pyproject.toml maps the repository's folders into ``rnnspec`` (package-dir):
  installed, nothing but ``rnnspec`` is importable from it (no top-level
  ``spec``, ``reference``, ``tools`` or ``faults``).
- The plugin (entry point ``pytest11``) fails a run in which any of rnnspec's
  own modules is imported under two names; the tests below prove that it fires,
  with and without xdist.
- No extra names two TensorFlow distributions, on any platform; where an
  extra is installed (tox ``install-*`` envs run the ``installed`` tests), at
  most one is there.
- The wheel (and the sdist it is built from) holds rnnspec only, with the
  spec's data; installed into a fresh venv it runs the structure chapter from
  outside the checkout (slow: a fresh TensorFlow install).
"""

import json
import os
import subprocess
import sys
import textwrap
import time
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
OLD_NAMES = ("spec", "reference", "tools", "faults")
#: distributions that install the `tensorflow` package (tf-keras depends on `tensorflow`)
TENSORFLOWS = {"tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-intel", "tensorflow-macos",
               "tf-nightly", "tf-nightly-cpu"}
IMPLIES = {"tf-keras": "tensorflow"}
PLATFORMS = {"linux": "Linux", "darwin": "Darwin", "win32": "Windows"}


def _canon(name):
    return name.lower().replace("_", "-")


# --------------------------------------------------------------------------- extras

@pytest.mark.parametrize("extra", sorted(PYPROJECT["project"]["optional-dependencies"]))
@pytest.mark.parametrize("platform", sorted(PLATFORMS))
def test_no_extra_names_two_tensorflow_distributions(extra, platform):
    env = {"sys_platform": platform, "platform_system": PLATFORMS[platform], "extra": extra,
           "python_version": "3.11"}
    named = set()
    for line in PYPROJECT["project"]["optional-dependencies"][extra]:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate(env):
            name = _canon(req.name)
            named.add(IMPLIES.get(name, name))
    tfs = named & TENSORFLOWS
    assert len(tfs) <= 1, f"rnnspec[{extra}] on {platform} installs {sorted(tfs)}: two copies of `tensorflow`"


def test_the_keras_extras_exist():
    assert {"tf", "jax", "torch", "keras2"} <= set(PYPROJECT["project"]["optional-dependencies"])


def test_installed_tensorflow_distributions_are_at_most_one():
    """Wherever this runs (tox ``install-*``: one extra in a fresh env), one TensorFlow at most."""
    present = {_canon(d.metadata["Name"]) for d in metadata.distributions()} & TENSORFLOWS
    assert len(present) <= 1, f"two TensorFlow distributions installed: {sorted(present)}"


# --------------------------------------------------------------------------- one namespace

def test_installed_package_is_one_namespace(tmp_path):
    """From outside the checkout, rnnspec.* imports and no old top-level name does."""
    eps = {ep.name: ep.value for ep in metadata.entry_points(group="pytest11")}
    assert eps.get("rnnspec") == "rnnspec.plugin"
    code = ("import importlib.util as u, json; "
            "print(json.dumps({n: u.find_spec(n) is not None for n in "
            f"{list(OLD_NAMES) + ['rnnspec.spec', 'rnnspec.reference', 'rnnspec.tools', 'rnnspec.faults']}}}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         check=True, env=dict(os.environ, PYTHONPATH=""))
    found = json.loads(out.stdout)
    assert not any(found[n] for n in OLD_NAMES), f"top-level packages importable: {found}"
    assert all(found[n] for n in found if n.startswith("rnnspec.")), found


# --------------------------------------------------------------------------- the double-import check

def test_modules_under_two_names_counts_copies_not_aliases(tmp_path):
    from types import ModuleType
    from rnnspec.plugin import modules_under_two_names
    f = tmp_path / "m.py"
    f.write_text("")
    a, b = ModuleType("a"), ModuleType("b")
    a.__file__ = b.__file__ = str(f)
    assert modules_under_two_names({"x.a": a, "y.a": a}, within=[tmp_path]) == {}
    assert modules_under_two_names({"x.a": a, "y.b": b}, within=[tmp_path]) == {str(f.resolve()): ["x.a", "y.b"]}
    assert modules_under_two_names({"x.a": a, "y.b": b}, within=[tmp_path / "elsewhere"]) == {}


DOUBLE = """
import importlib.util, sys
import rnnspec.spec.versions as versions

def test_loads_a_second_copy():
    spec = importlib.util.spec_from_file_location("versions_copy", versions.__file__)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["versions_copy"] = mod
    spec.loader.exec_module(mod)
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_a_module_imported_under_two_names_fails_the_run(tmp_path, workers):
    (tmp_path / "test_double.py").write_text(textwrap.dedent(DOUBLE))
    proc = subprocess.run([sys.executable, "-m", "pytest", "test_double.py", "-p", "no:cacheprovider",
                           "--report-json", str(tmp_path / "r.json"), *workers],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=""))
    out = proc.stdout + proc.stderr
    assert "1 passed" in out, out[-3000:]
    assert proc.returncode == 1, f"exit {proc.returncode}, not 1:\n{out[-3000:]}"
    assert "modules imported under two names" in out and "versions_copy" in out \
        and "rnnspec.spec.versions" in out, out[-3000:]


def test_the_checkout_spec_runs_under_one_name(tmp_path):
    """The checkout's own spec/ (and tests/) collected by path: no second name, exit 0."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "spec/test_structure.py", "tests/test_tiers.py",
                           "-q", "-p", "no:cacheprovider", "--report-json", str(tmp_path / "r.json")],
                          cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, PYTHONPATH=""))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "two names" not in out, out[-3000:]


# --------------------------------------------------------------------------- the wheel

def _build(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)],
                   check=True, capture_output=True, text=True, timeout=900)
    wheel, = dist.glob("rnnspec-*.whl")
    sdist, = dist.glob("rnnspec-*.tar.gz")
    return wheel, sdist


@pytest.mark.slow
@pytest.mark.keras
def test_wheel_installs_and_runs_the_structure_chapter_outside_the_checkout(tmp_path):
    start = time.time()
    wheel, sdist = _build(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    dist_info = f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info/"
    strays = [n for n in names if not (n.startswith("rnnspec/") or n.startswith(dist_info))]
    assert not strays, f"the wheel installs more than rnnspec: {strays}"
    data = sorted(p.name for p in (ROOT / "spec" / "data").glob("*.toml"))
    assert data and all(f"rnnspec/spec/data/{d}" in names for d in data), "spec data files missing"
    for pkg in ("rnnspec/", "rnnspec/spec/", "rnnspec/reference/", "rnnspec/faults/", "rnnspec/tools/"):
        assert f"{pkg}__init__.py" in names
    assert "rnnspec/spec/test_structure.py" in names and "rnnspec/plugin.py" in names
    assert "[pytest11]\nrnnspec = rnnspec.plugin" in zipfile.ZipFile(wheel).read(
        dist_info + "entry_points.txt").decode()

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    # the tf extra, at this env's TensorFlow and Keras (already in the local pip cache)
    pins = [f"{d}=={metadata.version(d)}" for d in ("tensorflow-cpu", "keras")]
    subprocess.run([str(py), "-m", "pip", "install", "-q", f"rnnspec[tf] @ {wheel.as_uri()}", *pins],
                   check=True, capture_output=True, text=True, timeout=900)
    installed = time.time()

    outside = tmp_path / "outside"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "TOX", "VIRTUAL_ENV"))}
    env.update(KERAS_BACKEND="tensorflow", KERAS_HOME=str(tmp_path / "keras-home"), RNNSPEC_PROFILE="ci",
               TF_CPP_MIN_LOG_LEVEL="3")
    report = tmp_path / "structure.json"
    proc = subprocess.run([str(py), "-m", "pytest", "--pyargs", "rnnspec.spec.test_structure", "-p",
                           "no:cacheprovider", "--strict-markers", "--report-json", str(report)],
                          cwd=outside, capture_output=True, text=True, timeout=900, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "two names" not in out
    site = subprocess.run([str(py), "-c", "import rnnspec.spec, sys; print(rnnspec.spec.__file__)"],
                          cwd=outside, capture_output=True, text=True, env=env).stdout.strip()
    assert Path(site).is_relative_to(venv), f"rnnspec imported from {site}, not the venv"
    claims = json.loads(report.read_text())["claims"]
    assert claims and all(k.startswith("spec/test_structure.py::") for k in claims), sorted(claims)[:3]
    assert all(c["outcome"] == "passed" for c in claims.values())
    print(f"wheel test: build + install {installed - start:.0f}s, structure chapter "
          f"{time.time() - installed:.0f}s")
