"""Which accelerators each launched process gives JAX, and the device-count check before step 0.

No SLURM cluster is available here. A fake ``srun`` plays the job step: for every simulated task it
sets the SLURM variables and the CUDA_VISIBLE_DEVICES that SLURM would, and runs
``tpu/env_check.py --plan``, which prints the arguments jax.distributed.initialize() would get
(ours, then JAX's own auto-detection for the rest) without initialising anything. The tests add
those up per node and over the job: every GPU used exactly once, every id valid for what its
process sees, and the total equal to the count the launch script expects.
"""
import json
import os
import pathlib
import subprocess
import sys

import pytest

from rlvr_jax.parallel import multihost

ROOT = pathlib.Path(__file__).resolve().parents[2]
TPU = ROOT / "tpu"


def _env(**extra):
  env = {k: v for k, v in os.environ.items()
         if not k.startswith(("SLURM_", "TPU_", "JAX_LOCAL", "CUDA_VISIBLE"))}
  env.update(extra)
  return env


def _task_env(nodes, tasks, node, local, visible, **extra):
  """The variables SLURM sets for one task of a job step (the subset our code and JAX read)."""
  env = {"SLURM_JOB_ID": "77", "SLURM_STEP_NODELIST": f"gpu[001-{nodes:03d}]",
         "SLURM_NTASKS": str(nodes * tasks), "SLURM_PROCID": str(node * tasks + local),
         "SLURM_LOCALID": str(local), "SLURM_NODEID": str(node),
         "SLURM_STEP_TASKS_PER_NODE": f"{tasks}(x{nodes})"}
  if visible is not None:
    env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, visible))
  env.update(extra)
  return env


# ------------------------------------------------------------------------------------------------
# multihost.slurm_local_device_ids on fake environments
# ------------------------------------------------------------------------------------------------


def test_one_process_per_node_drives_all_its_gpus():
  env = _task_env(2, 1, 1, 0, range(8))
  assert multihost.slurm_local_device_ids(env) == list(range(8))
  assert multihost.slurm_local_device_ids(env, 8) == list(range(8))
  assert multihost.auto_initialize_kwargs(env) == {"local_device_ids": list(range(8))}


@pytest.mark.parametrize("visible", [[4, 5, 6, 7], [0, 1, 2, 3]])  # physical ids, or cgroup-renumbered
def test_task_bound_to_its_gpus_gets_ordinals_from_zero(visible):
  env = _task_env(2, 2, 1, 1, visible, SLURM_GPUS_PER_TASK="4")
  assert multihost.slurm_local_device_ids(env) == [0, 1, 2, 3]
  assert multihost.slurm_local_device_ids(env, 4) == [0, 1, 2, 3]


def test_unbound_tasks_split_the_node():
  # Every task sees all 8 GPUs (no per-task binding): task 1 of 2 takes the second half.
  env = _task_env(1, 2, 0, 1, range(8))
  assert multihost.slurm_local_device_ids(env, 4) == [4, 5, 6, 7]
  assert multihost.slurm_local_device_ids(env) == [4, 5, 6, 7]  # 8 visible / 2 tasks
  # No CUDA_VISIBLE_DEVICES at all: the process sees the whole node, same split.
  assert multihost.slurm_local_device_ids(_task_env(1, 8, 0, 3, None), 1) == [3]
  assert multihost.slurm_local_device_ids(
      _task_env(1, 2, 0, 1, None, SLURM_GPUS_ON_NODE="8")) == [4, 5, 6, 7]


def test_leaves_jax_alone_where_it_should():
  assert multihost.auto_initialize_kwargs({}) == {}  # TPU VM or no cluster: JAX detects all
  env = _task_env(1, 1, 0, 0, range(8), JAX_LOCAL_DEVICE_IDS="0,1")
  assert multihost.slurm_local_device_ids(env) is None  # the user's own choice, read by JAX
  # A CPU allocation: no GPU count anywhere.
  assert multihost.slurm_local_device_ids(_task_env(2, 1, 0, 0, None)) is None
  assert multihost.slurm_local_device_ids(_task_env(2, 1, 0, 0, range(8)), 0) is None


