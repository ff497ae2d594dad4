#!/usr/bin/env bash
# GENERATED from docs/ci/github-actions.yml by `python -m rnnspec.tools.ci_local`: do not edit;
# regenerate it after changing the workflow (tests/test_ci_workflow.py checks that they agree).
#
# Runs the workflow's jobs here, from the repository root, each matrix row in turn:
#   bash docs/ci/run-local.sh [ROW ...]   (rows: keras3-tf, keras3-jax, keras2-tf215; default: all)
# Environment: the workflow's env: can be overridden (e.g. RNNSPEC_WHEEL=dist/rnnspec-...whl);
# WORKDIR (default: a new temporary folder) holds RUNNER_TEMP and the artifacts;
# RNNSPEC_PYTHON is the `python` of actions/setup-python (default: python3.11).
set -uo pipefail
WORKDIR="${WORKDIR:-$(mktemp -d)}"
mkdir -p "$WORKDIR/bin" "$WORKDIR/artifacts"
ln -sf "$(command -v "${RNNSPEC_PYTHON:-python3.11}")" "$WORKDIR/bin/python"
ROWS=" $* "
FAILED=0

step() {  # NAME: run the script on stdin as GitHub does, in the job's environment
  local name="$1" script; script="$(cat)"
  echo "::: $name"
  PATH="$JOB_PATH" bash --noprofile --norc -eo pipefail -c "$script"
  local rc=$?
  if [ -s "$GITHUB_PATH" ]; then JOB_PATH="$(tac "$GITHUB_PATH" | paste -sd:):$BASE_PATH"; fi
  return $rc
}

export RNNSPEC_WHEEL="${RNNSPEC_WHEEL:-.rnnspec/rnnspec-0.1.0-py3-none-any.whl}"
export RNNSPEC_BASELINE="${RNNSPEC_BASELINE:-.rnnspec/baseline}"
export RNNSPEC_PROFILE="${RNNSPEC_PROFILE:-ci}"

# ---- job spec: spec (keras3-tf)
if [ "$ROWS" = "  " ] || [[ "$ROWS" == *" keras3-tf "* ]]; then
(
  echo "=== spec (keras3-tf)"
  export RUNNER_TEMP="$WORKDIR/temp/spec-keras3-tf"; mkdir -p "$RUNNER_TEMP"
  export GITHUB_PATH="$RUNNER_TEMP/github-path"; : > "$GITHUB_PATH"
  BASE_PATH="$WORKDIR/bin:$PATH"; JOB_PATH="$BASE_PATH"
  export RNNSPEC_ENV=keras3-tf
  export RNNSPEC_EXTRA=tf
  export RNNSPEC_PINS='tensorflow-cpu==2.21.* keras==3.15.*'
  export KERAS_BACKEND=tensorflow
  ok=0
  if [ "$ok" = 0 ]; then echo '::: actions/checkout@v4'  # the current directory is the checkout
    : || ok=1; fi
  if [ "$ok" = 0 ]; then echo '::: actions/setup-python@v5'  # python is $RNNSPEC_PYTHON (the top of this script)
    : || ok=1; fi
  if [ "$ok" = 0 ]; then step 'Install rnnspec and the Keras under test' <<'RNNSPEC_STEP'
python -m venv "$RUNNER_TEMP/rnnspec-venv"
. "$RUNNER_TEMP/rnnspec-venv/bin/activate"
python -m pip install --disable-pip-version-check -q "rnnspec[$RNNSPEC_EXTRA] @ file://$PWD/$RNNSPEC_WHEEL" $RNNSPEC_PINS
echo "$RUNNER_TEMP/rnnspec-venv/bin" >> "$GITHUB_PATH"
RNNSPEC_STEP
  [ $? = 0 ] || ok=1; fi
  if [ "$ok" = 0 ]; then step 'Run the spec' <<'RNNSPEC_STEP'
mkdir -p rnnspec-reports
rnnspec run --profile "$RNNSPEC_PROFILE" --env-name "$RNNSPEC_ENV" --report "rnnspec-reports/$RNNSPEC_ENV.json"
RNNSPEC_STEP
  [ $? = 0 ] || ok=1; fi
  if true; then echo '::: Upload the report'  # a copy under $WORKDIR/artifacts
    mkdir -p "$WORKDIR/artifacts/rnnspec-report-keras3-tf" && cp rnnspec-reports/keras3-tf.json "$WORKDIR/artifacts/rnnspec-report-keras3-tf/" || ok=1; fi
  [ "$ok" = 0 ] && echo "=== ok: spec (keras3-tf)" || { echo "=== FAILED: spec (keras3-tf)"; exit 1; }
) || FAILED=1
fi

