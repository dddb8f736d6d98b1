#!/usr/bin/env bash
# Creates a Cloud TPU VM or pod slice with gcloud (one command; see tpu/README.md).
#
#   tpu/create_tpu.sh --name NAME --zone ZONE --accelerator-type v5litepod-16 \
#       --version v2-alpha-tpuv5-lite [--project P] [--spot] [--dry-run]
set -euo pipefail
# shellcheck source=common.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<'USAGE'
usage: tpu/create_tpu.sh --name NAME --zone ZONE --accelerator-type TYPE --version RUNTIME
                         [--project PROJECT] [--spot | --preemptible] [--dry-run]
  --accelerator-type  e.g. v4-8, v4-32, v5litepod-16, v5p-8, v6e-8 (a pod slice when > one host)
  --version           TPU VM runtime, e.g. tpu-ubuntu2204-base, v2-alpha-tpuv5-lite, v2-alpha-tpuv6e
  --spot              spot capacity (cheaper, preemptible; pair with launch_tpu.sh --recreate)
  --dry-run           print the gcloud command instead of running it
USAGE
}

NAME="" ZONE="" TYPE="" VERSION="" PROJECT="" CAPACITY=""
normalize_args "$@"
set -- "${NORMALIZED_ARGS[@]}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --name) need_value "$1" "$#" "${2:-}"; NAME="$2"; shift 2 ;;
    --zone) need_value "$1" "$#" "${2:-}"; ZONE="$2"; shift 2 ;;
    --accelerator-type) need_value "$1" "$#" "${2:-}"; TYPE="$2"; shift 2 ;;
    --version) need_value "$1" "$#" "${2:-}"; VERSION="$2"; shift 2 ;;
    --project) need_value "$1" "$#" "${2:-}"; PROJECT="$2"; shift 2 ;;
    --spot) CAPACITY="--spot"; shift ;;
    --preemptible) CAPACITY="--preemptible"; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
done

[[ -n "$NAME" ]] || die "--name is required"
[[ -n "$ZONE" ]] || die "--zone is required"
[[ -n "$TYPE" ]] || die "--accelerator-type is required (e.g. v4-8)"
[[ -n "$VERSION" ]] || die "--version (TPU VM runtime) is required"
[[ "$NAME" =~ ^[a-z]([-a-z0-9]*[a-z0-9])?$ ]] \
  || die "--name '$NAME' must be lower-case letters, digits and dashes, starting with a letter"
[[ "$TYPE" =~ ^v[0-9]+[a-z]*-[0-9]+$ ]] \
  || die "--accelerator-type '$TYPE' does not look like v4-8 / v5litepod-16 / v6e-8"
require_tool gcloud "install the Google Cloud CLI"

cmd=(gcloud compute tpus tpu-vm create "$NAME" "--zone=$ZONE" "--accelerator-type=$TYPE"
     "--version=$VERSION")
[[ -n "$PROJECT" ]] && cmd+=("--project=$PROJECT")
[[ -n "$CAPACITY" ]] && cmd+=("$CAPACITY")
run_cmd "${cmd[@]}"
