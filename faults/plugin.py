"""pytest plugin: run the suite against a Keras with one injected fault.

    RNNSPEC_FAULT=lstm_gate_order_if pytest -p rnnspec.faults.plugin spec

With ``RNNSPEC_FAULT`` unset the plugin does nothing. With it set, the fault
is applied in ``pytest_configure`` (before collection, so before any layer
is built or graph traced), the header says ``rnnspec: injected fault <name>``,
and the fault is undone at ``pytest_unconfigure``. An unknown name, or a fault
not implemented for the installed Keras major, is a usage error (exit 4):
the mutation runner must never mistake "fault not injected" for "fault escaped".
"""

import os

import pytest

ENV = "RNNSPEC_FAULT"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    name = os.environ.get(ENV, "").strip()
    config._rnnspec_fault = None
    if not name:
        return
    from rnnspec.faults.catalogue import get
    try:
        fault = get(name)
    except KeyError as exc:
        raise pytest.UsageError(f"{ENV}: {exc.args[0]}") from None
    if not fault.supported():
        from rnnspec.spec import adapter
        where = f" with the {'/'.join(fault.backends)} backend" if fault.backends else ""
        raise pytest.UsageError(f"{ENV}={name}: implemented for Keras majors {fault.majors}{where}, "
                                f"not for the installed Keras {adapter.KERAS_VERSION} ({adapter.BACKEND})")
    config._rnnspec_fault = fault
    config._rnnspec_fault_undo = fault.apply()


def pytest_report_header(config):
    fault = getattr(config, "_rnnspec_fault", None)
    if fault is None:
        return None
    return [f"rnnspec: injected fault {fault.name} (imitates: {fault.imitates})"]


def pytest_unconfigure(config):
    undo = getattr(config, "_rnnspec_fault_undo", None)
    if undo is not None:
        undo()
        config._rnnspec_fault_undo = None
