"""Prints what a worker / SLURM task sees before a run starts; fails fast when it is not as expected.

The launch scripts run this on every TPU worker (``gcloud ... ssh --worker=all``) and on every SLURM
task (``srun``) right before ``python -m experiments.run``. Each line is prefixed with the process
index, count and host, so interleaved output from many processes stays readable::

    [env_check p0/4 t1v-n-0] jax 0.11.2 (jaxlib 0.11.2), backend tpu
    [env_check p0/4 t1v-n-0] devices: 16 global, 4 local (TPU v4 x4)

``--distributed`` calls ``jax.distributed.initialize()`` first, exactly as the trainer does
(``rlvr_jax.parallel.multihost``): JAX reads the cluster from the TPU VM metadata or the SLURM
variables, and under SLURM on GPUs the local device ids come from
``multihost.slurm_local_device_ids`` (``--gpus-per-process``, as the trainer's
``--gpus_per_process``). Without a detected cluster it is skipped. Exit status 1 (and a line
starting ``env_check FAILED``) when an ``--expect-*`` check fails or initialisation raises.

``--plan`` initialises nothing: it prints, as one JSON line, the arguments this process would give
``jax.distributed.initialize()`` after JAX's own auto-detection has filled in the rest, and the
GPUs they select. The dry-run tests (tests/tpu/) run it under a fake ``srun`` to check the device
ids every simulated SLURM task would use.
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


def init_kwargs(environ, gpus_per_process) -> dict:
    """Our arguments for jax.distributed.initialize() (the trainer's, via rlvr_jax)."""
    from rlvr_jax.parallel import multihost  # pylint: disable=import-outside-toplevel
    return multihost.auto_initialize_kwargs(environ, gpus_per_process)


def plan(environ, gpus_per_process) -> dict:
    """What initialize() would be called with in this process, without calling it.

    JAX fills the arguments we leave out (coordinator, process count and id, and local device ids
    unless given) in ``ClusterEnv.auto_detect_unset_distributed_params``, a private function:
    calling it here shows exactly what initialize() would use, including JAX's own one-GPU default
    if we failed to override it. JAX reads os.environ there, so ``environ`` should be os.environ.
    """
    from jax._src import clusters  # pylint: disable=import-outside-toplevel
    from rlvr_jax.parallel import multihost  # pylint: disable=import-outside-toplevel

    ours = init_kwargs(environ, gpus_per_process)
    ids = ours.get("local_device_ids")
    if ids is None and environ.get("JAX_LOCAL_DEVICE_IDS"):  # read by initialize() itself
        ids = [int(i) for i in environ["JAX_LOCAL_DEVICE_IDS"].split(",")]
    address, count, pid, ids = clusters.ClusterEnv.auto_detect_unset_distributed_params(
        environ.get("JAX_COORDINATOR_ADDRESS"), None, None, ids, None, 300)
    seen = multihost.visible_devices(environ)
    ids = None if ids is None else list(ids)
    out = {"host": socket.gethostname(), "slurm_nodeid": environ.get("SLURM_NODEID"),
           "ours": ours, "coordinator_address": address, "num_processes": count,
           "process_id": pid, "local_device_ids": ids,
           "visible": None if seen is None else dict([seen]), "gpus": None, "invalid_ids": []}
    if ids is not None and seen is not None:
        # CUDA ordinals are positions in the visible list: map them back to the physical GPUs.
        out["invalid_ids"] = [i for i in ids if not 0 <= i < len(seen[1])]
        out["gpus"] = [seen[1][i] for i in ids if 0 <= i < len(seen[1])]
    elif ids is not None:
        out["gpus"] = [str(i) for i in ids]
    return out


def collect(distributed: bool, environ=None, gpus_per_process=None) -> dict:
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
            kwargs = init_kwargs(environ, gpus_per_process)
            jax.distributed.initialize(**kwargs)
            report["distributed"] = "initialized" + (f" with {kwargs}" if kwargs else "")
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
        problems.append(f"expected {args.expect_devices} devices, JAX sees {report['device_count']} "
                        f"({report['local_device_count']} local on process "
                        f"{report['process_index']} of {report['process_count']})")
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
    parser.add_argument("--gpus-per-process", type=int, default=None,
                        help="under SLURM: GPUs each task drives (default: from SLURM variables)")
    parser.add_argument("--plan", action="store_true",
                        help="print the initialize() arguments this process would use, as JSON, "
                        "and exit (initialises nothing)")
    parser.add_argument("--expect-processes", type=int, default=None)
    parser.add_argument("--expect-devices", type=int, default=None)
    parser.add_argument("--expect-backend", choices=("cpu", "gpu", "tpu"), default=None)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    args = parser.parse_args(argv)
    if args.plan:
        try:
            print(json.dumps(plan(os.environ, args.gpus_per_process), sort_keys=True))
        except ValueError as err:
            print(f"env_check FAILED: {err}", file=sys.stderr)
            return 1
        return 0
    report = collect(args.distributed, gpus_per_process=args.gpus_per_process)
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
