#!/usr/bin/env bash
# Multi-node GPU runs under SLURM. The same file is the submitter and the batch script:
#
#   outside an allocation:  tpu/launch_slurm.sh --config configs/x.py --workdir gs://b/runs/x \
#                               --nodes 2 --gpus-per-node 8 [--config.a.b=v ...] [-- RUN_ARGS]
#     -> sbatch ... tpu/launch_slurm.sh <the same arguments>    (requeueable, SIGUSR1 before the limit)
#   inside the allocation (SLURM_JOB_ID set, run by sbatch):
#     -> srun python tpu/env_check.py --distributed ...   (one line per process: what it detected)
#     -> srun python -m experiments.run --config ... --workdir ...
#
# Devices: T tasks per node (--tasks-per-node, default 1), each bound to G/T GPUs with
# srun --gpus-per-task. Both steps get --gpus-per-process G/T, from which the trainer computes the
# local device ids it gives jax.distributed.initialize() (rlvr_jax.parallel.multihost; JAX's own
# default under SLURM is one GPU per task), and --expect-devices NODES*G, so a job whose processes
# see fewer GPUs fails in env_check, before step 0, with both counts.
#
# Preemption and time limits: sbatch --signal=B:USR1@S makes SLURM signal this script S seconds
# before the time limit; it sends SIGTERM to the job step (the trainer checkpoints and exits) and
# requeues the job, which resumes from --workdir. A preemption with PreemptMode=REQUEUE sends
# SIGTERM to the trainer directly and requeues by itself. jax.distributed.initialize() reads the
# SLURM variables, so no --coordinator_address / --num_processes / --process_id flags are passed.
# The workdir may be a shared filesystem path or gs:// (every node needs Google Cloud credentials).
set -euo pipefail
# shellcheck source=common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<'USAGE'
usage: tpu/launch_slurm.sh --config configs/NAME.py[:ARG] --workdir DIR
                           [--nodes N] [--gpus-per-node G] [--tasks-per-node T] [--time HH:MM:SS]
                           [--partition P] [--account A] [--job-name NAME] [--max-restarts N]
                           [--signal-seconds S] [--venv PATH] [--log-dir DIR] [--dry-run]
                           [--config.a.b=v ...] [-- RUN_ARGS ...]
  --workdir         checkpoints and metrics: a directory on a filesystem shared by all nodes, or a
                    gs://BUCKET/PATH (the nodes need Google Cloud credentials)
  --log-dir         where SLURM writes slurm-JOBID.out (default: the workdir when it is a path,
                    workdirs/slurm_logs in this checkout for a gs:// workdir)
  --nodes           nodes (default 1); --gpus-per-node (default 8; 0 for CPU nodes)
  --tasks-per-node  processes per node (default 1: one JAX process drives all GPUs of its node;
                    with T > 1 each process is bound to G/T GPUs)
  --time            job time limit (default 24:00:00); --signal-seconds: checkpoint-and-requeue
                    warning before it (default 300)
  --max-restarts    requeues before giving up (default 20)
  --venv            virtual environment to activate on the nodes (default .venv, if present)
  --dry-run         print the sbatch (or, inside an allocation, srun) commands instead
USAGE
}

CONFIG="" WORKDIR="" NODES=1 GPUS=8 TASKS=1 TIME="24:00:00" PARTITION="" ACCOUNT=""
JOB_NAME="rlvr_jax" MAX_RESTARTS=20 SIGNAL_SECONDS=300 VENV=".venv" LOG_DIR=""
RUN_ARGS=()
normalize_args "$@"
set -- "${NORMALIZED_ARGS[@]}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --config) need_value "$1" "$#" "${2:-}"; CONFIG="$2"; shift 2 ;;
    --workdir) need_value "$1" "$#" "${2:-}"; WORKDIR="$2"; shift 2 ;;
    --nodes) need_value "$1" "$#" "${2:-}"; NODES="$2"; shift 2 ;;
    --gpus-per-node) need_value "$1" "$#" "${2:-}"; GPUS="$2"; shift 2 ;;
    --tasks-per-node) need_value "$1" "$#" "${2:-}"; TASKS="$2"; shift 2 ;;
    --time) need_value "$1" "$#" "${2:-}"; TIME="$2"; shift 2 ;;
    --partition) need_value "$1" "$#" "${2:-}"; PARTITION="$2"; shift 2 ;;
    --account) need_value "$1" "$#" "${2:-}"; ACCOUNT="$2"; shift 2 ;;
    --job-name) need_value "$1" "$#" "${2:-}"; JOB_NAME="$2"; shift 2 ;;
    --max-restarts) need_value "$1" "$#" "${2:-}"; MAX_RESTARTS="$2"; shift 2 ;;
    --signal-seconds) need_value "$1" "$#" "${2:-}"; SIGNAL_SECONDS="$2"; shift 2 ;;
    --venv) need_value "$1" "$#" "${2:-}"; VENV="$2"; shift 2 ;;
    --log-dir) need_value "$1" "$#" "${2:-}"; LOG_DIR="$2"; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    --config.*) RUN_ARGS+=("$1"); shift ;;
    --) shift; RUN_ARGS+=("$@"); break ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1' (run overrides go after '--' or as --config.a.b=v)" ;;
  esac
