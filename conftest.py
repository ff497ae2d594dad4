"""Hypothesis profiles, the pytest header, and the conformance report plugin.

Profiles (choose with ``--hypothesis-profile NAME`` or ``RNNSPEC_PROFILE=NAME``):

- ``dev``: fast feedback while editing (few examples, random).
- ``ci``: deterministic (``derandomize``), prints the failure blob, the
  regression gate and the mutation runner use it.
- ``thorough``: many examples, random, for a nightly or pre-upgrade run.

Deadlines are off: the first call of a new configuration traces a graph
(tens to hundreds of ms on TF, about 1 s on JAX), which is not a fault.
Slow examples are visible in ``--hypothesis-show-statistics``.
"""

import os

from hypothesis import HealthCheck, Verbosity, settings

pytest_plugins = ["spec.report"]

_COMMON = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much],
)
settings.register_profile("dev", max_examples=15, **_COMMON)
settings.register_profile("ci", max_examples=40, derandomize=True, print_blob=True,
                          database=None, **_COMMON)
settings.register_profile("thorough", max_examples=600, print_blob=True, **_COMMON)
settings.register_profile("debug", max_examples=10, verbosity=Verbosity.verbose, **_COMMON)

PROFILE = os.environ.get("RNNSPEC_PROFILE", "dev")
settings.load_profile(PROFILE)


def pytest_report_header(config):
    from spec import report
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