def test_tasks_per_node_from_the_step_layout():
  env = {"SLURM_STEP_TASKS_PER_NODE": "2(x3),1", "SLURM_NODEID": "3"}
  assert multihost.slurm_tasks_on_node(env) == 1
  assert multihost.slurm_tasks_on_node({**env, "SLURM_NODEID": "2"}) == 2
  assert multihost.slurm_tasks_on_node({**env, "SLURM_NTASKS_PER_NODE": "4"}) == 4
  assert multihost.slurm_tasks_on_node({}) == 1


def test_a_layout_that_does_not_fit_names_the_numbers():
  env = _task_env(1, 2, 0, 0, [0, 1, 2])
  with pytest.raises(ValueError, match=r"should drive 4 GPUs but sees 3 .*CUDA_VISIBLE_DEVICES=0,1,2"):
    multihost.slurm_local_device_ids(env, 4)


def test_jax_alone_would_give_each_task_one_gpu(monkeypatch):
  """Why the override exists: JAX's SLURM default is [SLURM_LOCALID] per process."""
  from jax._src import clusters  # pylint: disable=import-outside-toplevel
  for key in [k for k in os.environ if k.startswith("SLURM_")]:
    monkeypatch.delenv(key)
  for key, value in _task_env(2, 1, 1, 0, range(8)).items():
    monkeypatch.setenv(key, value)
  _, count, pid, ids = clusters.ClusterEnv.auto_detect_unset_distributed_params(
      None, None, None, None, None, 300)
  assert (count, pid, list(ids)) == (2, 1, [0])  # 1 of 8 GPUs: 2 devices for a 16-GPU job
  ours = multihost.auto_initialize_kwargs(os.environ)["local_device_ids"]
  _, _, _, ids = clusters.ClusterEnv.auto_detect_unset_distributed_params(
      None, None, None, ours, None, 300)
  assert list(ids) == list(range(8))  # kept as given


# ------------------------------------------------------------------------------------------------
# launch_slurm.sh under a fake srun
# ------------------------------------------------------------------------------------------------

# Plays one job step. Options before the command are srun's; the job's nodes come from
# SLURM_NNODES and its GPUs per node from FAKE_GPUS_PER_NODE. With --gpus-per-task=g each task sees
# its own g GPUs (FAKE_GPU_BIND=none: every task sees the whole node, as without binding); without
# it every task sees all the node's GPUs. env_check runs once per task with --plan; the trainer is
# only logged. FAKE_SRUN_MODE=once runs the command once, as a plain process without SLURM step
# variables (so env_check's real device check runs on this machine's CPU).
FAKE_SRUN = r'''
import os, subprocess, sys
args = sys.argv[1:]
opts = {}
while args and args[0].startswith("--"):
  key, _, value = args.pop(0)[2:].partition("=")
  opts[key] = value
cmd = [sys.executable if a == "python" else a for a in args]
with open(os.environ["FAKE_LOG"], "a") as log:
  log.write("srun " + " ".join(sys.argv[1:]) + "\n")
if "experiments.run" in cmd:
  sys.exit(0)
if os.environ.get("FAKE_SRUN_MODE") == "once":
  env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
  sys.exit(subprocess.run(cmd, env=env).returncode)
nodes, gpus = int(os.environ["SLURM_NNODES"]), int(os.environ["FAKE_GPUS_PER_NODE"])
tasks = int(opts["ntasks-per-node"])
per_task = int(opts.get("gpus-per-task", 0))
status = 0
for node in range(nodes):
  for local in range(tasks):
    env = dict(os.environ, SLURM_STEP_NODELIST=f"gpu[001-{nodes:03d}]",
               SLURM_STEP_NUM_NODES=str(nodes), SLURM_NTASKS=str(nodes * tasks),
               SLURM_PROCID=str(node * tasks + local), SLURM_LOCALID=str(local),
               SLURM_NODEID=str(node), SLURM_NTASKS_PER_NODE=str(tasks),
               SLURM_STEP_TASKS_PER_NODE=f"{tasks}(x{nodes})")
    visible = range(gpus)
    if per_task:
      env["SLURM_GPUS_PER_TASK"] = str(per_task)
      if os.environ.get("FAKE_GPU_BIND") != "none":
        visible = range(local * per_task, local * per_task + per_task)
    env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, visible))
    status = max(status, subprocess.run(cmd + ["--plan"], env=env).returncode)
sys.exit(status)
'''


