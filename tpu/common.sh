# shellcheck shell=bash
# Helpers shared by the tpu/ launch scripts (sourced, not run).
#
# Every command that touches a cloud resource or a cluster goes through run_cmd, so --dry-run prints
# exactly what would run, one command per line, shell-quoted (each line can be pasted into a shell):
#   DRY-RUN: gcloud compute tpus tpu-vm ssh my-tpu --zone=us-central2-b --worker=all --command=...

DRY_RUN=0

die() {
  # Bad arguments or a missing tool: message on stderr, exit status 2.
  echo "error: $*" >&2
  exit 2
}

quote_args() {
  # The arguments as one shell-quoted string (for a remote --command or a log line).
  local out="" arg
  for arg in "$@"; do
    out+="$(printf '%q' "$arg") "
  done
  printf '%s' "${out% }"
}

run_cmd() {
  if [[ "$DRY_RUN" == 1 ]]; then
    echo "DRY-RUN: $(quote_args "$@")"
    return 0
  fi
  echo "+ $(quote_args "$@")" >&2
  "$@"
}

need_value() {
  # need_value FLAG NUMBER_OF_REMAINING_ARGS NEXT_ARG: the flag must be followed by a value (not by
  # another --flag, which would silently swallow it).
  if [[ "$2" -lt 2 || "${3:-}" == --* ]]; then
    die "$1 needs a value"
  fi
}

check_int() {
  # check_int FLAG VALUE MIN
  if ! [[ "$2" =~ ^[0-9]+$ ]] || [[ "$2" -lt "$3" ]]; then
    die "$1 must be an integer >= $3 (got '$2')"
  fi
}

require_tool() {
  if [[ "$DRY_RUN" == 0 ]] && ! command -v "$1" >/dev/null 2>&1; then
    die "'$1' not found on PATH ($2)"
  fi
}

repo_root() {
  # The checkout these scripts belong to (tpu/..).
  cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd
}

normalize_args() {
  # Splits --flag=value into --flag value (up to a lone "--"; run overrides such as
  # --config.a.b=v are kept whole). Result in the global array NORMALIZED_ARGS.
  NORMALIZED_ARGS=()
  local after_sep=0 arg
  for arg in "$@"; do
    if [[ "$after_sep" == 0 && "$arg" == --* && "$arg" == *=* && "$arg" != --config.* ]]; then
      NORMALIZED_ARGS+=("${arg%%=*}" "${arg#*=}")
    else
      [[ "$arg" == "--" ]] && after_sep=1
      NORMALIZED_ARGS+=("$arg")
    fi
  done
}

tpu_device_count() {
  # tpu_device_count ACCELERATOR_TYPE: prints how many devices JAX sees on the whole slice, or
  # returns 1 for a type this table does not know. The number after the dash counts TensorCores
  # for v2, v3, v4 and v5p, and chips for v5e and v6e. JAX shows one device per TensorCore on v2 and
  # v3, and one per chip (two cores fused, "megacore") on v4 and v5p.
  local type="$1" n
  [[ "$type" =~ -([0-9]+)$ ]] || return 1
  n="${BASH_REMATCH[1]}"
  case "${type%-*}" in
    v2|v3|v5litepod|v5e|v6e) echo "$n" ;;
    v4|v5p) [[ $((n % 2)) == 0 ]] || return 1; echo $((n / 2)) ;;
    *) return 1 ;;
  esac
}
