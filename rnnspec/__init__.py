"""rnnspec: an executable, property-based specification of Keras recurrent layers.

One namespace for the whole distribution. The repository keeps its folders;
pyproject.toml (``[tool.setuptools] package-dir``) maps them here:

- :mod:`rnnspec.spec` -- ``spec/``: the specification (pytest modules) and its harness;
- :mod:`rnnspec.reference` -- ``reference/``: the float64 NumPy formulas;
- :mod:`rnnspec.faults` -- ``faults/``: the fault catalogue (mutation testing);
- :mod:`rnnspec.tools` -- ``tools/``: report merge/diff, the mutation runner, measurements;
- :mod:`rnnspec.plugin` -- the pytest plugin (entry point ``pytest11``): Hypothesis
  profiles, the header, the conformance report, and the check that no module is
  imported under two names.

Install it (``pip install -e .`` in a checkout, ``pip install 'rnnspec[tf]'``
elsewhere); nothing here edits ``sys.path``.
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("rnnspec")
except _metadata.PackageNotFoundError:   # a source tree that is not installed
    __version__ = "0+unknown"

#: the distribution's packages: name -> the repository folder it is installed from
PACKAGES = {
    "rnnspec": "rnnspec",
    "rnnspec.spec": "spec",
    "rnnspec.reference": "reference",
    "rnnspec.faults": "faults",
    "rnnspec.tools": "tools",
}