# ---- job spec: spec (keras3-jax)
if [ "$ROWS" = "  " ] || [[ "$ROWS" == *" keras3-jax "* ]]; then
(
  echo "=== spec (keras3-jax)"
  export RUNNER_TEMP="$WORKDIR/temp/spec-keras3-jax"; mkdir -p "$RUNNER_TEMP"
  export GITHUB_PATH="$RUNNER_TEMP/github-path"; : > "$GITHUB_PATH"
  BASE_PATH="$WORKDIR/bin:$PATH"; JOB_PATH="$BASE_PATH"
  export RNNSPEC_ENV=keras3-jax
  export RNNSPEC_EXTRA=jax
  export RNNSPEC_PINS='keras==3.15.* jax[cpu]==0.8.*'
  export KERAS_BACKEND=jax
  ok=0
  if [ "$ok" = 0 ]; then echo '::: actions/checkout@v4'  # the current directory is the checkout
    : || ok=1; fi
  if [ "$ok" = 0 ]; then echo '::: actions/setup-python@v5'  # python is $RNNSPEC_PYTHON (the top of this script)
    : || ok=1; fi
  if [ "$ok" = 0 ]; then step 'Install rnnspec and the Keras under test' <<'RNNSPEC_STEP'
python -m venv "$RUNNER_TEMP/rnnspec-venv"
. "$RUNNER_TEMP/rnnspec-venv/bin/activate"
python -m pip install --disable-pip-version-check -q "rnnspec[$RNNSPEC_EXTRA] @ file://$PWD/$RNNSPEC_WHEEL" $RNNSPEC_PINS
echo "$RUNNER_TEMP/rnnspec-venv/bin" >> "$GITHUB_PATH"
RNNSPEC_STEP
  [ $? = 0 ] || ok=1; fi
  if [ "$ok" = 0 ]; then step 'Run the spec' <<'RNNSPEC_STEP'
mkdir -p rnnspec-reports
rnnspec run --profile "$RNNSPEC_PROFILE" --env-name "$RNNSPEC_ENV" --report "rnnspec-reports/$RNNSPEC_ENV.json"
RNNSPEC_STEP
  [ $? = 0 ] || ok=1; fi
  if true; then echo '::: Upload the report'  # a copy under $WORKDIR/artifacts
    mkdir -p "$WORKDIR/artifacts/rnnspec-report-keras3-jax" && cp rnnspec-reports/keras3-jax.json "$WORKDIR/artifacts/rnnspec-report-keras3-jax/" || ok=1; fi
  [ "$ok" = 0 ] && echo "=== ok: spec (keras3-jax)" || { echo "=== FAILED: spec (keras3-jax)"; exit 1; }
) || FAILED=1
fi

