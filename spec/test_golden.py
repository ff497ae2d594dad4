"""Chapter 10 -- saved models across versions: files written by the oldest stacks still load.

A model saved under TensorFlow 2.12 or 2.15 with Keras 2 is read by every later
environment. The golden corpus (``spec/data/golden/<env>/``, written there by
``python -m rnnspec.tools.compat write``, with a manifest and sha256 checksums) holds the
compatibility corpus of ``spec/compat.py`` -- every cell kind, the flags that change the
weight layout or the semantics, GRU without ``reset_after``, ``hard_sigmoid``,
Bidirectional, a stack and a registered user-defined cell -- as the ``to_json`` config,
weights (``.weights.h5``, legacy ``.h5``, TF checkpoint) and whole models (``.keras``,
legacy ``.h5``), next to the formulas' float64 outputs for fixed inputs. SavedModels are
left out (about 15 MB per environment).

Each artifact, read here, ends in exactly one of the outcomes the matrix uses
(``spec/compat.py``): it loads and computes the writer's reference outputs (within the
tolerance table); or the reader refuses it with the clear error that
``spec/data/compat.toml`` lists (refused), or does not read the format at all (unsupported,
with the reason); or it is a listed finding -- it loads but computes what the finding's
model says, or crashes as listed. Anything else is a new finding and fails the run, and so
does a listed finding that now loads and matches (fixed). So a user on Keras 3 learns,
without installing TF 2.12, whether the files of their era still load and compute the same.
"""

import json

import pytest

from rnnspec.spec import compat, outcomes


def _artifacts():
    params = []
    for directory in sorted(p.parent for p in compat.GOLDEN.glob("*/manifest.json")):
        manifest = json.loads((directory / "manifest.json").read_text())
        for model_id, entry in manifest["models"].items():
            for name, artifact in entry["artifacts"].items():
                if artifact["saved"]:
                    params.append(pytest.param(directory, model_id, name,
                                               id=f"{directory.name}-{model_id}-{name}"))
    return params


@pytest.mark.parametrize("directory, model_id, name", _artifacts())
def test_golden_artifact_loads_and_computes_the_same(directory, model_id, name):
    """An artifact of the golden corpus: matches, or is refused / unsupported / a finding as listed."""
    from rnnspec.spec.report import environment
    manifest = json.loads((directory / "manifest.json").read_text())
    compat.register_user_objects()
    result = compat.read_artifact(directory, manifest, model_id, name, environment())
    where = f"{directory.name} {model_id} {name}"
    outcome, listed, detail = result["outcome"], result["listed"], result["detail"]
    if result.get("fixed"):
        raise outcomes.DivergenceFixed(f"fixed in this environment: {where} loads and matches, but "
                                       f"{', '.join(result['fixed'])} lists it (spec/data/compat.toml)")
    if outcome == "match":
        outcomes.asserted_formulas()
    elif outcome == "unsupported":
        outcomes.unsupported(f"{listed}: {detail}")
    elif outcome == "refused":
        outcomes.refused(f"{listed}: {detail}")
    elif listed and outcome == "differs":
        outcomes.asserted_model(listed)
    elif listed and outcome == "crash":
        outcomes.raised_as_modelled(listed)
    elif outcome == "crash":
        raise outcomes.KerasCrashed(f"{where}: loading raised, and no entry of spec/data/compat.toml lists it: "
                                    f"{detail}\n  reproducer: {reproducer(directory, model_id, name)}")
    else:
        raise AssertionError(f"{where}: loads, but computes something else than the writer's reference "
                             f"outputs ({detail}), and no entry of spec/data/compat.toml lists it"
                             f"\n  reproducer: {reproducer(directory, model_id, name)}")


def reproducer(directory, model_id, name):
    """The command that reads one artifact again and prints its outcome."""
    return (f"python -m rnnspec.tools.compat read {directory} -o /tmp/read.json  "
            f"(artifact {model_id}/{name.replace(':', '-')}; expected outputs in {model_id}/expected.npz)")
