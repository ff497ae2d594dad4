"""The compatibility tools: outcome rules, the merge and its gate, the golden corpus, the fingerprint.

The fingerprint tests read fingerprints written under TF 2.15 / Keras 2.15 (k2-tf215,
``spec/data/golden/fingerprints/``) and check them here, under TF 2.21 / Keras 3 (the tests env).
"""

import json
import sys
from pathlib import Path

import pytest

from rnnspec.spec import compat_rules
from rnnspec.tools import compat as tool

ROOT = Path(__file__).resolve().parent.parent
from rnnspec.spec.compat import GOLDEN  # noqa: E402
FINGERPRINTS = GOLDEN / "fingerprints"

K2 = {"keras": "2.15.0", "tensorflow": "2.15.1", "backend": "tensorflow", "keras_package": "keras", "env_name": "k2"}
K3 = {"keras": "3.15.1", "tensorflow": "2.21.0", "backend": "tensorflow", "keras_package": "keras", "env_name": "k3"}
K3_JAX = {"keras": "3.15.1", "tensorflow": None, "backend": "jax", "keras_package": "keras", "env_name": "k3j"}

TABLE = {
    "unsupported": [{"id": "no-tf", "format": ["model:savedmodel"], "reader": {"backend": ["jax", "torch"]},
                     "reason": "no TensorFlow"}],
    "refusal": [{"id": "clear", "format": "model:savedmodel", "reader": {"keras": ">=3"},
                 "exception": ["ValueError"], "message": "not supported", "reason": "r"}],
    "finding": [
        {"id": "hs", "outcome": "differs", "model": "hard_sigmoid", "writer": {"keras": "<3"},
         "reader": {"keras": ">=3"}, "model_of_values": "reader-conventions", "reason": "r"},
        {"id": "h5crash", "outcome": "crash", "format": "model:h5", "writer": {"keras": "<3"},
         "reader": {"keras": ">=3"}, "exception": ["ValueError"], "message": "time_major", "reason": "r"},
    ],
}


def _classify(raw, fmt="model:h5", model="cells", writer=K2, reader=K3):
    return compat_rules.classify(raw, fmt=fmt, model_id=model, writer_env=writer, reader_env=reader, data=TABLE)


def test_classify_each_outcome():
    crash = {"loaded": False, "exception_mro": ["ValueError", "Exception"], "message": "unexpected 'time_major'"}
    assert _classify(crash) == {"outcome": "crash", "listed": "h5crash"}
    assert _classify({**crash, "message": "something else"}) == {"outcome": "crash", "listed": None}
    assert _classify({**crash, "exception_mro": ["TypeError"]})["listed"] is None   # wrong class: new
    assert _classify(crash, writer=K3) == {"outcome": "crash", "listed": None}      # outside the bounds
    refused = {"loaded": False, "exception_mro": ["ValueError"], "message": "format not supported"}
    assert _classify(refused, fmt="model:savedmodel") == {"outcome": "refused", "listed": "clear"}
    assert _classify(refused, fmt="model:savedmodel", reader=K3_JAX)["outcome"] == "unsupported"
    assert _classify({"loaded": True, "matches": True}, fmt="json") == {"outcome": "match", "listed": None}
    # a crash finding whose artifact now loads and matches is "fixed" too
    assert _classify({"loaded": True, "matches": True})["fixed"] == ["h5crash"]
    # a listed finding that matches is "fixed"
    assert _classify({"loaded": True, "matches": True}, fmt="json", model="hard_sigmoid")["fixed"] == ["hs"]
    # differs as the finding's model says, or otherwise (new)
    modelled = {"loaded": True, "matches": False, "matches_reader_conventions": True}
    assert _classify(modelled, fmt="json", model="hard_sigmoid") == {"outcome": "differs", "listed": "hs"}
    assert _classify({**modelled, "matches_reader_conventions": False}, fmt="json", model="hard_sigmoid")["listed"] is None
    assert _classify(modelled, fmt="json", model="cells")["listed"] is None


