#!/usr/bin/env bash
# Launches `python -m experiments.run` on every worker of a TPU VM / pod slice and relaunches it on
# the same gs:// workdir after a failure or preemption (the trainer checkpoints on SIGTERM and
# resumes from --workdir). Run this from a machine that stays up (tmux on a small GCE VM).
#
#   tpu/launch_tpu.sh --name my-tpu --zone us-central2-b --accelerator-type v4-32 \
#       --config configs/grpo_gsm8k.py --workdir gs://my-bucket/runs/grpo1 \
#       [--config.train.steps=2000 ...] [-- more run args]
#
# Every worker runs env_check.py and the trainer with the slice's device count (from
# --accelerator-type, or --expect-devices), so a worker that sees fewer chips fails before step 0.
set -euo pipefail
# shellcheck source=common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

usage() {
  cat <<'USAGE'
usage: tpu/launch_tpu.sh --name NAME --zone ZONE --config configs/NAME.py[:ARG] --workdir gs://BUCKET/PATH
                         [--project PROJECT] [--max-restarts N] [--retry-wait SECONDS]
                         [--accelerator-type TYPE] [--expect-devices N]
                         [--recreate --accelerator-type TYPE --version RUNTIME [--spot]
                          [--repo GIT_URL [--branch BRANCH]]]
                         [--allow-local-workdir] [--dry-run] [--config.a.b=v ...] [-- RUN_ARGS ...]
  --workdir            checkpoints, metrics and eval.json; must be a gs:// path that every worker
                       (and the next TPU after a preemption) can reach
  --accelerator-type   the slice's type (v4-32, v5litepod-16, ...): gives the device count that
                       env_check.py and the trainer must see (v2/v3: one device per TensorCore;
                       v4/v5p: the number is TensorCores, one device per chip = half; v5e/v6e:
                       chips). Other types: pass --expect-devices, or the check is skipped
  --expect-devices     the total device count to require instead of the one from the type
  --max-restarts       relaunches after a failure or preemption before giving up (default 20)
  --retry-wait         seconds to wait before a relaunch (default 60)
  --recreate           when the TPU was preempted (state PREEMPTED/TERMINATED), delete it, create it
                       again with --accelerator-type/--version/--spot, reinstall (tpu/setup_tpu.sh,
                       with --repo/--branch when given), and relaunch
  --config.a.b=v       config overrides, passed to experiments.run unchanged (as is all after --)
  --dry-run            print the commands (launch, and the recovery path) instead of running them
jax.distributed.initialize() detects the TPU workers by itself (and uses every local chip), so no
--coordinator_address, --num_processes or --process_id flags are passed.
USAGE
}

NAME="" ZONE="" PROJECT="" CONFIG="" WORKDIR="" MAX_RESTARTS=20 RETRY_WAIT=60
RECREATE=0 TYPE="" VERSION="" SPOT=0 ALLOW_LOCAL=0 REPO="" BRANCH="" EXPECT=""
RUN_ARGS=()
normalize_args "$@"
set -- "${NORMALIZED_ARGS[@]}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --name) need_value "$1" "$#" "${2:-}"; NAME="$2"; shift 2 ;;
    --zone) need_value "$1" "$#" "${2:-}"; ZONE="$2"; shift 2 ;;
    --project) need_value "$1" "$#" "${2:-}"; PROJECT="$2"; shift 2 ;;
    --config) need_value "$1" "$#" "${2:-}"; CONFIG="$2"; shift 2 ;;
    --workdir) need_value "$1" "$#" "${2:-}"; WORKDIR="$2"; shift 2 ;;
    --max-restarts) need_value "$1" "$#" "${2:-}"; MAX_RESTARTS="$2"; shift 2 ;;
    --retry-wait) need_value "$1" "$#" "${2:-}"; RETRY_WAIT="$2"; shift 2 ;;
    --recreate) RECREATE=1; shift ;;
    --accelerator-type) need_value "$1" "$#" "${2:-}"; TYPE="$2"; shift 2 ;;
    --expect-devices) need_value "$1" "$#" "${2:-}"; EXPECT="$2"; shift 2 ;;
    --version) need_value "$1" "$#" "${2:-}"; VERSION="$2"; shift 2 ;;
    --spot) SPOT=1; shift ;;
    --repo) need_value "$1" "$#" "${2:-}"; REPO="$2"; shift 2 ;;
    --branch) need_value "$1" "$#" "${2:-}"; BRANCH="$2"; shift 2 ;;
    --allow-local-workdir) ALLOW_LOCAL=1; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    --config.*) RUN_ARGS+=("$1"); shift ;;
    --) shift; RUN_ARGS+=("$@"); break ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1' (run overrides go after '--' or as --config.a.b=v)" ;;
  esac
done

