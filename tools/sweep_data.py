"""The release sweep's data: which Keras releases exist and what each is paired with.

    python -m rnnspec.tools.sweep_data            # print the table PyPI gives today
    python -m rnnspec.tools.sweep_data --write    # ... and rewrite tools/data/sweep.toml

``tools/data/sweep.toml`` is the one source ``rnnspec sweep`` and ``rnnspec bisect``
read: the sweep never asks PyPI at run time, so two runs of one checkout build the
same environments. This module regenerates the file from PyPI's JSON API
(``https://pypi.org/pypi/<name>/json``) by the rules stated in the file's header;
the functions that apply them take the JSON as an argument (tests feed them a
fixture, no network).

The rules (README "Every Keras release: sweep, timeline, bisect"):

- Keras releases: every ``keras`` 3.x on PyPI that has files, is not a
  pre-release and is not wholly yanked.
- JAX: ``jax[cpu]==V`` with V the highest jax version uploaded before the *next*
  Keras release in time (the next upload of any Keras version; the newest jax for the
  last upload), among the jax releases whose ``Requires-Python`` admits the sweep's Python; plus
  ``numpy<2`` where that jaxlib is built against NumPy 1 (before 0.4.26).
- Every backend: ``numpy<2`` for Keras before 3.5.0, which still uses names NumPy 2
  removed (``np.Inf``; fixed by keras-team/keras#20049, first released in 3.5.0).
- torch and TensorFlow: fixed in the file (``[backend.torch]``, ``[[backend.tensorflow.pair]]``).

Standard library + packaging.
"""

import argparse
import datetime as _dt
import functools
import json
import sys
import tomllib
import urllib.request
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

DATA = Path(__file__).resolve().parent / "data" / "sweep.toml"
PYPI = "https://pypi.org/pypi/{name}/json"

#: the first jaxlib built against NumPy 2 (jax 0.4.26, April 2024)
JAXLIB_NUMPY2 = Version("0.4.26")
#: the first Keras without NumPy-1-only names (np.Inf: keras-team/keras#20049, merged 2024-07-26)
KERAS_NUMPY2 = Version("3.5.0")


@functools.cache
def load(path=DATA):
    """The sweep's data file as a dict (``python``, ``read_from_pypi``, ``backend``, ``release``)."""
    return tomllib.loads(Path(path).read_text())


# --------------------------------------------------------------------------- reading PyPI's JSON

def releases(pypi_json, python=None):
    """``[(Version, first upload as aware datetime, requires_python)]`` of a PyPI project,
    oldest version first: final releases with files, not wholly yanked, and (``python``
    given, e.g. "3.11") whose ``Requires-Python`` admits that Python."""
    out = []
    for text, files in (pypi_json.get("releases") or {}).items():
        try:
            v = Version(text)
        except InvalidVersion:
            continue
        if not files or v.is_prerelease or v.is_devrelease or all(f.get("yanked") for f in files):
            continue
        requires = next((f.get("requires_python") for f in files if f.get("requires_python")), "") or ""
        if python and requires and not SpecifierSet(requires).contains(python, prereleases=True):
            continue
        uploaded = min(_dt.datetime.fromisoformat(f["upload_time_iso_8601"].replace("Z", "+00:00"))
                       for f in files)
        out.append((v, uploaded, requires))
    return sorted(out)


def pair_jax(keras, jax):
    """``{keras version: jax version}``: for each Keras release (``releases()`` rows), the
    highest jax uploaded before the next Keras release *in time* (the next upload of any
    Keras line: a 3.12 patch published after 3.13.0 gets the jax of its own date), the
    highest jax of all for the last upload. A Keras with no jax before it is left out."""
    out = {}
    for kv, uploaded, _ in keras:
        later = [up for _, up, _ in keras if up > uploaded]
        until = min(later) if later else None
        before = [jv for jv, up, _ in jax if until is None or up < until]
        if before:
            out[str(kv)] = str(max(before))
    return out


def needs_numpy1(keras_version, jax_version=None):
    """Whether the pair needs ``numpy<2`` (the two rules of the module docstring)."""
    if Version(keras_version) < KERAS_NUMPY2:
        return True
    return jax_version is not None and Version(jax_version) < JAXLIB_NUMPY2


