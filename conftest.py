"""Hypothesis profiles, the pytest header, and the conformance report plugin.

Profiles (choose with ``--hypothesis-profile NAME`` or ``RNNSPEC_PROFILE=NAME``):

- ``dev``: fast feedback while editing (few examples, random).
- ``ci``: deterministic (``derandomize``), prints the failure blob, the
  regression gate and the mutation runner use it.
- ``thorough``: many examples, random, for a pre-upgrade run.
- ``nightly``: exploring: many examples, random, and an example database
  (``.hypothesis/examples``, or ``$RNNSPEC_EXAMPLE_DB``) that keeps every
  failing example it finds and replays it first on the next run; cache the
  directory between nightly jobs.

Deadlines are off: the first call of a new configuration traces a graph
(tens to hundreds of ms on TF, about 1 s on JAX), which is not a fault.
Slow examples are visible in ``--hypothesis-show-statistics``.

Health checks: all are on, except the ones listed in ``_SUPPRESSED`` with
the measured reason for each.
"""

import os

from hypothesis import HealthCheck, Verbosity, settings
from hypothesis.database import DirectoryBasedExampleDatabase

pytest_plugins = ["rnnspec.spec.report"]

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

PROFILE = os.environ.get("RNNSPEC_PROFILE", "dev")
settings.load_profile(PROFILE)


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
        f"rnnspec: graph-shape pool seed {os.environ.get('RNNSPEC_POOL_SEED', '0')} (RNNSPEC_POOL_SEED)",
    ]