def _fake_cluster(tmp_path, nodes, gpus, **extra):
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir(exist_ok=True)
  srun = bin_dir / "srun"
  srun.write_text(f"#!{sys.executable}\n{FAKE_SRUN}")
  srun.chmod(0o755)
  scontrol = bin_dir / "scontrol"
  scontrol.write_text('#!/usr/bin/env bash\necho "scontrol $*" >> "$FAKE_LOG"\n')
  scontrol.chmod(0o755)
  log = tmp_path / "log"
  log.touch()
  env = _env(PATH=f"{bin_dir}:{os.environ['PATH']}", FAKE_LOG=str(log), SLURM_JOB_ID="77",
             SLURM_NNODES=str(nodes), FAKE_GPUS_PER_NODE=str(gpus), PYTHONPATH=str(ROOT),
             JAX_PLATFORMS="cpu", **extra)
  return env, log


def _launch_in_job(tmp_path, nodes, gpus, tasks, **extra):
  env, log = _fake_cluster(tmp_path, nodes, gpus, **extra)
  out = subprocess.run(
      ["bash", str(TPU / "launch_slurm.sh"), "--config", "configs/grpo.py", "--workdir",
       "gs://bucket/runs/layout", "--nodes", str(nodes), "--gpus-per-node", str(gpus),
       "--tasks-per-node", str(tasks), "--venv", "/nonexistent"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
  return out, log.read_text().splitlines()


def _device_report(plans, nodes, gpus):
  """Problems with the devices the processes would give JAX (empty when all is well)."""
  problems = []
  per_node = {}
  for p in plans:
    if p["invalid_ids"]:
      problems.append(f"process {p['process_id']}: ids {p['invalid_ids']} not visible")
    per_node.setdefault(p["slurm_nodeid"], []).extend(p["gpus"] or [])
  for node in map(str, range(nodes)):
    used = sorted(per_node.get(node, []), key=int)
    if used != [str(i) for i in range(gpus)]:
      problems.append(f"node {node} drives GPUs {used}, not each of its {gpus} once")
  total = sum(len(p["local_device_ids"] or []) for p in plans)
  if total != nodes * gpus:
    problems.append(f"{total} devices in all, expected {nodes * gpus}")
  return problems


@pytest.mark.parametrize("nodes, gpus, tasks, bind", [
    (2, 8, 1, "per_task"),   # default: one process per node, all 8 GPUs
    (1, 8, 8, "per_task"),   # one process per GPU, each bound to its own
    (2, 8, 2, "per_task"),   # two processes per node, 4 GPUs each
    (2, 8, 2, "none"),       # the same where SLURM does not bind GPUs to tasks
])
def test_slurm_launch_gives_jax_every_gpu_once(tmp_path, nodes, gpus, tasks, bind):
  out, log = _launch_in_job(tmp_path, nodes, gpus, tasks, FAKE_GPU_BIND=bind,
                            SLURM_NTASKS=str(nodes * tasks))
  assert out.returncode == 0, out.stderr
  plans = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
  assert len(plans) == nodes * tasks
  assert sorted(p["process_id"] for p in plans) == list(range(nodes * tasks))
  assert {p["num_processes"] for p in plans} == {nodes * tasks}
  assert {p["coordinator_address"].split(":")[0] for p in plans} == {"gpu001"}
  for p in plans:
    assert len(p["local_device_ids"]) == gpus // tasks, p
  assert _device_report(plans, nodes, gpus) == []
  # Both steps carry the same layout and the total the job must see.
  check, train = [line.split() for line in log if line.startswith("srun")]
  per_task = str(gpus // tasks)
  assert check[check.index("--gpus-per-process") + 1] == per_task
  assert check[check.index("--expect-devices") + 1] == str(nodes * gpus)
  assert f"--gpus_per_process={per_task}" in train
  assert f"--expect_devices={nodes * gpus}" in train
  assert ("--gpus-per-task=" + per_task in check) == (tasks > 1)


def test_device_report_catches_jax_default(tmp_path):
  """The checks above fail on what JAX alone would do (one GPU per task: SLURM_LOCALID)."""
  env, _ = _fake_cluster(tmp_path, 2, 8, JAX_LOCAL_DEVICE_IDS="0")  # same ids JAX would pick
  plans = []
  for node in range(2):
    task = dict(env, **_task_env(2, 1, node, 0, range(8)))
    out = subprocess.run([sys.executable, str(TPU / "env_check.py"), "--plan",
                          "--gpus-per-process", "8"], cwd=ROOT, env=task, capture_output=True,
                         text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    plans.append(json.loads(out.stdout))
  assert [p["local_device_ids"] for p in plans] == [[0], [0]]
  assert "2 devices in all, expected 16" in _device_report(plans, 2, 8)
  # A bound task asked for an id it does not see is reported as invalid.
  task = dict(env, **_task_env(1, 2, 0, 1, [4, 5, 6, 7], JAX_LOCAL_DEVICE_IDS="4,5,6,7"))
  out = subprocess.run([sys.executable, str(TPU / "env_check.py"), "--plan"], cwd=ROOT, env=task,
                       capture_output=True, text=True, timeout=120, check=False)
  assert json.loads(out.stdout)["invalid_ids"] == [4, 5, 6, 7]


def test_slurm_launch_stops_before_training_on_a_device_mismatch(tmp_path):
  # The check step runs for real on this machine: 2 CPU devices where the job expects 16 GPUs.
  out, log = _launch_in_job(tmp_path, 2, 8, 1, FAKE_SRUN_MODE="once", SLURM_NTASKS="2",
                            XLA_FLAGS="--xla_force_host_platform_device_count=2")
  assert out.returncode != 0
  assert "env_check FAILED: expected 16 devices, JAX sees 2" in out.stderr
  assert not any("experiments.run" in line for line in log)  # the trainer never started


def test_trainer_stops_before_step_0_on_a_device_mismatch(tmp_path):
  workdir = tmp_path / "run"
  env = _env(JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=2",
             PYTHONPATH=str(ROOT))
  out = subprocess.run(
      [sys.executable, "-m", "experiments.run", "--config", "configs/grpo.py:cpu", "--workdir",
       str(workdir), "--expect_devices=4", "--compilation_cache="], cwd=ROOT, env=env,
      capture_output=True, text=True, timeout=300, check=False)
  assert out.returncode == 2, out.stderr
  assert "expected 4 devices in all (--expect_devices) but JAX sees 2" in out.stderr
  assert "2 local on process 0 of 1" in out.stderr
  assert not workdir.exists()  # nothing was built or written


def test_env_check_device_count():
  env = _env(JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=2")
  run = lambda n: subprocess.run(  # noqa: E731
      [sys.executable, str(TPU / "env_check.py"), "--expect-devices", str(n)], cwd=ROOT, env=env,
      capture_output=True, text=True, timeout=120, check=False)
  good, bad = run(2), run(4)
  assert good.returncode == 0, good.stderr
  assert bad.returncode == 1
  assert "expected 4 devices, JAX sees 2 (2 local on process 0 of 1)" in bad.stderr
