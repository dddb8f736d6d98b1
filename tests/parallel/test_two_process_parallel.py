"""Two local processes (4 fake CPU devices each) joined by jax.distributed run two RL steps of the
same config through the real CLI (`python -m experiments.run --coordinator_address ...`) and reach
the result of one process on one device (issue 7 item 3).

Each process loads half of the prompts (grain sharding) and scores its own groups; only process 0
writes metrics; both write their checkpoint shards.
"""
import os
import socket
import subprocess
import sys

import jax

from tests.parallel import parallel_compare as pc


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_processes_match_one_device(tmp_path):
  out, workdir = str(tmp_path / "out"), str(tmp_path / "two")
  cache = jax.config.jax_compilation_cache_dir or ""
  address = f"127.0.0.1:{_free_port()}"
  procs, logs = [], []
  try:
    for i in range(2):
      log = open(tmp_path / f"process_{i}.log", "w")
      logs.append(log)
      cmd = [sys.executable, "-m", "experiments.run", "--config", pc.CONFIG, "--workdir", workdir,
             f"--coordinator_address={address}", "--num_processes=2", f"--process_id={i}",
             "--config.mesh.data=2", "--config.mesh.fsdp=4", "--config.mesh.tensor=1",
             f"--compilation_cache={cache}"] + pc.CLI_OVERRIDES
      procs.append(subprocess.Popen(cmd, cwd=pc.ROOT, env=pc.env(4), stdout=log,
                                    stderr=subprocess.STDOUT))
    # The single-process, single-device reference runs meanwhile.
    pc.run_helper(["run", out, pc.CONFIG, cache, "one=data:1,fsdp:1,tensor:1", "--"] + pc.OVERRIDES,
                  num_devices=1)
    codes = [p.wait(timeout=900) for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
    for log in logs:
      log.close()
  texts = [(tmp_path / f"process_{i}.log").read_text() for i in range(2)]
  assert codes == [0, 0], "\n".join(t[-4000:] for t in texts)
  assert "step 2/2" in texts[0] and "step 2/2" not in texts[1]  # only process 0 logs
  pc.run_helper(["dump", out, f"two={workdir}"], num_devices=1)
  specs = pc.assert_same_run(out, "one", "two")
  assert specs["['layers']['0']['mlp']['up']['value']"] == ["fsdp", "tensor"]
  # Both processes wrote their shards of the final checkpoint (orbax OCDBT: one folder each).
  params_dir = os.path.join(workdir, "checkpoints", "2", "params")
  assert {"ocdbt.process_0", "ocdbt.process_1"} <= set(os.listdir(params_dir))
