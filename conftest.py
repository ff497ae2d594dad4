"""The checkout's pytest configuration lives in the installed package.

rnnspec's pytest plugin -- the Hypothesis profiles (``RNNSPEC_PROFILE``), the
header, the conformance report (``--report-json``), the markers, and the
check that no module is imported under two names -- is ``rnnspec.plugin``,
which pytest loads through the ``pytest11`` entry point of the installed
distribution, in this checkout as from a wheel. This file only says so when
rnnspec is not installed in the Python that runs pytest.
"""

import pytest


def pytest_configure(config):
    pm = config.pluginmanager
    if not pm.has_plugin("rnnspec") and not pm.is_blocked("rnnspec"):   # -p no:rnnspec: as asked
        raise pytest.UsageError(
            "rnnspec is not installed in this Python: run `tox -e spec` / `tox -e tests`, "
            "or `pip install -e '.[tf]'` here first (README.md, Installing it)")
