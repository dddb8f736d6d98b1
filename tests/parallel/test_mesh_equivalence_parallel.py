"""Two RL steps of a paper config's :cpu variant on 8 fake CPU devices under (fsdp=4, tensor=2) and
(data=2, fsdp=4) give the losses and parameters of the same run on 1 device (issue 7 item 3)."""
import jax

from tests.parallel import parallel_compare as pc


def test_fsdp_tensor_and_data_fsdp_meshes_match_one_device(tmp_path):
  out = str(tmp_path)
  pc.run_helper(["run", out, pc.CONFIG, jax.config.jax_compilation_cache_dir or "",
                 "one=data:1,fsdp:1,tensor:1,ndev:1", "ft=data:1,fsdp:4,tensor:2",
                 "df=data:2,fsdp:4,tensor:1", "--"] + pc.OVERRIDES, num_devices=8)
  specs = pc.assert_same_run(out, "one", "ft")
  # The params really were laid out by the rules: FSDP over the model dim, tensor over heads / MLP.
  assert specs["['layers']['0']['mlp']['gate']['value']"] == ["fsdp", "tensor"]
  assert specs["['layers']['0']['attn']['o']['value']"] == ["tensor", None, "fsdp"]
  specs = pc.assert_same_run(out, "one", "df")
  assert specs["['layers']['0']['mlp']['down']['value']"] == ["tensor", "fsdp"]
