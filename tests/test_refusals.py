"""spec/refusals.py: refused or crashed, from the rules in spec/data/refusals.toml.

Most tests need no Keras: the rule matching runs on synthetic exceptions with
a monkeypatched ``innermost_keras_frame``, the frame finder on code compiled
under a fake ``site-packages/keras/`` path, and the rules are replayed against
the recorded surveys (docs/measurements/refusals-*.json). The last tests use
the installed Keras (skipped without one).
"""

import json
import re
import sys
import textwrap
import types
from pathlib import Path

import pytest

from rnnspec.spec import refusals
from rnnspec.spec.report import divergence_applies

ROOT = Path(__file__).resolve().parent.parent
BAD = "spec/test_bad_input.py::"
ZERO = BAD + "test_zero_timesteps_is_refused"
RANK = BAD + "test_wrong_rank_is_refused"
STATE = BAD + "test_mismatched_initial_state_is_refused"
NO_BATCH = BAD + "test_stateful_without_batch_size_is_refused"
UNITS = BAD + "test_non_positive_units_are_refused"
OTHER_BATCH = "spec/test_stateful.py::test_other_batch_size_is_refused"

K3_TF = {"keras": "3.15.1", "tensorflow": "2.21.0", "backend": "tensorflow", "keras_package": "keras"}
K3_TORCH = {"keras": "3.15.1", "tensorflow": None, "backend": "torch", "keras_package": "keras"}
K3_JAX = {"keras": "3.15.1", "tensorflow": None, "backend": "jax", "keras_package": "keras"}
K3_11 = {"keras": "3.11.3", "tensorflow": "2.19.0", "backend": "tensorflow", "keras_package": "keras"}
K3_9_TORCH = {"keras": "3.9.2", "tensorflow": None, "backend": "torch", "keras_package": "keras"}
K3_9_JAX = {"keras": "3.9.2", "tensorflow": None, "backend": "jax", "keras_package": "keras"}
K2 = {"keras": "2.15.0", "tensorflow": "2.15.1", "backend": "tensorflow", "keras_package": "keras"}
TF_KERAS = {"keras": "2.21.0", "tensorflow": "2.21.0", "backend": "tensorflow", "keras_package": "tf_keras"}

SITE = "/venv/lib/python3.11/site-packages/"


def _fake_class(qualified, bases=(Exception,)):
    """An exception class whose module-qualified name is ``qualified`` (e.g. tensorflow's InvalidArgumentError)."""
    module, _, name = qualified.rpartition(".")
    cls = type(name, bases, {})
    cls.__module__ = module
    cls.__qualname__ = name
    return cls


@pytest.fixture
def frame_at(monkeypatch):
    """Pretend the innermost Keras frame is ``path:line`` and whether that line is a raise."""
    def set_frame(path, line=10, is_raise=True, source="raise ValueError("):
        if path is None:
            monkeypatch.setattr(refusals, "innermost_keras_frame", lambda exc: None)
            return
        full = SITE + path
        monkeypatch.setattr(refusals, "innermost_keras_frame", lambda exc: (full, line, source))
        monkeypatch.setattr(refusals, "is_raise_statement", lambda f, n: is_raise if (f, n) == (full, line) else False)
    return set_frame


# --------------------------------------------------------------------------- rule matching

def test_a_documented_refusal_is_refused(frame_at):
    frame_at("keras/src/layers/input_spec.py", 198)
    exc = ValueError("Input 0 with name 'None' of layer 'lstm' is incompatible with the layer: "
                     "expected ndim=3, found ndim=2. Full shape received: (2, 3)")
    outcome, detail = refusals.classify(RANK, exc, K3_TF)
    assert outcome == "refused"
    assert detail.startswith("builtins.ValueError: Input 0 with name")
    assert "keras/src/layers/input_spec.py:198 [raise]" in detail


def test_the_right_message_from_a_line_that_is_not_a_raise_is_a_crash(frame_at):
    frame_at("keras/src/layers/input_spec.py", 198, is_raise=False, source="x = shape[3]")
    exc = ValueError("incompatible with the layer: expected ndim=3, found ndim=2")
    outcome, detail = refusals.classify(RANK, exc, K3_TF)
    assert outcome == "crashed"
    assert "not a raise statement" in detail


def test_another_class_is_a_crash(frame_at):
    frame_at("keras/src/layers/input_spec.py", 198)
    outcome, detail = refusals.classify(RANK, TypeError("expected ndim=3, found ndim=2"), K3_TF)
    assert outcome == "crashed"
    assert "class not in ['ValueError']" in detail


