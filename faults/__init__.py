"""Faults injected into the installed Keras at run time: the suite's mutation testing.

Each entry of :data:`rnnspec.faults.catalogue.CATALOGUE` imitates a real-world bug in
a recurrent layer (a swapped gate order, a mask that leaks, an off-by-one in
the time loop...) by monkeypatching the Keras function or method where the
real code lives. Nothing in site-packages is edited; ``Fault.apply()``
returns a callable that puts every patched attribute back.

- :mod:`rnnspec.faults.catalogue` -- the faults.
- :mod:`rnnspec.faults.plugin` -- ``pytest -p rnnspec.faults.plugin`` with ``RNNSPEC_FAULT=<name>``
  runs the suite against a faulty Keras.
- ``python -m rnnspec.tools.mutation`` runs the suite once per fault and reports
  which claim caught each one (docs/mutation.md).
"""

from rnnspec.faults.catalogue import CATALOGUE, Fault, get, names

__all__ = ["CATALOGUE", "Fault", "get", "names"]