done

[[ -n "$CONFIG" ]] || die "--config is required (e.g. configs/quickstart.py or configs/x.py:cpu)"
[[ "$CONFIG" == configs/*.py || "$CONFIG" == configs/*.py:* ]] \
  || die "--config '$CONFIG' must be configs/NAME.py or configs/NAME.py:ARG (relative to the repo)"
[[ -n "$WORKDIR" ]] || die "--workdir is required (a directory shared by all nodes, or gs://...)"
[[ "$WORKDIR" != gs://* || "$WORKDIR" == gs://?* ]] || die "--workdir '$WORKDIR' has no bucket"
[[ "$LOG_DIR" != gs://* ]] || die "--log-dir '$LOG_DIR': SLURM writes its log to a local path"
check_int --nodes "$NODES" 1
check_int --gpus-per-node "$GPUS" 0
check_int --tasks-per-node "$TASKS" 1
check_int --max-restarts "$MAX_RESTARTS" 0
check_int --signal-seconds "$SIGNAL_SECONDS" 1
[[ "$TIME" =~ ^([0-9]+-)?[0-9]{1,2}(:[0-9]{2}){0,2}$ ]] \
  || die "--time '$TIME' must look like HH:MM:SS, MM or D-HH:MM:SS"
if [[ "$GPUS" -gt 0 && $((GPUS % TASKS)) -ne 0 ]]; then
  die "--gpus-per-node $GPUS is not divisible by --tasks-per-node $TASKS"
fi

# Arguments the batch job is started with: everything except --dry-run.
job_args=(--config "$CONFIG" --workdir "$WORKDIR" --nodes "$NODES" --gpus-per-node "$GPUS"
          --tasks-per-node "$TASKS" --max-restarts "$MAX_RESTARTS" --venv "$VENV")
[[ ${#RUN_ARGS[@]} -gt 0 ]] && job_args+=(-- "${RUN_ARGS[@]}")

if [[ -z "${SLURM_JOB_ID:-}" ]]; then
  # ---------------------------------------------------------------- submit
  require_tool sbatch "run this on a SLURM login node"
  root="$(repo_root)"
  if [[ -z "$LOG_DIR" ]]; then
    if [[ "$WORKDIR" == gs://* ]]; then LOG_DIR="$root/workdirs/slurm_logs"; else LOG_DIR="$WORKDIR"; fi
  fi
  sb=(sbatch "--job-name=$JOB_NAME" "--nodes=$NODES" "--ntasks-per-node=$TASKS" "--time=$TIME"
      --requeue "--signal=B:USR1@$SIGNAL_SECONDS" --open-mode=append
      "--output=$LOG_DIR/slurm-%j.out" "--chdir=$root")
  [[ "$GPUS" -gt 0 ]] && sb+=("--gpus-per-node=$GPUS")
  [[ -n "$PARTITION" ]] && sb+=("--partition=$PARTITION")
  [[ -n "$ACCOUNT" ]] && sb+=("--account=$ACCOUNT")
  # A gs:// workdir needs no creating: the trainer writes its objects there.
  [[ "$WORKDIR" == gs://* ]] || run_cmd mkdir -p "$WORKDIR"
  [[ "$LOG_DIR" == "$WORKDIR" ]] || run_cmd mkdir -p "$LOG_DIR"
  run_cmd "${sb[@]}" "$root/tpu/launch_slurm.sh" "${job_args[@]}"
  exit 0
fi

# ------------------------------------------------------------------ inside the allocation
[[ -f tpu/env_check.py ]] || die "run from the repository root (sbatch --chdir does this)"
if [[ -f "$VENV/bin/activate" ]]; then
  # shellcheck disable=SC1091  # the venv is created at install time
  source "$VENV/bin/activate"
fi
restarts="${SLURM_RESTART_COUNT:-0}"
nnodes="${SLURM_NNODES:-$NODES}"
nprocs="${SLURM_NTASKS:-$((nnodes * TASKS))}"
step=(srun "--ntasks-per-node=$TASKS" --kill-on-bad-exit=1)
check_args=(--distributed --expect-processes "$nprocs")
train_args=(--distributed)
if [[ "$GPUS" -gt 0 ]]; then
  # One task per node sees all the node's GPUs (the step gets every GPU of the job); T > 1 tasks
  # are each bound to G/T GPUs. Either way the trainer gives JAX the ids of exactly its G/T GPUs.
  per_task=$((GPUS / TASKS))
  devices=$((nnodes * GPUS))
  [[ "$TASKS" -gt 1 ]] && step+=("--gpus-per-task=$per_task")
  check_args+=(--gpus-per-process "$per_task" --expect-devices "$devices")
  train_args+=("--gpus_per_process=$per_task" "--expect_devices=$devices")
  layout="$nnodes nodes x $TASKS tasks x $per_task GPUs = $devices devices"
else
  echo "slurm: note: --gpus-per-node 0, the device count is not checked (CPU devices per process depend on XLA_FLAGS)" >&2
  layout="$nnodes nodes x $TASKS tasks, CPU only"
fi
check=("${step[@]}" python tpu/env_check.py "${check_args[@]}")
train=("${step[@]}" python -m experiments.run "${train_args[@]}" --config "$CONFIG"
       --workdir "$WORKDIR" "${RUN_ARGS[@]}")
echo "slurm: job $SLURM_JOB_ID, restart $restarts of at most $MAX_RESTARTS, $nprocs processes ($layout)" >&2

if [[ "$DRY_RUN" == 1 ]]; then
  run_cmd "${check[@]}"
  run_cmd "${train[@]}"
  echo "# on SIGUSR1 ($SIGNAL_SECONDS s before the time limit): SIGTERM to the step, wait, then:"
  run_cmd scontrol requeue "$SLURM_JOB_ID"
  exit 0
fi

run_cmd "${check[@]}"
requeue=0
train_pid=""
# shellcheck disable=SC2329  # invoked by the trap below
on_warning() {
  # Time limit near: the trainer checkpoints on SIGTERM; srun forwards it to every task.
  echo "slurm: time limit in $SIGNAL_SECONDS s, stopping the run to requeue it" >&2
  requeue=1
  [[ -n "$train_pid" ]] && kill -TERM "$train_pid" 2>/dev/null || true
}
trap on_warning USR1
# A preemption signals every process of the job; keep waiting so the trainer can finish its save.
trap 'echo "slurm: SIGTERM (preemption), waiting for the checkpoint" >&2' TERM
echo "+ $(quote_args "${train[@]}")" >&2
"${train[@]}" &
train_pid=$!
status=0
# `wait` returns early (status > 128) when a trapped signal arrives; wait again until srun exits.
while true; do
  wait "$train_pid" && status=0 || status=$?
  if [[ "$status" -gt 128 ]]; then
    if kill -0 "$train_pid" 2>/dev/null; then
      continue
    fi
    # srun may have exited right after the interruption: collect its own status (127: already had).
    again=0
    wait "$train_pid" || again=$?
    [[ "$again" == 127 ]] || status="$again"
  fi
  break
done
if [[ "$requeue" == 1 ]]; then
  if [[ "$restarts" -lt "$MAX_RESTARTS" ]]; then
    run_cmd scontrol requeue "$SLURM_JOB_ID"
  else
    echo "slurm: not requeueing: $restarts restarts reached --max-restarts" >&2
  fi
fi
exit "$status"