def test_a_subclass_of_the_documented_class_is_accepted(frame_at):
    frame_at("keras/src/layers/rnn/lstm.py", 110)
    Special = _fake_class("somewhere.SpecialValueError", (ValueError,))
    exc = Special("Received an invalid value for argument `units`, expected a positive integer, got 0.")
    assert refusals.classify(UNITS, exc, K3_TF)[0] == "refused"


def test_a_message_that_does_not_name_the_problem_is_a_crash(frame_at):
    frame_at("keras/src/layers/rnn/rnn.py", 281)
    outcome, detail = refusals.classify(NO_BATCH, ValueError("something went wrong"), K3_TF)
    assert outcome == "crashed"
    assert "message does not match" in detail


def test_a_raise_in_other_keras_code_is_a_crash(frame_at):
    """An explicit raise, but in the variable-assign check, not in the RNN's validation."""
    frame_at("keras/src/backend/common/variables.py", 281)
    exc = ValueError("If an RNN is stateful, the batch size of the input sequences must be the same as "
                     "the batch size of the initial state.")
    outcome, detail = refusals.classify(OTHER_BATCH, exc, K3_TF)
    assert outcome == "crashed"
    assert "raised in keras/src/backend/common/variables.py" in detail


def test_no_keras_frame_is_a_crash_and_says_so(frame_at):
    frame_at(None)
    exc = ValueError("incompatible with the layer: expected ndim=3, found ndim=2")
    outcome, detail = refusals.classify(RANK, exc, K3_TF)
    assert outcome == "crashed"
    assert "no Keras frame" in detail and "keras_tracebacks()" in detail


def test_an_op_error_is_a_crash_and_names_the_listed_crash(frame_at):
    frame_at("keras/src/backend/tensorflow/numpy.py", 620, is_raise=False,
             source="output = tf.matmul(x1, x2, output_type=output_type)")
    InvalidArgumentError = _fake_class("tensorflow.python.framework.errors_impl.InvalidArgumentError")
    exc = InvalidArgumentError("{{function_node __wrapped__MatMul}} Matrix size-incompatible: In[0]: [2,3], "
                               "In[1]: [2,2] [Op:MatMul]")
    outcome, detail = refusals.classify(STATE, exc, K3_TF)
    assert outcome == "crashed"
    assert detail.startswith("tensorflow.python.framework.errors_impl.InvalidArgumentError: ")
    assert "[not a raise]" in detail
    assert "no refusal rule for this claim in this environment" in detail
    assert "listed crash mismatched-initial-state-matmul-tf" in detail


def test_the_rule_depends_on_the_environment(frame_at):
    """Keras 2 refuses a mismatched initial_state on purpose; Keras 3 has no such rule."""
    frame_at("keras/src/layers/rnn/base_rnn.py", 520, source="raise validation_error")
    exc = ValueError("An `initial_state` was passed that is not compatible with `cell.state_size`. "
                     "Received `state_spec`=ListWrapper([InputSpec(shape=(2, 3), ndim=2)]); "
                     "however `cell.state_size` is [2]")
    assert refusals.classify(STATE, exc, K2)[0] == "refused"
    frame_at("tf_keras/src/layers/rnn/base_rnn.py", 521, source="raise validation_error")
    assert refusals.classify(STATE, exc, TF_KERAS)[0] == "refused"
    assert refusals.classify(STATE, exc, K3_TF)[0] == "crashed"


def test_version_bounds_of_the_stateful_batch_refusal(frame_at):
    frame_at("keras/src/layers/rnn/rnn.py", 396)
    exc = ValueError("If an RNN is stateful, the batch size of the input sequences must be the same as "
                     "the batch size of the initial state. \n- Expected batch size: 2\n- Received batch size: 3")
    assert refusals.classify(OTHER_BATCH, exc, K3_TF)[0] == "refused"
    assert refusals.classify(OTHER_BATCH, exc, dict(K3_TF, keras="3.12.0"))[0] == "refused"
    outcome, detail = refusals.classify(OTHER_BATCH, exc, K3_11)
    assert outcome == "crashed" and "no refusal rule" in detail


def test_zero_timesteps_has_no_refusal_rule_anywhere(frame_at):
    frame_at("keras/src/layers/rnn/rnn.py", 422, is_raise=False, source="self.cell, sequences[:, 0, :], initial_state")
    for env in (K3_TF, K3_TORCH, K3_11, K2, TF_KERAS):
        outcome, detail = refusals.classify(ZERO, IndexError("index 0 is out of bounds for dimension 1 with size 0"), env)
        assert outcome == "crashed"
    assert "listed crash zero-timesteps-first-step-index-torch" in refusals.classify(
        ZERO, IndexError("index 0 is out of bounds"), K3_TORCH)[1]