def _result(outcome, listed=None, writer="k2", reader="k3", fmt="model:h5", model="cells", **extra):
    return {"writer": writer, "reader": reader, "format": fmt, "model": model, "outcome": outcome,
            "listed": listed, "detail": "d", **extra}


def test_gate_fails_when_a_matching_cell_stops_matching():
    baseline = {"k2|k3|model:h5|cells": "match", "k2|k3|model:h5|stack": "crash"}
    ok = [_result("match"), _result("crash", "h5crash", model="stack")]
    assert tool.gate(ok, baseline, [], {"k2"}, {"k3"}) == []
    broken = [_result("crash", "h5crash"), _result("crash", "h5crash", model="stack")]
    failures = tool.gate(broken, baseline, [], {"k2"}, {"k3"})
    assert len(failures) == 1 and failures[0].startswith("regression: k2|k3|model:h5|cells")
    # a cell that crashed before and now matches is an improvement, not a failure
    assert tool.gate([_result("match"), _result("match", model="stack")], baseline, [], {"k2"}, {"k3"}) == []


def test_gate_fails_on_new_and_fixed_findings_and_missing_environments():
    failures = tool.gate([_result("differs"), _result("match", fixed=["hs"], model="hard_sigmoid"),
                          _result("harness-error", model="stack")], {}, ["k2", "k3", "k9"], {"k2"}, {"k3"})
    text = "\n".join(failures)
    assert "new finding: k2|k3|model:h5|cells differs" in text
    assert "fixed: k2|k3|model:h5|hard_sigmoid" in text
    assert "harness error" in text
    assert "incomplete: k9 (tox.ini env_list) wrote no corpus" in text and "incomplete: k9" in text


def test_env_list_is_every_matrix_environment():
    envs = tool.tox_env_list()
    assert envs[:4] == ["k2-tf212", "k2-tf213", "k2-tf214", "k2-tf215"]
    assert {"k2legacy-tf221", "k3-tf216", "k3-tf221", "k3-jax", "k3-torch"} <= set(envs)


def test_merge_renders_and_keeps_the_baseline_when_the_gate_fails(tmp_path):
    reads, written = tmp_path / "read", tmp_path / "written"
    reads.mkdir()
    for name, env in (("k2", K2), ("k3", K3)):
        (written / name).mkdir(parents=True)
        (written / name / "manifest.json").write_text(json.dumps({"environment": env, "models": {}}))
    raw = {"loaded": True, "matches": True, "detail": ""}
    (reads / "k3.json").write_text(json.dumps({
        "reader": "k3", "environment": K3, "seconds": 1.0, "writers": {"k2": K2, "k3": K3},
        "results": [{**_result("match", writer=w, fmt="json"), **raw} for w in ("k2", "k3")]}))
    cells, out, data = tmp_path / "cells.json", tmp_path / "matrix.md", tmp_path / "compat.toml"
    data.write_text('[[finding]]\nid = "x"\noutcome = "crash"\nformat = "model:h5"\nexception = ["KeyError"]\n'
                    'message = "boom"\nreason = "r"\n')
    args = ["merge", "--reads", str(reads), "--written", str(written), "-o", str(out), "--cells", str(cells),
            "--no-env-list", "--data", str(data)]
    assert tool.main(args) == 0
    assert tool.read_cells(cells) == {"k2|k3|json|cells": "match", "k3|k3|json|cells": "match"}
    text = out.read_text()
    assert "### json" in text and "| k2 |" in text and "Gate: passed" in text
    # now k2's artifact crashes, unlisted: the gate fails and the baseline stays
    data = json.loads((reads / "k3.json").read_text())
    data["results"][0].update(loaded=False, exception_mro=["KeyError"], message="boom", matches=None)
    (reads / "k3.json").write_text(json.dumps(data))
    assert tool.main(args) == 1
    assert tool.read_cells(cells)["k2|k3|json|cells"] == "match"
    assert "**FAILED**" in out.read_text()


