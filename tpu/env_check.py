"""Prints what a worker / SLURM task sees before a run starts; fails fast when it is not as expected.

The launch scripts run this on every TPU worker (``gcloud ... ssh --worker=all``) and on every SLURM
task (``srun``) right before ``python -m experiments.run``. Each line is prefixed with the process
index, count and host, so interleaved output from many processes stays readable::

    [env_check p0/4 t1v-n-0] jax 0.11.2 (jaxlib 0.11.2), backend tpu
    [env_check p0/4 t1v-n-0] devices: 16 global, 4 local (TPU v4 x4)

``--distributed`` calls ``jax.distributed.initialize()`` with no arguments first, as the trainer
does: JAX reads the cluster from the TPU VM metadata or the SLURM variables. Without a detected
cluster it is skipped. Exit status 1 (and a line starting ``env_check FAILED``) when an
``--expect-*`` check fails or initialisation raises.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import socket
import sys

TPU_VARS = ("TPU_NAME", "TPU_WORKER_ID", "TPU_WORKER_HOSTNAMES", "TPU_ACCELERATOR_TYPE",
            "TPU_HOST_BOUNDS", "TPU_CHIPS_PER_HOST_BOUNDS", "TPU_PROCESS_BOUNDS",
            "TPU_VISIBLE_CHIPS", "CLOUD_TPU_TASK_ID", "MEGASCALE_COORDINATOR_ADDRESS",
            "MEGASCALE_NUM_SLICES", "MEGASCALE_SLICE_ID")
SLURM_VARS = ("SLURM_JOB_ID", "SLURM_JOB_NAME", "SLURM_NNODES", "SLURM_NTASKS", "SLURM_PROCID",
              "SLURM_LOCALID", "SLURM_NODEID", "SLURM_JOB_NODELIST", "SLURM_STEP_NODELIST",
              "SLURM_GPUS_ON_NODE", "SLURM_RESTART_COUNT", "SLURM_SUBMIT_DIR")
RUNTIME_VARS = ("JAX_PLATFORMS", "CUDA_VISIBLE_DEVICES", "XLA_FLAGS",
                "XLA_PYTHON_CLIENT_MEM_FRACTION", "XLA_PYTHON_CLIENT_PREALLOCATE", "LIBTPU_INIT_ARGS")
# TPU VM device files: /dev/accel* up to v4, /dev/vfio from v5e on.
TPU_DEVICE_FILES = ("/dev/accel0", "/dev/vfio")


def detected_vars(environ, names) -> dict:
    return {k: environ[k] for k in names if k in environ}


def detect_cluster(environ, path_exists=os.path.exists) -> str:
    """'slurm' inside a SLURM allocation, 'tpu-vm' on a Cloud TPU VM, else 'none'."""
    if "SLURM_JOB_ID" in environ:
        return "slurm"
    if detected_vars(environ, TPU_VARS) or any(path_exists(p) for p in TPU_DEVICE_FILES):
        return "tpu-vm"
    return "none"


def collect(distributed: bool, environ=None) -> dict:
    """Everything the check reports, as a JSON-ready dict."""
    environ = os.environ if environ is None else environ
    report = {
        "host": socket.gethostname(),
        "python": f"{platform.python_version()} ({sys.executable})",
        "cluster": detect_cluster(environ),
        "tpu_vars": detected_vars(environ, TPU_VARS),
        "slurm_vars": detected_vars(environ, SLURM_VARS),
        "runtime_vars": detected_vars(environ, RUNTIME_VARS),
    }
    try:
        import rlvr_jax  # pylint: disable=import-outside-toplevel
        report["rlvr_jax"] = os.path.dirname(rlvr_jax.__file__)
    except ImportError as err:
        report["rlvr_jax"] = f"NOT IMPORTABLE ({err})"
    import jax  # pylint: disable=import-outside-toplevel
    import jaxlib  # pylint: disable=import-outside-toplevel

    report["jax"] = jax.__version__
    report["jaxlib"] = jaxlib.__version__
    if not distributed:
        report["distributed"] = "not requested"
    elif report["cluster"] == "none":
        report["distributed"] = "skipped (no TPU VM or SLURM allocation detected)"
    else:
        try:
            jax.distributed.initialize()
            report["distributed"] = "initialized"
        except Exception as err:  # pylint: disable=broad-except  # reported, then exit 1
            report["distributed"] = f"FAILED: {type(err).__name__}: {err}"
    report["backend"] = jax.default_backend()
    report["process_index"] = jax.process_index()
    report["process_count"] = jax.process_count()
    report["device_count"] = jax.device_count()
    report["local_device_count"] = jax.local_device_count()
    kinds = collections.Counter(d.device_kind for d in jax.local_devices())
    report["local_device_kinds"] = dict(kinds)
    return report


def failures(report: dict, args: argparse.Namespace) -> list[str]:
    problems = []
    if str(report.get("distributed", "")).startswith("FAILED"):
        problems.append(f"jax.distributed.initialize() {report['distributed']}")
    if args.expect_processes is not None and report["process_count"] != args.expect_processes:
        problems.append(f"expected {args.expect_processes} processes, JAX sees "
                        f"{report['process_count']}")
    if args.expect_devices is not None and report["device_count"] != args.expect_devices:
        problems.append(f"expected {args.expect_devices} devices, JAX sees {report['device_count']}")
    if args.expect_backend is not None and report["backend"] != args.expect_backend:
        problems.append(f"expected backend {args.expect_backend}, JAX uses {report['backend']}")
    if str(report.get("rlvr_jax", "")).startswith("NOT"):
        problems.append(f"rlvr_jax is {report['rlvr_jax']}: install the project (pip install -e .)")
    return problems


def format_lines(report: dict) -> list[str]:
    prefix = f"[env_check p{report['process_index']}/{report['process_count']} {report['host']}]"
    kinds = ", ".join(f"{k} x{v}" for k, v in report["local_device_kinds"].items())

    def fmt(d):
        return " ".join(f"{k}={v}" for k, v in d.items()) or "none"

    return [f"{prefix} {line}" for line in (
        f"python {report['python']}",
        f"rlvr_jax {report['rlvr_jax']}",
        f"jax {report['jax']} (jaxlib {report['jaxlib']}), backend {report['backend']}",
        f"cluster: {report['cluster']}; distributed: {report['distributed']}",
        f"process {report['process_index']} of {report['process_count']}",
        f"devices: {report['device_count']} global, {report['local_device_count']} local ({kinds})",
        f"TPU variables: {fmt(report['tpu_vars'])}",
        f"SLURM variables: {fmt(report['slurm_vars'])}",
        f"runtime variables: {fmt(report['runtime_vars'])}",
    )]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--distributed", action="store_true",
                        help="call jax.distributed.initialize() (auto-detect) first")
    parser.add_argument("--expect-processes", type=int, default=None)
    parser.add_argument("--expect-devices", type=int, default=None)
    parser.add_argument("--expect-backend", choices=("cpu", "gpu", "tpu"), default=None)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    args = parser.parse_args(argv)
    report = collect(args.distributed)
    if args.json:
        print(json.dumps(report, sort_keys=True))
    else:
        print("\n".join(format_lines(report)))
    problems = failures(report, args)
    for problem in problems:
        print(f"env_check FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