def test_the_wrapped_message_is_unwrapped(frame_at):
    """Keras's "Exception encountered ... Arguments received by" wrapper cannot make a crash match."""
    wrapped = ("Exception encountered when calling SimpleRNNCell.call().\n\n\x1b[1m{{function_node MatMul}} "
               "Matrix size-incompatible\x1b[0m\n\nArguments received by SimpleRNNCell.call():\n"
               "  • initial_state=An `initial_state` was passed that is not compatible with `cell.state_size`")
    assert refusals.message_of(ValueError(wrapped)) == "{{function_node MatMul}} Matrix size-incompatible"
    keras2 = ("Exception encountered when calling layer 'lstm' (type LSTM).\n\nslice index 0 of dimension 0 "
              "out of bounds.\n\nCall arguments received by layer 'lstm' (type LSTM):\n  • mask=None")
    assert refusals.message_of(ValueError(keras2)) == "slice index 0 of dimension 0 out of bounds."
    assert refusals.message_head(ValueError(keras2)) == "slice index 0 of dimension 0 out of bounds."
    frame_at("keras/src/layers/rnn/base_rnn.py", 520)
    assert refusals.classify(STATE, ValueError(wrapped), K2)[0] == "crashed"


def test_env_none_means_the_environment_under_test(frame_at, monkeypatch):
    frame_at("keras/src/layers/rnn/base_rnn.py", 520)
    monkeypatch.setattr(refusals, "current_environment", lambda: K2)
    exc = ValueError("An `initial_state` was passed that is not compatible with `cell.state_size`.")
    assert refusals.classify(STATE, exc)[0] == "refused"
    monkeypatch.setattr(refusals, "current_environment", lambda: K3_TF)
    assert refusals.classify(STATE, exc)[0] == "crashed"


def test_detail_is_one_line(frame_at):
    frame_at("keras/src/layers/rnn/rnn.py", 281)
    exc = ValueError("When using `stateful=True` in a RNN, the batch size must be static.\n" + "x" * 500)
    outcome, detail = refusals.classify(NO_BATCH, exc, K3_TF)
    assert outcome == "refused" and "\n" not in detail and len(detail) < 300


# --------------------------------------------------------------------------- the data file

def test_every_rule_is_complete_and_well_formed():
    data = refusals.load()
    assert data["refusal"] and data["crash"]
    claims_with_rules = set()
    for rule in data["refusal"]:
        assert rule["claim"] in refusals.CLAIM_IDS, rule["claim"]
        assert isinstance(rule["exception"], list) and rule["exception"]
        re.compile(rule["message"])
        if "raised_in" in rule:
            re.compile(rule["raised_in"])
        assert rule.get("explicit_raise") is True, "every measured refusal is an explicit raise"
        assert "2026-" in rule["how"], "each rule says when it was measured"
        assert set(rule.get("when", {})) <= {"keras", "tensorflow", "backend", "keras_package"}
        divergence_applies(rule, K3_TF)  # bounds parse
        claims_with_rules.add(rule["claim"])
    assert claims_with_rules == set(refusals.CLAIM_IDS) - {ZERO}
    ids = [c["id"] for c in data["crash"]]
    assert len(ids) == len(set(ids))
    for crash in data["crash"]:
        assert crash["claim"] in refusals.CLAIM_IDS
        for key in ("when", "exception", "message", "frame", "why"):
            assert crash[key], (crash["id"], key)


def test_no_rule_accepts_a_listed_crash(monkeypatch):
    """A listed crash (its class, its message, its frame) is never classified as refused where it applies."""
    candidates = [K3_TF, K3_TORCH, K3_JAX, K3_11, K3_9_TORCH, K3_9_JAX, K2, TF_KERAS]
    for crash in refusals.load()["crash"]:
        envs = [env for env in candidates if divergence_applies(crash, env)]
        assert envs, f"{crash['id']}: no test environment inside its `when`"
        base = ValueError if crash["exception"].endswith(".ValueError") else Exception
        cls = _fake_class(crash["exception"], (base,))
        where = re.search(r"((?:tf_)?keras/\S+?\.py):(\d+)", crash["frame"])
        path, line = (where.group(1), int(where.group(2))) if where else ("keras/unknown.py", 1)
        monkeypatch.setattr(refusals, "innermost_keras_frame", lambda exc, p=path, n=line: (SITE + p, n, ""))
        monkeypatch.setattr(refusals, "is_raise_statement", lambda f, n, r="`raise" in crash["frame"]: r)
        for env in envs:
            outcome, detail = refusals.classify(crash["claim"], cls(crash["message"]), env)
            assert outcome == "crashed", (crash["id"], env, detail)
            assert crash["id"] in detail