def test_golden_corpus_checksums_and_size():
    from rnnspec.spec import compat
    dirs = sorted(p.parent for p in GOLDEN.glob("*/manifest.json"))
    assert [d.name for d in dirs] == ["k2-tf212", "k2-tf215"]
    for d in dirs:
        assert compat.verify_checksums(d) == [], d
    total = sum(p.stat().st_size for p in GOLDEN.rglob("*") if p.is_file())
    assert total < 5e6, f"golden corpus {total / 1e6:.2f} MB"


# --------------------------------------------------------------------------- fingerprint

def _fingerprint(*args):
    from rnnspec.tools import fingerprint
    return fingerprint.main([str(a) for a in args])


def _golden(model, fmt="model-h5", name="model.h5", env="k2-tf215"):
    return GOLDEN / env / model / fmt / name


def test_fingerprint_from_tf215_checked_here_the_model_file_does_not_load(capsys):
    """A Keras 2.15 .h5 model does not load in Keras 3 (keras3-legacy-h5-rnn-time-major): exit 2."""
    assert _fingerprint("check", _golden("cells"), FINGERPRINTS / "k2-tf215-cells.json") == 2
    assert "time_major" in capsys.readouterr().out


def test_fingerprint_from_tf215_checked_here_rebuilt_with_its_weights(capsys):
    """Rebuilt in code with the .h5 file's weights: the same weights and the same outputs as under TF 2.15."""
    code = _fingerprint("check", _golden("cells"), FINGERPRINTS / "k2-tf215-cells.json",
                        "--build", "rnnspec.spec.compat:build_model", "--build-args", "cells")
    out = capsys.readouterr().out
    assert code == 0, out
    assert "written with Keras 2.15.0" in out and "SAME" in out and "weights: the same" in out


def test_fingerprint_from_tf215_catches_the_hard_sigmoid_change(capsys):
    code = _fingerprint("check", _golden("hard_sigmoid"), FINGERPRINTS / "k2-tf215-hard_sigmoid.json",
                        "--build", "rnnspec.spec.compat:build_model", "--build-args", "hard_sigmoid")
    out = capsys.readouterr().out
    assert code == 1, out
    assert "weights: the same" in out and "output 0: DIFFERS" in out


def test_fingerprint_round_trip_here(tmp_path, capsys):
    """Written and checked in one environment: the same; other weights in the file: differs."""
    import numpy as np
    from rnnspec.spec import adapter, compat
    model = compat.build_model("stack", compat.corpus_weights("stack", True))
    path = tmp_path / "m.keras"
    model.save(str(path))
    fp = tmp_path / "m.json"
    assert _fingerprint("write", path, "-o", fp) == 0
    assert _fingerprint("check", path, fp) == 0
    model.set_weights([w + np.float32(1e-2) for w in model.get_weights()])
    model.save(str(path))
    capsys.readouterr()
    assert _fingerprint("check", path, fp) == 1
    assert "weights: DIFFER" in capsys.readouterr().out
    assert adapter.IS_KERAS3


def test_unsupported_is_not_attempted_and_fixed_gates_the_upgrade_direction_only():
    skipped = {"loaded": None, "not_attempted": "no-tf"}
    assert _classify(skipped, fmt="model:savedmodel", reader=K3_JAX) == {"outcome": "unsupported", "listed": "no-tf"}
    # the rule is gone (or no longer covers it): the artifact must be read again
    assert _classify(skipped, fmt="model:savedmodel", reader=K3)["outcome"] == "harness-error"
    envs = {"k2": K2, "k3": K3}
    newer_to_older = [_result("match", writer="k3", reader="k2", fixed=["x"])]
    assert tool.gate(newer_to_older, {}, [], {"k3"}, {"k2"}, envs) == []
    upgrade = [_result("match", fixed=["x"])]
    assert len(tool.gate(upgrade, {}, [], {"k2"}, {"k3"}, envs)) == 1
    assert tool.upgrade_direction(K2, K3) and tool.upgrade_direction(K3, K3_JAX) and not tool.upgrade_direction(K3, K2)
