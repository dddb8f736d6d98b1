#!/usr/bin/env bash
# One prepared GPU session (issue 18): install, the `gpu` tests, the kernel / decode / step benchmarks.
#
# Usage, from the repository root of a checkout on a CUDA machine:
#   bash experiments/gpu_check.sh [STAGES]
# STAGES is a comma list; default install,tests,logprob,decode,step. Also available: wheels (the
# offline --no-deps wheel install alone) and lmhead (timings of the unembedding forms).
# Logs go to $OUT (default ./gpu_logs), one file per stage, plus summary.txt with each stage's exit
# status and duration. Every stage has its own time limit (seconds, env STAGE_LIMIT_<name>) and a
# failing stage does not stop the next one.
#
# Install: with network, `pip install -e ".[cuda]"` (the README's GPU line). Offline machines (the
# lent GPUs reach nothing) get the wheels of what their image lacks from ./gpu_wheels (built here with
# `pip download --python-version 3.12 ...`, see BENCHMARKS.md), installed with --no-index.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_logs}
mkdir -p "$OUT"
STAGES=${1:-install,tests,logprob,decode,step; also: wheels (the
#   offline --no-deps wheel install alone), lmhead (unembedding forms)}
PY=${PYTHON:-python3}
summary="$OUT/summary.txt"
echo "# gpu_check $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')" >> "$summary"

stage() {  # stage NAME DEFAULT_LIMIT COMMAND...
  local name=$1 limit=$2; shift 2
  case ",$STAGES," in *",$name,"*) ;; *) return 0 ;; esac
  local var="STAGE_LIMIT_$name"; limit=${!var:-$limit}
  local t0=$SECONDS
  echo "=== $name (limit ${limit}s): $*" | tee -a "$OUT/$name.log"
  timeout --signal=TERM --kill-after=10 "$limit" "$@" >> "$OUT/$name.log" 2>&1
  local rc=$?
  echo "$name rc=$rc ${SECONDS}s-total $((SECONDS - t0))s" | tee -a "$summary"
  tail -n 40 "$OUT/$name.log"
}

install() {
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  $PY -c "import sys, jax, flax; print(sys.version); print('jax', jax.__version__, 'flax', flax.__version__, jax.devices())"
  if [ -d gpu_wheels ]; then
    # The README line, resolved offline against the image plus the brought wheels.
    if $PY -m pip install -q --no-index --find-links gpu_wheels --no-build-isolation -e ".[cuda]"; then
      echo "README GPU line: installed offline (pip install -e '.[cuda]' --no-index --find-links gpu_wheels)"
    else
      echo "README GPU line failed offline (missing wheels above); falling back to --no-deps installs"
      $PY -m pip install -q --no-index --no-deps gpu_wheels/*.whl
      $PY -m pip install -q --no-index --no-deps --no-build-isolation -e . || true
    fi
  else
    $PY -m pip install -q -e ".[cuda]"
  fi
  $PY -c "import rlvr_jax.kernels, ml_collections, grain; print('rlvr_jax.kernels from', rlvr_jax.kernels.__file__)"
}

export -f install; export PY
stage install 240 bash -c install
wheels() { $PY -m pip install -q --no-index --no-deps gpu_wheels/*.whl; }
export -f wheels
stage wheels 120 bash -c wheels
stage tests 240 $PY -m pytest -q -m gpu -p no:cacheprovider tests/kernels
# Forward and forward + backward at N = 16,384, D = 1,536, V = 151,936, bf16 (the issue's shape);
# each row in its own process, device memory allocated on demand so rows do not share a pool.
stage logprob 300 env XLA_PYTHON_CLIENT_PREALLOCATE=false $PY -m experiments.bench_logprob \
  --tokens 16384 --dtype bfloat16 --warmup 1 --reps 3 --epilogue-tokens 0 \
  --impls ${LOGPROB_IMPLS:-reference xla xla-f32grad pallas}
stage decode 300 $PY -m experiments.bench_decode --json "$OUT/decode.json" ${DECODE_ARGS:-}
stage lmhead 120 $PY -m experiments.bench_decode --lm-head-only
stage step 420 env BENCH_STREAM=1 $PY -m experiments.bench_grpo_step --preset qwen2p5_0p5b --steps ${STEP_STEPS:-3} \
  --warmup 2 --engines rlvr_jax,trl
echo "done; logs in $OUT" | tee -a "$summary"