# --------------------------------------------------------------------------- replaying the surveys

SURVEYS = sorted((ROOT / "docs" / "measurements").glob("refusals-*.json"))


@pytest.mark.skipif(not SURVEYS, reason="no docs/measurements/refusals-*.json")
@pytest.mark.parametrize("survey", SURVEYS, ids=lambda p: p.stem)
def test_the_rules_reproduce_the_surveys(survey, monkeypatch):
    """Every surveyed exception, replayed from its record (class, message, frame), gets the recorded outcome."""
    data = json.loads(survey.read_text())
    env = data["environment"]
    for row in data["rows"]:
        seen = row["unfiltered"]
        if seen["outcome"] != "raised":
            continue
        bases = (ValueError,) if "builtins.ValueError" in seen["mro"] else (Exception,)
        cls = _fake_class(seen["exception"], bases)
        frame = seen["keras_frame"]
        monkeypatch.setattr(refusals, "innermost_keras_frame",
                            lambda exc, f=frame: (SITE + f["file"], f["line"], f["source"]) if f else None)
        monkeypatch.setattr(refusals, "is_raise_statement",
                            lambda p, n, f=frame: bool(f and f["explicit_raise"]))
        outcome, _ = refusals.classify(row["claim"], cls(seen["message"]), env)
        assert outcome == seen["classified"]["outcome"], (row["claim"], row["kind"], row["params"])


def test_the_surveys_show_the_expected_outcomes():
    """The survey's summary as a table: which claims are refused, and which crash, per environment."""
    expected = {
        "k3-tf221": {ZERO: "crashed", RANK: "refused", STATE: "crashed", NO_BATCH: "refused",
                     UNITS: "refused", OTHER_BATCH: "refused"},
        "k3-torch": {ZERO: "crashed", RANK: "refused", STATE: "crashed", NO_BATCH: "refused",
                     UNITS: "refused", OTHER_BATCH: "refused"},
        "k3-jax": {ZERO: "crashed", RANK: "refused", STATE: "crashed", NO_BATCH: "refused",
                   UNITS: "refused", OTHER_BATCH: "refused"},
        "k2-tf215": {ZERO: "crashed", RANK: "refused", STATE: "refused", NO_BATCH: "refused",
                     UNITS: "refused", OTHER_BATCH: "refused"},
    }
    for name, claims in expected.items():
        path = ROOT / "docs" / "measurements" / f"refusals-{name}.json"
        if not path.exists():
            pytest.skip(f"{path.name} not written")
        rows = json.loads(path.read_text())["rows"]
        for claim, outcome in claims.items():
            got = {r["unfiltered"]["classified"]["outcome"] for r in rows if r["claim"] == claim}
            assert got == {outcome}, (name, claim, got)


# --------------------------------------------------------------------------- the frame finder

def _compile_fake(tmp_path, relative, source):
    """Functions compiled from a real file under ``tmp_path/site-packages/<relative>``."""
    path = tmp_path / "site-packages" / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    namespace = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    return types.SimpleNamespace(**namespace), path


def test_innermost_keras_frame_finds_a_multiline_raise(tmp_path):
    fake, path = _compile_fake(tmp_path, "keras/src/layers/check.py", """
        def check(x):
            if x < 0:
                raise ValueError(
                    "bad x"
                )
            return helper(x)

        def helper(x):
            return [][x]
        """)
    with pytest.raises(ValueError) as raised:
        fake.check(-1)
    filename, line, source = refusals.innermost_keras_frame(raised.value)
    assert (filename, line, source) == (str(path), 4, "raise ValueError(")
    assert refusals.is_raise_statement(filename, line)
    assert refusals.short_path(filename) == "keras/src/layers/check.py"

    with pytest.raises(IndexError) as raised:
        fake.check(1)
    filename, line, source = refusals.innermost_keras_frame(raised.value)
    assert (line, source) == (10, "return [][x]")
    assert not refusals.is_raise_statement(filename, line)


def test_a_bare_reraise_is_not_an_explicit_raise(tmp_path):
    _, path = _compile_fake(tmp_path, "keras/src/x.py", """
        try:
            pass
        except Exception:
            raise
        """)
    assert not refusals.is_raise_statement(str(path), 5)