# ---- job spec: spec (keras2-tf215)
if [ "$ROWS" = "  " ] || [[ "$ROWS" == *" keras2-tf215 "* ]]; then
(
  echo "=== spec (keras2-tf215)"
  export RUNNER_TEMP="$WORKDIR/temp/spec-keras2-tf215"; mkdir -p "$RUNNER_TEMP"
  export GITHUB_PATH="$RUNNER_TEMP/github-path"; : > "$GITHUB_PATH"
  BASE_PATH="$WORKDIR/bin:$PATH"; JOB_PATH="$BASE_PATH"
  export RNNSPEC_ENV=keras2-tf215
  export RNNSPEC_EXTRA=keras2
  export RNNSPEC_PINS='tensorflow-cpu==2.15.*'
  export KERAS_BACKEND=tensorflow
  ok=0
  if [ "$ok" = 0 ]; then echo '::: actions/checkout@v4'  # the current directory is the checkout
    : || ok=1; fi
  if [ "$ok" = 0 ]; then echo '::: actions/setup-python@v5'  # python is $RNNSPEC_PYTHON (the top of this script)
    : || ok=1; fi
  if [ "$ok" = 0 ]; then step 'Install rnnspec and the Keras under test' <<'RNNSPEC_STEP'
python -m venv "$RUNNER_TEMP/rnnspec-venv"
. "$RUNNER_TEMP/rnnspec-venv/bin/activate"
python -m pip install --disable-pip-version-check -q "rnnspec[$RNNSPEC_EXTRA] @ file://$PWD/$RNNSPEC_WHEEL" $RNNSPEC_PINS
echo "$RUNNER_TEMP/rnnspec-venv/bin" >> "$GITHUB_PATH"
RNNSPEC_STEP
  [ $? = 0 ] || ok=1; fi
  if [ "$ok" = 0 ]; then step 'Run the spec' <<'RNNSPEC_STEP'
mkdir -p rnnspec-reports
rnnspec run --profile "$RNNSPEC_PROFILE" --env-name "$RNNSPEC_ENV" --report "rnnspec-reports/$RNNSPEC_ENV.json"
RNNSPEC_STEP
  [ $? = 0 ] || ok=1; fi
  if true; then echo '::: Upload the report'  # a copy under $WORKDIR/artifacts
    mkdir -p "$WORKDIR/artifacts/rnnspec-report-keras2-tf215" && cp rnnspec-reports/keras2-tf215.json "$WORKDIR/artifacts/rnnspec-report-keras2-tf215/" || ok=1; fi
  [ "$ok" = 0 ] && echo "=== ok: spec (keras2-tf215)" || { echo "=== FAILED: spec (keras2-tf215)"; exit 1; }
) || FAILED=1
fi

# ---- job gate: gate against the baseline
if true; then
(
  echo "=== gate against the baseline"
  export RUNNER_TEMP="$WORKDIR/temp/gate"; mkdir -p "$RUNNER_TEMP"
  export GITHUB_PATH="$RUNNER_TEMP/github-path"; : > "$GITHUB_PATH"
  BASE_PATH="$WORKDIR/bin:$PATH"; JOB_PATH="$BASE_PATH"
  ok=0
  if [ "$ok" = 0 ]; then echo '::: actions/checkout@v4'  # the current directory is the checkout
    : || ok=1; fi
  if [ "$ok" = 0 ]; then echo '::: actions/setup-python@v5'  # python is $RNNSPEC_PYTHON (the top of this script)
    : || ok=1; fi
  if [ "$ok" = 0 ]; then echo '::: Download the reports'  # copies from $WORKDIR/artifacts
    mkdir -p rnnspec-reports && for d in "$WORKDIR"/artifacts/rnnspec-report-*; do if [ -d "$d" ]; then cp "$d"/* rnnspec-reports/; fi; done || ok=1; fi
  if [ "$ok" = 0 ]; then step 'Install rnnspec (no Keras needed)' <<'RNNSPEC_STEP'
python -m venv "$RUNNER_TEMP/rnnspec-venv"
. "$RUNNER_TEMP/rnnspec-venv/bin/activate"
python -m pip install --disable-pip-version-check -q "rnnspec @ file://$PWD/$RNNSPEC_WHEEL"
echo "$RUNNER_TEMP/rnnspec-venv/bin" >> "$GITHUB_PATH"
RNNSPEC_STEP
  [ $? = 0 ] || ok=1; fi
  if [ "$ok" = 0 ]; then step 'Merge the reports' <<'RNNSPEC_STEP'
rnnspec report merge rnnspec-reports -o rnnspec-matrix.md
cat rnnspec-matrix.md >> "${GITHUB_STEP_SUMMARY:-/dev/null}"
RNNSPEC_STEP
  [ $? = 0 ] || ok=1; fi
  if [ "$ok" = 0 ]; then step 'Gate against the baseline' <<'RNNSPEC_STEP'
rnnspec gate --baseline "$RNNSPEC_BASELINE" rnnspec-reports
RNNSPEC_STEP
  [ $? = 0 ] || ok=1; fi
  if true; then echo '::: Upload the merged matrix'  # a copy under $WORKDIR/artifacts
    mkdir -p "$WORKDIR/artifacts/rnnspec-matrix" && cp rnnspec-matrix.md "$WORKDIR/artifacts/rnnspec-matrix/" || ok=1; fi
  [ "$ok" = 0 ] && echo "=== ok: gate against the baseline" || { echo "=== FAILED: gate against the baseline"; exit 1; }
) || FAILED=1
fi

echo "workdir: $WORKDIR"
exit "$FAILED"