[[ -n "$NAME" ]] || die "--name is required"
[[ -n "$ZONE" ]] || die "--zone is required"
[[ -n "$CONFIG" ]] || die "--config is required (e.g. configs/quickstart.py or configs/x.py:cpu)"
[[ "$CONFIG" == configs/*.py || "$CONFIG" == configs/*.py:* ]] \
  || die "--config '$CONFIG' must be configs/NAME.py or configs/NAME.py:ARG (relative to the repo)"
[[ -n "$WORKDIR" ]] || die "--workdir is required (a gs:// path)"
if [[ "$WORKDIR" != gs://?* && "$ALLOW_LOCAL" == 0 ]]; then
  die "--workdir '$WORKDIR' is not a gs:// path: a multi-worker run and its relaunch after a preemption need a bucket (or pass --allow-local-workdir for a single-host test)"
fi
check_int --max-restarts "$MAX_RESTARTS" 0
check_int --retry-wait "$RETRY_WAIT" 0
if [[ "$RECREATE" == 1 ]]; then
  [[ -n "$TYPE" && -n "$VERSION" ]] || die "--recreate needs --accelerator-type and --version"
fi
if [[ -n "$EXPECT" ]]; then
  check_int --expect-devices "$EXPECT" 1
elif [[ -n "$TYPE" ]]; then
  EXPECT="$(tpu_device_count "$TYPE")" \
    || { EXPECT=""; echo "launch: note: no device count known for --accelerator-type $TYPE; pass --expect-devices N to check it (skipped)" >&2; }
else
  echo "launch: note: device count not checked (pass --accelerator-type TYPE or --expect-devices N)" >&2
fi
require_tool gcloud "install the Google Cloud CLI"

gcloud_args=("--zone=$ZONE")
[[ -n "$PROJECT" ]] && gcloud_args+=("--project=$PROJECT")
sub_args=()
[[ "$DRY_RUN" == 1 ]] && sub_args+=(--dry-run)

# On each worker: stop a run left over from a lost ssh session (SIGTERM lets it checkpoint), check
# the environment, then replace the shell with the trainer so its pid is the one recorded.
# shellcheck disable=SC2016  # expanded on the worker, not here
stop_stale='pid=$(cat ~/rlvr_jax/.run.pid 2>/dev/null || true); if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done; fi'
check_cmdline=(python tpu/env_check.py --distributed)
run_cmdline=(python -m experiments.run --distributed)
if [[ -n "$EXPECT" ]]; then
  check_cmdline+=(--expect-devices "$EXPECT")
  run_cmdline+=("--expect_devices=$EXPECT")
fi
run_cmdline+=(--config "$CONFIG" --workdir "$WORKDIR" "${RUN_ARGS[@]}")
remote="cd ~/rlvr_jax && . .venv/bin/activate && export PYTHONUNBUFFERED=1 && { $stop_stale; }"
remote+=" && $(quote_args "${check_cmdline[@]}")"
remote+=" && echo \$\$ > .run.pid && exec $(quote_args "${run_cmdline[@]}")"

launch() {
  run_cmd gcloud compute tpus tpu-vm ssh "$NAME" "${gcloud_args[@]}" --worker=all "--command=$remote"
}

recreate() {
  local create=(--name "$NAME" --zone "$ZONE" --accelerator-type "$TYPE" --version "$VERSION")
  [[ -n "$PROJECT" ]] && create+=(--project "$PROJECT")
  [[ "$SPOT" == 1 ]] && create+=(--spot)
  run_cmd gcloud compute tpus tpu-vm delete "$NAME" "${gcloud_args[@]}" --quiet
  bash "$HERE/create_tpu.sh" "${create[@]}" "${sub_args[@]}"
  local setup=(--name "$NAME" --zone "$ZONE")
  [[ -n "$PROJECT" ]] && setup+=(--project "$PROJECT")
  [[ -n "$REPO" ]] && setup+=(--repo "$REPO")
  [[ -n "$BRANCH" ]] && setup+=(--branch "$BRANCH")
  bash "$HERE/setup_tpu.sh" "${setup[@]}" "${sub_args[@]}"
}

if [[ "$DRY_RUN" == 1 ]]; then
  launch
  echo "# on failure: up to $MAX_RESTARTS relaunches on $WORKDIR, $RETRY_WAIT s apart, after checking:"
  run_cmd gcloud compute tpus tpu-vm describe "$NAME" "${gcloud_args[@]}" "--format=value(state)"
  if [[ "$RECREATE" == 1 ]]; then
    echo "# if the state is PREEMPTED or TERMINATED:"
    recreate
  fi
  exit 0
fi

restarts=0
while true; do
  echo "launch: attempt $((restarts + 1)) on $NAME, workdir $WORKDIR" >&2
  status=0
  launch || status=$?
  if [[ "$status" == 0 ]]; then
    echo "launch: run finished on $NAME" >&2
    exit 0
  fi
  if [[ "$restarts" -ge "$MAX_RESTARTS" ]]; then
    echo "launch: giving up after $restarts relaunches (last exit status $status)" >&2
    exit "$status"
  fi
  restarts=$((restarts + 1))
  state="$(gcloud compute tpus tpu-vm describe "$NAME" "${gcloud_args[@]}" "--format=value(state)" \
    || echo UNKNOWN)"
  echo "launch: run exited with status $status; TPU state is $state" >&2
  case "$state" in
    PREEMPTED|TERMINATED|STOPPED)
      [[ "$RECREATE" == 1 ]] || die "TPU $NAME is $state: recreate it (tpu/create_tpu.sh and tpu/setup_tpu.sh) or rerun with --recreate"
      recreate ;;
  esac
  sleep "$RETRY_WAIT"
done
