#!/usr/bin/env bash
# Installs this project on every worker of a TPU VM / pod slice and runs the environment check.
#
# By default the local checkout (git HEAD plus nothing else) is copied to all workers; --repo clones
# a git URL there instead. Each worker gets ~/rlvr_jax with its own .venv holding jax[tpu].
set -euo pipefail
# shellcheck source=common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<'USAGE'
usage: tpu/setup_tpu.sh --name NAME --zone ZONE [--project PROJECT]
                        [--repo GIT_URL [--branch BRANCH]] [--jax-spec SPEC] [--dry-run]
  --repo       clone this URL on the workers (default: copy the local checkout's git HEAD)
  --jax-spec   pip requirement for JAX on TPU (default: "jax[tpu]>=0.10.2,<0.12")
  --dry-run    print the commands instead of running them
USAGE
}

NAME="" ZONE="" PROJECT="" REPO="" BRANCH="main" JAX_SPEC="jax[tpu]>=0.10.2,<0.12"
normalize_args "$@"
set -- "${NORMALIZED_ARGS[@]}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --name) need_value "$1" "$#" "${2:-}"; NAME="$2"; shift 2 ;;
    --zone) need_value "$1" "$#" "${2:-}"; ZONE="$2"; shift 2 ;;
    --project) need_value "$1" "$#" "${2:-}"; PROJECT="$2"; shift 2 ;;
    --repo) need_value "$1" "$#" "${2:-}"; REPO="$2"; shift 2 ;;
    --branch) need_value "$1" "$#" "${2:-}"; BRANCH="$2"; shift 2 ;;
    --jax-spec) need_value "$1" "$#" "${2:-}"; JAX_SPEC="$2"; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
done
[[ -n "$NAME" ]] || die "--name is required"
[[ -n "$ZONE" ]] || die "--zone is required"
require_tool gcloud "install the Google Cloud CLI"

gcloud_args=("--zone=$ZONE")
[[ -n "$PROJECT" ]] && gcloud_args+=("--project=$PROJECT")

if [[ -n "$REPO" ]]; then
  fetch="rm -rf ~/rlvr_jax && git clone --depth 1 --branch $(quote_args "$BRANCH") $(quote_args "$REPO") ~/rlvr_jax"
else
  root="$(repo_root)"
  tarball="${TMPDIR:-/tmp}/rlvr_jax_src.tar.gz"
  run_cmd git -C "$root" archive --format=tar.gz -o "$tarball" HEAD
  run_cmd gcloud compute tpus tpu-vm scp "$tarball" "$NAME:rlvr_jax_src.tar.gz" "${gcloud_args[@]}" \
    --worker=all
  fetch="rm -rf ~/rlvr_jax && mkdir -p ~/rlvr_jax && tar -xzf ~/rlvr_jax_src.tar.gz -C ~/rlvr_jax"
fi

# The same install on every worker; the env check at the end prints what each worker detected.
remote="set -e; $fetch && cd ~/rlvr_jax && python3 -m venv .venv && . .venv/bin/activate"
remote+=" && pip install -q -U pip && pip install -q -c requirements.txt -e ."
remote+=" && pip install -q -U $(quote_args "$JAX_SPEC")"
remote+=" && python tpu/env_check.py --distributed"
run_cmd gcloud compute tpus tpu-vm ssh "$NAME" "${gcloud_args[@]}" --worker=all "--command=$remote"