# --------------------------------------------------------------------------- the file

_HEADER = '''\
# The release sweep (`rnnspec sweep`, `rnnspec bisect`; README "Every Keras release").
# Written by `python -m rnnspec.tools.sweep_data --write` from PyPI's JSON API on the date
# below; edit the rules in tools/sweep_data.py and regenerate, not the table by hand.
#
# [[release]]: every Keras 3 release on PyPI (no pre-releases, no yanked releases), with
#   its first upload, its Requires-Python, and its JAX pairing:
#   jax      the highest `jax` uploaded before the next Keras release in time (the next upload
#            of any Keras version: a 3.12 patch published after 3.13.0 gets the jax of its own
#            date), among the jax releases that install on `python` below; the last upload gets
#            the newest such jax. jax >= 0.11 requires Python >= 3.12: never chosen on 3.11.
#   numpy    "<2" where the pair needs NumPy 1: Keras < 3.5.0 (np.Inf, keras-team/keras#20049)
#            on every backend, or a jaxlib < 0.4.26 (built against NumPy 1) on JAX.
# [backend.torch]: one torch for every release: the CPU wheel in `find_links` (uv reads no
#   pip configuration: without UV_FIND_LINKS, torch==2.13.0 resolves to the CUDA build).
#   `find_links` is used where the folder exists (elsewhere, e.g. CI, point UV_EXTRA_INDEX_URL
#   at https://download.pytorch.org/whl/cpu); `cpu_build`: an environment whose torch is not a
#   `+cpu` build is refused as not installable.
# [[backend.tensorflow.pair]]: each Keras 3 minor with the TensorFlow it was current with
#   (tox.ini's k3-tf2XX ranges, docs/conformance/README.md), so TF's first bad and first
#   fixed release are known to the minor only.
'''


def render(keras, jax_pairs, python, read_on):
    """The data file's text for ``keras`` (``releases()`` rows) and ``jax_pairs`` (``pair_jax``)."""
    lines = [_HEADER, f'read_from_pypi = "{read_on}"', f'python = "{python}"', "",
             "[backend.torch]", 'requirements = ["torch==2.13.0"]', 'find_links = "/opt/wheels"',
             'cpu_build = "torch"', "",
             "[backend.jax]", 'extra_env = { JAX_PLATFORMS = "cpu" }', "",
             "[backend.tensorflow]", 'extra_env = { TF_CPP_MIN_LOG_LEVEL = "3" }']
    for keras_range, tf in TF_PAIRS:
        lines += ["", "[[backend.tensorflow.pair]]", f'keras = "{keras_range}"',
                  f'requirements = ["tensorflow-cpu=={tf}.*"]']
    for v, uploaded, requires in keras:
        jax = jax_pairs.get(str(v))
        lines += ["", "[[release]]", f'keras = "{v}"', f'uploaded = "{uploaded.date().isoformat()}"',
                  f'requires_python = "{requires}"']
        if jax:
            lines.append(f'jax = "{jax}"')
        lines.append(f'numpy = "{"<2" if needs_numpy1(str(v), jax) else ""}"')
    return "\n".join(lines) + "\n"


#: each Keras 3 minor range with the TensorFlow minor it was current with (tox.ini header)
TF_PAIRS = ((">=3.0,<3.4", "2.16"), (">=3.4,<3.6", "2.17"), (">=3.6,<3.9", "2.18"),
            (">=3.9,<3.11", "2.19"), (">=3.11,<3.13", "2.20"), (">=3.13,<4", "2.21"))


def fetch(name):
    with urllib.request.urlopen(PYPI.format(name=name), timeout=60) as resp:
        return json.load(resp)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help=f"rewrite {DATA}")
    ap.add_argument("--python", default="3.11", help="the sweep's Python (default 3.11)")
    args = ap.parse_args(argv)
    keras = [r for r in releases(fetch("keras")) if r[0].major == 3]
    jax = releases(fetch("jax"), python=args.python)
    text = render(keras, pair_jax(keras, jax), args.python, _dt.date.today().isoformat())
    if args.write:
        DATA.parent.mkdir(exist_ok=True)
        DATA.write_text(text)
        print(f"wrote {DATA}: {len(keras)} Keras releases", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
