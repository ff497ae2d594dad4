"""Chapter 13 -- the documented contract: every documented argument has a claim.

What rnnspec holds Keras to is what Keras documents, argument by argument.
The inventory (``spec/inventory.py``) reads, from the installed Keras, every
constructor and call argument of ``SimpleRNN``, ``LSTM``, ``GRU``, ``RNN``,
``Bidirectional``, ``SimpleRNNCell``, ``LSTMCell``, ``GRUCell`` and
``StackedRNNCells``: the signature, the docstring's ``Args`` and ``Call
arguments``, and the ``get_config()`` keys.

- Every argument that the docstring or the signature names is in the argument
  map (``spec/data/arguments.toml``), with the claims that specify it or a
  written reason why it is out of scope. A Keras release that adds an
  argument fails here until the map covers it.
- Every mapped argument is exercised: the claims it maps to pass it with at
  least two different values in the run (the adapter notes what they pass,
  ``spec/arguments.py``). The report plugin checks this once every claim has
  run and reports it as the claim ``test_every_mapped_argument_is_exercised``
  of this chapter; an argument whose claims did not run in the session (a
  partial run) is reported as not run.

- A call argument that the docstring names can be passed by that name: the
  input passed by its documented name gives what the input passed by
  position gives. (Keras 3 documents the input of LSTM and GRU as ``inputs``
  and of SimpleRNN as ``sequence`` and takes ``sequences``: a finding,
  ``keras3-documented-input-name-not-accepted``.)

The names the three sources disagree on (documented but not accepted by that
name, accepted but undocumented, configured only) are recorded in the report
(``observed``) and listed by ``python -m rnnspec.tools.api_inventory``.
"""

import numpy as np
import pytest

from rnnspec.spec import adapter, arguments, inventory, outcomes
from rnnspec.spec.conformance import call_unless_listed_crash
from rnnspec.spec.divergences import argument_divergence
from rnnspec.spec.report import environment, note_inventory, note_observation


@pytest.fixture(scope="module")
def installed():
    return inventory.inventory(adapter.keras)


def test_every_documented_argument_is_mapped(installed):
    """Every argument that the installed Keras documents or accepts by name has a claim or a reason."""
    documented = inventory.documented(installed)
    note_inventory(documented)
    for cls, arg, sources in inventory.single_source(installed):
        note_observation("sources disagree", f"{cls}.{arg}: {'+'.join(sources) or 'none'}")
    unmapped = [f"{cls}.{arg} ({where})" for cls, arg, where in documented
                if arguments.entry_for(cls, arg, where, environment()) is None]
    assert not unmapped, (
        f"{len(unmapped)} argument(s) of the installed Keras have no entry in spec/data/arguments.toml "
        f"(a claim, or an out-of-scope reason): {', '.join(unmapped)}")
    outcomes.asserted_formulas()



def _named_only_in_the_docstring(installed, cls):
    args = installed.get(cls, {"arguments": {}})["arguments"]
    return [a for a, rec in args.items() if rec["where"] == "call" and rec["docstring"] and not rec["signature"]]


LAYERS = ("SimpleRNN", "LSTM", "GRU", "RNN", "Bidirectional")


@pytest.mark.parametrize("cls", LAYERS)
def test_documented_call_arguments_are_accepted_by_name(installed, cls):
    """A call argument named by the docstring but not by the signature still works under that name."""
    names = _named_only_in_the_docstring(installed, cls)
    if not names:
        pytest.skip(f"every call argument that the {cls} docstring names is in its signature: "
                    "Python accepts it by name, so this claim cannot fail here")
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 2)).astype(np.float32)
    layer = inventory.small_instance(adapter.keras, cls)
    by_position = adapter.call(layer, x)
    for name in names:
        entry = argument_divergence(cls, name)
        got = call_unless_listed_crash(entry, lambda: adapter.call_with_input_named(layer, name, x),
                                       what=f"{cls}(...)({name}=x)")
        if got is not None:
            np.testing.assert_array_equal(got[0], by_position[0],
                                          err_msg=f"{cls}: the input passed as {name}= computes otherwise")
            outcomes.asserted_formulas()
