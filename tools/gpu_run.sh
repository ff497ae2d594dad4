#!/usr/bin/env bash
# One command for the GPU machine (../shared/gpu/README.md), in parallel on its
# 16 cores and one GPU, in the order of issue #14's priorities:
#   1. torch: the equivalence, kernel and known-divergence chapters on the CPU
#      and the GPU (TF32 off and default), with the kernel report;
#   2. JAX: the same chapters;
#   3. tools/measure_error.py on the GPU, TF32 off and default, both backends;
#   4. faults on the GPU (faults/gpu.py: cuDNN weight conversion; and two
#      catalogue cell faults), with TF32 off and default.
# Everything lands in $OUT/gpu-results.tar.gz (reports, logs, measurements)
# and $OUT/summary.txt.
#
# Here, once:   ../shared/gpu/fetch-wheels.sh        (Keras wheels into .whl/)
#               python -m build --wheel --outdir .whl   (rnnspec itself, installed there with them)
# Check here:   RNNSPEC_NO_WHEELS=1 PYTHON=.tox/k3-torch/bin/python RNNSPEC_GPU_SECONDS=60 OUT=/tmp/gpu-out bash tools/gpu_run.sh   (CPU: GPU params skip)
# There:        bash tools/gpu_run.sh                (device tool: carry [".whl"], timeout_s > RNNSPEC_GPU_SECONDS + 60)
# Then:         tar xzf gpu-results.tar.gz; python -m rnnspec.tools.report merge ... (docs/conformance/README.md)
#
# Every job gets at most $RNNSPEC_GPU_SECONDS (default 300) seconds; a job cut
# off by that limit says so in summary.txt ("exit 124").
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-reports}"
work="$out/work"
mkdir -p "$work"
limit="${RNNSPEC_GPU_SECONDS:-300}"
python=${PYTHON:-python3}
if [ -z "${RNNSPEC_NO_WHEELS:-}" ] && compgen -G ".whl/*.whl" > /dev/null; then
  $python -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
# rnnspec is imported as installed (its wheel above, or an env where it is
# installed editable): PYTHONSAFEPATH keeps `python -m` from putting the
# checkout first on sys.path, where rnnspec/ alone would shadow it
export PYTHONSAFEPATH=1 PYTHONUNBUFFERED=1 KERAS_HOME=/tmp/keras-home
if ! $python -c 'import rnnspec.spec' 2>/dev/null; then
  echo "rnnspec is not installed for $python: python -m build --wheel --outdir .whl here first"; exit 1
fi
export RNNSPEC_PROFILE="${RNNSPEC_PROFILE:-ci}" OMP_NUM_THREADS=2 MKL_NUM_THREADS=2
export XLA_PYTHON_CLIENT_PREALLOCATE=false   # several JAX processes share the GPU
start=$(date +%s)
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1
  $python -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())' 2>&1
  $python -c 'import jax; print("jax", jax.__version__, jax.devices())' 2>&1
  KERAS_BACKEND=torch $python -c 'import keras; print("keras", keras.__version__)' 2>&1
} > "$work/gpu-device.txt"

chapters="--pyargs rnnspec.spec.test_equivalence rnnspec.spec.test_kernels rnnspec.spec.test_known_divergences"

job() {  # job NAME BACKEND COMMAND...: run with the time limit, log, record the exit status
  local name=$1 backend=$2; shift 2
  ( t0=$(date +%s)
    KERAS_BACKEND=$backend timeout "$limit" "$@" > "$work/$name.log" 2>&1
    echo "$name: exit $? in $(( $(date +%s) - t0 ))s" >> "$work/status.txt" ) &
}

# 1-2. the spec chapters, one report per backend
job spec-torch torch env RNNSPEC_ENV=gpu-torch $python -m pytest $chapters -n 4 -q -rs -p no:cacheprovider \
  --report-json "$work/gpu-torch.json"
job spec-jax jax env RNNSPEC_ENV=gpu-jax $python -m pytest $chapters -n 8 -q -rs -p no:cacheprovider \
  --report-json "$work/gpu-jax.json"

# 3. measured error on the GPU
for backend in torch jax; do
  for tf32 in off default; do
    job "error-$backend-$tf32" $backend $python -m rnnspec.tools.measure_error --cases "${RNNSPEC_GPU_CASES:-250}" \
      --device gpu --tf32 $tf32 --json "$work/error-$backend-gpu-tf32$tf32.json"
    job "error-fused-$backend-$tf32" $backend $python -m rnnspec.tools.measure_error --cases "${RNNSPEC_GPU_CASES:-150}" \
      --pool fused-kernel,fused-kernel-bidirectional --device gpu --tf32 $tf32 \
      --json "$work/error-$backend-gpu-tf32$tf32-fused.json"
  done
done

# 4. faults on the GPU: the first failing example ends each run (-x)
faults_of() {  # faults_of BACKEND FAULT...: one stream per backend, each fault at both TF32 settings
  local backend=$1; shift
  for fault in "$@"; do
    for tf32 in off default; do
      t0=$(date +%s)
      KERAS_BACKEND=$backend RNNSPEC_FAULT=$fault timeout "$(( limit / 5 ))" $python -m pytest -p rnnspec.faults.plugin \
        --pyargs rnnspec.spec.test_equivalence -k "gpu-tf32$tf32 and (layer_matches or bidirectional_matches)" -x -q \
        -p no:cacheprovider > "$work/fault-$backend-$fault-$tf32.log" 2>&1
      rc=$?
      # the verdict is pytest's own summary line: a process may hang after pytest has
      # finished (CUDA teardown) and be cut off by the time limit with its verdict printed
      log="$work/fault-$backend-$fault-$tf32.log"
      summary=$(grep -E '^[0-9]+ (failed|passed).* in [0-9.]+s' "$log" | tail -1)
      if [[ $summary =~ ^[0-9]+\ failed ]]; then verdict="caught by $(grep -m1 '^FAILED' "$log" | cut -d' ' -f2)"
      elif [[ $summary =~ passed ]]; then verdict="escaped ($summary)"
      elif [ $rc -eq 124 ]; then verdict="not finished within $(( limit / 5 ))s"
      else verdict="error (exit $rc)"; fi
      echo "fault $fault ($backend, tf32 $tf32): $verdict in $(( $(date +%s) - t0 ))s" >> "$work/faults.txt"
    done
  done
}
( faults_of torch cudnn_lstm_params_if_swapped cudnn_gru_params_not_reordered ) &
( faults_of torch cudnn_lstm_final_states_swapped lstm_gate_order_if ) &
( faults_of jax cudnn_lstm_bias_dropped gru_gate_order_zr ) &

wait
echo "total: $(( $(date +%s) - start ))s" >> "$work/status.txt"
{ cat "$work/gpu-device.txt"; echo; sort "$work/status.txt"; echo; sort "$work/faults.txt" 2>/dev/null
  for f in "$work"/spec-*.log; do echo; echo "== $f"; tail -25 "$f"; done
} > "$out/summary.txt"
tar czf "$out/gpu-results.tar.gz" -C "$work" .
cat "$out/summary.txt"