def test_frames_outside_keras_are_ignored(tmp_path):
    keras_side, _ = _compile_fake(tmp_path, "keras/src/layers/call.py", """
        def call(fn):
            return fn()
        """)
    backend_side, _ = _compile_fake(tmp_path, "torch/functional.py", """
        def matmul():
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")
        """)
    with pytest.raises(RuntimeError) as raised:
        keras_side.call(backend_side.matmul)
    filename, line, source = refusals.innermost_keras_frame(raised.value)
    assert filename.endswith("keras/src/layers/call.py") and source == "return fn()"
    assert not refusals.is_raise_statement(filename, line)


def test_the_filters_reraise_is_skipped_and_the_chain_is_read(tmp_path):
    """Keras's filter re-raises a copy from None: its own traceback has only the filter's raise."""
    fake, _ = _compile_fake(tmp_path, "keras/src/layers/rnn.py", """
        def build():
            raise ValueError("When using `stateful=True` in a RNN, the batch size must be static.")
        """)
    filt, _ = _compile_fake(tmp_path, "keras/src/utils/traceback_utils.py", """
        def call_filtered(fn):
            try:
                return fn()
            except Exception as e:
                raise type(e)(str(e)).with_traceback(None) from None
        """)
    with pytest.raises(ValueError) as raised:
        filt.call_filtered(fake.build)
    assert raised.value.__context__ is not None and raised.value.__suppress_context__
    filename, line, source = refusals.innermost_keras_frame(raised.value)
    assert filename.endswith("keras/src/layers/rnn.py") and source.startswith("raise ValueError(")


def test_no_keras_frame_at_all():
    try:
        raise ValueError("plain")
    except ValueError as exc:
        assert refusals.innermost_keras_frame(exc) is None


@pytest.mark.parametrize("path, inside", [
    (SITE + "keras/src/layers/rnn/rnn.py", True),
    (SITE + "tf_keras/src/engine/input_spec.py", True),
    ("/usr/lib/python3/dist-packages/keras/engine/input_spec.py", True),
    (SITE + "tensorflow/python/keras/engine/input_spec.py", True),
    (SITE + "tensorflow/python/framework/ops.py", False),
    (SITE + "keras_tuner/engine/tuner.py", False),
    ("/work/main/spec/adapter.py", False),
    ("", False),
])
def test_is_keras_file(path, inside):
    assert refusals.is_keras_file(path) is inside


# --------------------------------------------------------------------------- with the installed Keras

@pytest.fixture(scope="module")
def adapter():
    pytest.importorskip("keras", reason="needs an installed Keras")
    try:
        from rnnspec.spec import adapter
    except ImportError as exc:  # pragma: no cover - depends on the environment
        pytest.skip(f"no usable Keras: {exc}")
    return adapter


def test_a_real_refusal_is_found_and_refused(adapter):
    import numpy as np
    layer = adapter.make_layer("lstm", 2)
    with refusals.keras_tracebacks():
        with pytest.raises(ValueError) as raised:
            adapter.call(layer, np.zeros((2, 3)))
    filename, line, source = refusals.innermost_keras_frame(raised.value)
    assert refusals.is_keras_file(filename)
    assert re.search(r"input_spec\.py$", filename), filename
    assert source.startswith("raise ")
    outcome, detail = refusals.classify(RANK, raised.value)
    assert outcome == "refused", detail


def test_a_real_crash_is_a_crash(adapter):
    import numpy as np
    layer = adapter.make_layer("gru", 2)
    outcome, detail = refusals.outcome_of(ZERO, lambda: adapter.call(layer, np.zeros((2, 0, 3))))
    assert outcome == "crashed", detail
    assert "[not a raise]" in detail


def test_units_refusal_without_any_filter_switch(adapter):
    """Construction errors are not behind Keras's filter: found even with filtering on."""
    with pytest.raises(ValueError) as raised:
        adapter.make_layer("simple_rnn", 0)
    assert refusals.classify(UNITS, raised.value)[0] == "refused"


def test_keras_tracebacks_restores_the_filter_settings(adapter):
    """Both switches (Keras 3's keras.config, TensorFlow's tf.debugging) are off inside, as before after."""
    switches = []
    config = getattr(adapter.keras, "config", None)
    if config is not None and hasattr(config, "is_traceback_filtering_enabled"):
        switches.append(config.is_traceback_filtering_enabled)
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        switches.append(tf.debugging.is_traceback_filtering_enabled)
    if not switches:
        pytest.skip("neither keras.config nor tf.debugging has a traceback-filtering switch")
    before = [on() for on in switches]
    with refusals.keras_tracebacks():
        assert not any(on() for on in switches)
    assert [on() for on in switches] == before
