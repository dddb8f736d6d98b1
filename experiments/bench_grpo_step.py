"""Seconds per full GRPO step (generation + update): rlvr_jax vs TRL's GRPOTrainer (vs tunix), one run.

Every engine trains the same tiny Qwen2-architecture checkpoint (the one ``bench_sampler`` writes:
hidden 128, 4 layers, 4 heads, 2 kv heads, vocab 512, tied embeddings, ~0.85M params) in float32, with
the same settings: 8 prompts (16 tokens each) x G = 8 samples x 32 new tokens at temperature 1 with no
early stop, GRPO advantages (group mean and std), the clipped ratio loss with eps = 0.2 on both sides
aggregated as a token mean over the batch (TRL's ``loss_type="dapo"``), beta = 0 (no reference model),
one optimizer step per rollout (TRL's ``num_iterations=1``), AdamW (betas 0.9 / 0.999, eps 1e-8, no
weight decay, constant lr), gradient clipping at norm 1. The reward is the same cheap rule on both
sides: the fraction of the 32 completion tokens whose word ("t<id>") has an even id. The point is
step time, not learning.

- rlvr_jax: ``rlvr_jax.training.loop.run`` with a config (the trainer users run: MeshSampler rollout,
  reward registry, GRPO advantages, ``step.rl_update`` jitted, metrics.jsonl and TensorBoard every
  step); step times are the intervals between consecutive metrics.jsonl records, and the split comes
  from its time_rollout_s / time_logprob_s / time_update_s.
- TRL: ``trl.GRPOTrainer`` (``use_cpu=True``, ``loss_type="dapo"``, ``beta=0``,
  ``generation_kwargs={"min_new_tokens": 32}`` so every completion is 32 tokens), run with the python
  of a separate virtualenv (``--trl-python``; TRL is not a dependency of rlvr_jax). Step times are the
  intervals between ``on_step_end`` callbacks; "rollout" is the time inside
  ``_generate_and_score_completions`` (generation, decoding, rewards, advantages).
- tunix: its GRPO learner, run with the python of its own virtualenv (``--tunix-python``; see
  ``_tunix_worker``).

The peers' virtualenvs are built reproducibly from pinned requirements (experiments/peers/):
``python -m experiments.peers setup trl`` / ``setup tunix``. A requested engine that cannot run (no
interpreter, an import that fails, a worker that crashes) fails the benchmark with the reason; to
time rlvr_jax alone pass ``--engines rlvr_jax``.

Each engine runs alone in its own subprocess (one after the other) after ``--warmup`` untimed steps
(compilation, allocator warm-up); ``--steps`` steps are timed. Nothing is downloaded: the tokenizer
(word level, "t<id>" per id) and the prompts are made here. Usage, from the repository root:

    python -m experiments.peers setup trl && python -m experiments.peers setup tunix   # once
    python -m experiments.bench_grpo_step [--steps 20] [--warmup 3] [--runs 3] [--trl-python PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

PROMPTS = 8  # distinct prompts per step
GROUP = 8  # samples per prompt (G)
NEW = 32  # new tokens per sample, no early stop
PROMPT_LEN = 16
LR = 1e-5
CLIP = 0.2
ADV_EPS = 1e-4  # TRL's (r - mean) / (std + 1e-4)
PAD, EOS = "<pad>", "<eos>"  # ids 0 and 1; ids >= 2 are the words "t<id>"
DATASET = 64  # prompts in the training set (both engines cycle through it)


# ------------------------------------------------------------------------------------------------
# Shared pieces (plain python + numpy: each engine's interpreter imports this file)
# ------------------------------------------------------------------------------------------------


def even_fraction(text: str) -> float:
  """The reward: fraction of the NEW completion tokens whose word is "t<even id>"."""
  hits = 0
  for word in text.split():
    if word.startswith("t") and word[1:].isdigit() and int(word[1:]) % 2 == 0:
      hits += 1
  return hits / NEW


def prompt_texts(vocab: int, seed: int = 0) -> list[str]:
  rng = np.random.RandomState(seed)
  ids = rng.randint(2, vocab, (DATASET, PROMPT_LEN))
  return [" ".join(f"t{i}" for i in row) for row in ids]


# Real-size mode (``--preset``, issue 18): the shape of configs/grpo_qwen2p5_0p5b_gsm8k.py on a
# random-weight preset: P prompts x G samples x NEW tokens, float32 params, bf16 compute, k3 KL to a
# reference copy (beta 0.04), micro-batches of 64 rows. Set by `use_preset`.
PRESET = None
PRESET_SHAPE = dict(prompts=32, group=8, new=512, prompt_len=128)
NOMINAL_BF16_FLOPS = {"H100": 989.4e12, "H200": 989.4e12, "A100": 312e12}  # dense, SXM


def use_preset(name: str, prompts: int, group: int, new: int, prompt_len: int) -> None:
  """Switches the module to the real-size shapes (every worker calls it with the same values)."""
  global PRESET, PROMPTS, GROUP, NEW, PROMPT_LEN, DATASET
  PRESET, PROMPTS, GROUP, NEW, PROMPT_LEN = name, prompts, group, new, prompt_len
  DATASET = max(DATASET, 2 * prompts)


def write_task(path: pathlib.Path) -> dict:
  """Checkpoint (bench_sampler's), word-level tokenizer and prompts.jsonl under ``path``."""
  import tokenizers
  from tokenizers import models as tok_models, pre_tokenizers
  from experiments.bench_sampler import ARCH, write_checkpoint
  if PRESET:
    from rlvr_jax.models import ModelConfig
    preset = getattr(ModelConfig, PRESET)()
    ARCH = dict(ARCH, vocab_size=preset.vocab_size)
    n_params = preset.num_params  # random init inside the trainer (config.model.init = "preset")
  else:
    n_params = write_checkpoint(path)
  vocab = {PAD: 0, EOS: 1, **{f"t{i}": i for i in range(2, ARCH["vocab_size"])}}
  tok = tokenizers.Tokenizer(tok_models.WordLevel(vocab, unk_token=PAD))
  tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
  tok.add_special_tokens([tokenizers.AddedToken(PAD, special=True), tokenizers.AddedToken(EOS, special=True)])
  tok.save(str(path / "tokenizer.json"))
  # No eos_token here: rlvr_jax then has no stop id. TRL's tokenizer gets "<eos>" in its worker
  # (it needs one) and min_new_tokens = max keeps it from ever being sampled.
  (path / "tokenizer_config.json").write_text(json.dumps({"pad_token": PAD, "tokenizer_class":
                                                          "PreTrainedTokenizerFast"}))
  with open(path / "prompts.jsonl", "w") as f:
    for text in prompt_texts(ARCH["vocab_size"] if not PRESET else min(ARCH["vocab_size"], 50_000)):
      f.write(json.dumps({"question": text, "answer": "0"}) + "\n")
  return {"params": n_params}


def summarize(step_s: list[float], rollout_s: list[float], update_s: list[float], **extra) -> dict:
  return {"step_s": step_s, "rollout_s": rollout_s, "update_s": update_s, **extra}


# ------------------------------------------------------------------------------------------------
# rlvr_jax
# ------------------------------------------------------------------------------------------------


def rlvr_config(path: str, total_steps: int):
  import ml_collections
  from configs import common
  c = common.base()
  c.total_steps = total_steps
  c.export_hf = False
  c.model.init = "hf"
  c.model.path = path
  c.tokenizer.kind = "pretrained"
  c.data.train = ml_collections.ConfigDict(dict(source="jsonl", path=os.path.join(path, "prompts.jsonl"),
                                                question_key="question", answer_key="answer",
                                                answer_format="plain"))
  c.data.template = "plain"
  c.data.template_options = ml_collections.ConfigDict(dict(format="{question}"))
  c.data.max_prompt_len = PROMPT_LEN
  c.rollout.prompts_per_step = PROMPTS
  c.rollout.num_samples = GROUP
  c.rollout.temperature = 1.0
  c.rollout.max_new_tokens = NEW
  c.reward.terms = [dict(name="bench_even_fraction", weight=1.0)]
  c.reward.correctness = ""
  c.algo.advantage = "grpo"
  c.algo.advantage_options = ml_collections.ConfigDict(dict(eps=ADV_EPS))
  c.algo.loss = "ppo_clip"
  c.algo.clip_low = CLIP
  c.algo.clip_high = CLIP
  c.algo.agg_mode = "token-mean"  # TRL's "dapo": token mean over the whole batch
  c.algo.kl_coef = 0.0
  c.algo.epochs = 1
  c.algo.num_minibatches = 1
  c.optim.lr = LR
  c.optim.schedule = "constant"
  c.optim.warmup_steps = 0
  c.optim.weight_decay = 0.0
  c.optim.grad_clip = 1.0
  c.eval.size = 0
  c.checkpoint.every = 0
  c.log.progress_bar = False
  if PRESET:  # the shape and objective of configs/grpo_qwen2p5_0p5b_gsm8k.py on random weights
    c.model.init = "preset"
    c.model.preset = PRESET
    c.model.path = None
    c.tokenizer.path = path
    c.model.dtype = "bfloat16"
    c.model.param_dtype = "float32"
    c.data.max_prompt_len = PROMPT_LEN
    c.algo.kl_coef = 0.04
    c.algo.kl_estimator = "k3"
    c.algo.agg_mode = "seq-mean-token-mean"
    c.algo.micro_batch_size = 64
    c.optim.lr = 1e-6
  return c


def update_flops(num_params: int, config, rows: int, seq_len: int) -> float:
  """Model FLOPs of one update (forward + backward = 3 forwards) over ``rows`` sequences.

  A forward is 2 * params per token (the tied embedding counted once, as the lm head matmul) plus
  causal attention, 2 * 2 * L * (N * H) * S / 2 per token (QK^T and PV over half the length on average).
  """
  per_token = 2 * num_params + 2 * config.num_layers * config.num_heads * config.head_dim * seq_len
  return 3 * per_token * rows * seq_len


def _rlvr_worker(path: str, steps: int, warmup: int) -> dict:
  from rlvr_jax import rewards as rewards_lib
  from rlvr_jax.training import loop
  from rlvr_jax.training import metrics as metrics_lib

  if "bench_even_fraction" not in rewards_lib.REWARDS:  # a test may run the worker twice
    @rewards_lib.register_reward("bench_even_fraction")
    def _reward(completions, examples):
      del examples
      return np.array([even_fraction(c) for c in completions], np.float32)

  workdir = tempfile.mkdtemp(prefix="bench_grpo_rlvr_")
  start = time.time()
  loop.run(rlvr_config(path, warmup + steps), workdir)
  rows = metrics_lib.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
  times = [r["time"] for r in rows]
  timed = rows[warmup:]
  assert all(r["response_len"] == NEW for r in rows), "rlvr_jax rows did not all generate NEW tokens"
  extra = {}
  if PRESET:
    import jax
    from rlvr_jax.models import ModelConfig
    preset = getattr(ModelConfig, PRESET)()
    extra = dict(logprob_s=[r["time_logprob_s"] for r in timed],
                 train_s=[r["time_update_s"] for r in timed],
                 first_step_s=times[0] - start,
                 update_flops=update_flops(preset.num_params, preset, PROMPTS * GROUP, PROMPT_LEN + NEW),
                 device=jax.devices()[0].device_kind)
  return summarize(step_s=list(np.diff(times[warmup - 1:])),
                   rollout_s=[r["time_rollout_s"] for r in timed],
                   update_s=[r["time_logprob_s"] + r["time_update_s"] for r in timed],
                   reward_mean=float(np.mean([r["reward_mean"] for r in rows])), **extra)


# ------------------------------------------------------------------------------------------------
# TRL (runs in TRL's virtualenv: imports torch, transformers, trl, datasets; not rlvr_jax)
# ------------------------------------------------------------------------------------------------


def _trl_worker(path: str, steps: int, warmup: int) -> dict:
  import datasets
  import torch
  import transformers
  import trl
  transformers.utils.logging.set_verbosity_error()
  datasets.disable_progress_bars()
  torch.set_num_threads(os.cpu_count() or 1)
  tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_file=os.path.join(path, "tokenizer.json"),
                                                   pad_token=PAD, eos_token=EOS)
  model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
  with open(os.path.join(path, "prompts.jsonl")) as f:
    rows = [{"prompt": json.loads(line)["question"]} for line in f]
  dataset = datasets.Dataset.from_list(rows)

  def reward(completions, **kwargs):
    del kwargs
    return [even_fraction(c) for c in completions]

  marks, rollout, lengths = [], [], []

  class Clock(transformers.TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
      marks.append(time.perf_counter())

  class TimedGRPO(trl.GRPOTrainer):
    def _generate_and_score_completions(self, inputs):
      start = time.perf_counter()
      out = super()._generate_and_score_completions(inputs)
      rollout.append(time.perf_counter() - start)
      lengths.append(out["completion_mask"].sum(1).tolist())
      return out

  out_dir = tempfile.mkdtemp(prefix="bench_grpo_trl_")
  args = trl.GRPOConfig(
      output_dir=out_dir, use_cpu=True, bf16=False, fp16=False, seed=0,
      max_steps=warmup + steps, per_device_train_batch_size=PROMPTS * GROUP,
      gradient_accumulation_steps=1, num_generations=GROUP, max_completion_length=NEW,
      generation_kwargs={"min_new_tokens": NEW}, temperature=1.0, top_p=1.0, top_k=0,
      beta=0.0, loss_type="dapo", epsilon=CLIP, num_iterations=1, scale_rewards="group",
      learning_rate=LR, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
      adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8, max_grad_norm=1.0,
      logging_steps=1, report_to="none", save_strategy="no", disable_tqdm=True,
      dataloader_num_workers=0, log_completions=False)
  trainer = TimedGRPO(model=model, reward_funcs=reward, args=args, train_dataset=dataset,
                      processing_class=tokenizer, callbacks=[Clock()])
  trainer.train()
  assert all(n == NEW for step in lengths for n in step), "TRL completions were not all NEW tokens"
  step_s = list(np.diff(marks[warmup - 1:]))
  timed_roll = rollout[warmup:]
  return summarize(step_s=step_s, rollout_s=timed_roll,
                   update_s=[s - r for s, r in zip(step_s, timed_roll)],
                   versions=dict(trl=trl.__version__, torch=torch.__version__,
                                 transformers=transformers.__version__, optim=str(args.optim)))


# ------------------------------------------------------------------------------------------------
# tunix
# ------------------------------------------------------------------------------------------------


def _tunix_worker(path: str, steps: int, warmup: int) -> dict:
  """tunix's ``GrpoLearner`` over an ``RLCluster`` (vanilla rollout, actor only: beta = 0)."""
  import jax
  import optax
  import transformers
  from tunix.models.qwen2 import model as qwen2_model
  from tunix.models.qwen2 import params as qwen2_params
  from tunix.rl import rl_cluster as rl_cluster_lib
  from tunix.rl.grpo import grpo_learner
  from tunix.rl.rollout import base_rollout
  transformers.utils.logging.set_verbosity_error()
  arch = json.load(open(os.path.join(path, "config.json")))
  config = qwen2_model.ModelConfig(
      num_layers=arch["num_hidden_layers"], vocab_size=arch["vocab_size"],
      embed_dim=arch["hidden_size"], hidden_dim=arch["intermediate_size"],
      num_heads=arch["num_attention_heads"], head_dim=arch["hidden_size"] // arch["num_attention_heads"],
      num_kv_heads=arch["num_key_value_heads"], rope_theta=int(arch["rope_parameters"]["rope_theta"]),
      norm_eps=arch["rms_norm_eps"], use_tied_embedding=True)
  mesh = jax.make_mesh((1, 1), ("fsdp", "tp"), axis_types=(jax.sharding.AxisType.Auto,) * 2)
  model = qwen2_params.create_model_from_safe_tensors(path, config, mesh)
  tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_file=os.path.join(path, "tokenizer.json"),
                                                   pad_token=PAD, eos_token=EOS)
  with open(os.path.join(path, "prompts.jsonl")) as f:
    texts = [json.loads(line)["question"] for line in f]
  total = warmup + steps
  batches = [{"prompts": np.array([texts[(i * PROMPTS + j) % len(texts)] for j in range(PROMPTS)])}
             for i in range(total)]
  optimizer = optax.chain(optax.clip_by_global_norm(1.0),
                          optax.adamw(LR, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0))
  rollout = base_rollout.RolloutConfig(
      max_tokens_to_generate=NEW, max_prompt_length=PROMPT_LEN, kv_cache_size=PROMPT_LEN + NEW,
      temperature=1.0, top_p=1.0, top_k=None, eos_tokens=[arch["vocab_size"]])  # never sampled
  cluster_config = rl_cluster_lib.ClusterConfig(
      role_to_mesh={rl_cluster_lib.Role.ACTOR: mesh, rl_cluster_lib.Role.REFERENCE: mesh,
                    rl_cluster_lib.Role.ROLLOUT: mesh},
      rollout_engine="vanilla", offload_to_cpu=False,
      training_config=rl_cluster_lib.RLTrainingConfig(
          actor_optimizer=optimizer, eval_every_n_steps=10**9, max_steps=total),
      rollout_config=rollout)
  cluster = rl_cluster_lib.RLCluster(actor=model, tokenizer=tokenizer, cluster_config=cluster_config)
  algo = grpo_learner.GRPOConfig(num_generations=GROUP, num_iterations=1, beta=0.0, epsilon=CLIP,
                                 loss_agg_mode="token-mean")

  def reward(prompts, completions, **kwargs):
    del prompts, kwargs
    return [even_fraction(c) for c in completions]

  learner = grpo_learner.GRPOLearner(rl_cluster=cluster, algo_config=algo, reward_fns=[reward])
  marks, rollout_s, lengths = [], [], []
  run_step, generate = learner._run_global_step, learner._generate_and_compute_advantage

  def timed_step(*args, **kwargs):
    out = run_step(*args, **kwargs)
    marks.append(time.perf_counter())
    return out

  def timed_generate(*args, **kwargs):
    start = time.perf_counter()
    out = generate(*args, **kwargs)
    rollout_s.append(time.perf_counter() - start)
    lengths.extend(np.asarray(out.completion_mask).sum(1).tolist())
    return out

  learner._run_global_step, learner._generate_and_compute_advantage = timed_step, timed_generate
  learner.train(batches)
  step_s = list(np.diff(marks[warmup - 1:]))
  timed_roll = rollout_s[warmup:]
  return summarize(step_s=step_s, rollout_s=timed_roll,
                   update_s=[s - r for s, r in zip(step_s, timed_roll)],
                   mean_len=float(np.mean(lengths)))


# ------------------------------------------------------------------------------------------------
# Driver
# ------------------------------------------------------------------------------------------------

WORKERS = {"rlvr_jax": _rlvr_worker, "trl": _trl_worker, "tunix": _tunix_worker}


def run_engine(engine: str, python: str, path: str, steps: int, warmup: int) -> dict | str:
  """Runs one engine's worker in a subprocess; its result dict, or why there is none."""
  if not pathlib.Path(python).exists():
    return f"not installed (no interpreter at {python})"
  root = pathlib.Path(__file__).resolve().parent.parent
  flags = ["--worker", engine, "--path", path, "--steps", str(steps), "--warmup", str(warmup)]
  if PRESET:
    flags += ["--preset", PRESET, "--shape", f"{PROMPTS}x{GROUP}x{NEW}x{PROMPT_LEN}"]
  if engine == "rlvr_jax":  # needs the checkout (configs/) on the path
    cmd, cwd = [python, "-m", "experiments.bench_grpo_step"] + flags, root
  else:
    # By file, from elsewhere: the checkout's top-level kernels/ folder would otherwise shadow the
    # `kernels` package that transformers probes for, and break its model imports.
    cmd, cwd = [python, str(pathlib.Path(__file__).resolve())] + flags, path
  start = time.time()
  # BENCH_STREAM=1 lets the worker's stderr (its logs) through, for long real-size runs.
  stream = bool(os.environ.get("BENCH_STREAM"))
  proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None if stream else subprocess.PIPE,
                        text=True, cwd=cwd, timeout=3600)
  if proc.returncode != 0:
    lines = [l for l in (proc.stderr or "").strip().splitlines() if l.strip()] or ["no output"]
    sys.stderr.write(f"--- {engine} failed; stderr tail:\n" + "\n".join(lines[-15:]) + "\n")
    return f"failed: {lines[-1][:200]}"
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  result["wall_s"] = time.time() - start
  return result


def machine() -> str:
  from experiments.bench_sampler import machine as sampler_machine
  return sampler_machine()


def commit() -> str:
  from experiments.bench_sampler import commit as sampler_commit
  return sampler_commit()


def stats(xs: list[float]) -> tuple[float, float, float]:
  return float(np.median(xs)), float(np.min(xs)), float(np.max(xs))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=20, help="timed steps per engine")
  parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation)")
  parser.add_argument("--engines", default="rlvr_jax,trl,tunix")
  parser.add_argument("--trl-python", default=None, help="TRL's interpreter (default: "
                      "$TRL_PYTHON, else the one `python -m experiments.peers setup trl` builds)")
  parser.add_argument("--tunix-python", default=None, help="tunix's interpreter (default: "
                      "$TUNIX_PYTHON, else the one `python -m experiments.peers setup tunix` builds)")
  parser.add_argument("--runs", type=int, default=1, help="repeat the side-by-side comparison; the "
                      "speed-up reported is the median over runs")
  parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
  parser.add_argument("--path", help=argparse.SUPPRESS)
  parser.add_argument("--preset", help="real-size mode: a ModelConfig preset (e.g. qwen2p5_0p5b) with "
                      "random weights, the shape of configs/grpo_qwen2p5_0p5b_gsm8k.py")
  parser.add_argument("--shape", default=None, help="PROMPTSxGROUPxNEWxPROMPT_LEN for --preset "
                      "(default 32x8x512x128)")
  args = parser.parse_args()
  if args.preset:
    shape = dict(PRESET_SHAPE)
    if args.shape:
      shape = dict(zip(("prompts", "group", "new", "prompt_len"), (int(x) for x in args.shape.split("x"))))
    use_preset(args.preset, **shape)
  if args.warmup < 1:
    parser.error("--warmup must be >= 1 (the first step compiles)")
  if args.worker:
    result = WORKERS[args.worker](args.path, args.steps, args.warmup)
    print(json.dumps(result))
    return

  from experiments import peers  # pylint: disable=import-outside-toplevel  (not in the workers)
  pythons = {"rlvr_jax": sys.executable,
             "trl": args.trl_python or peers.default_python("trl"),
             "tunix": args.tunix_python or peers.default_python("tunix")}
  if args.preset and args.engines == parser.get_default("engines"):
    args.engines = "rlvr_jax,trl"  # tunix's learner is not set up for the real-size shape
  engines = [e.strip() for e in args.engines.split(",") if e.strip()]
  unknown = sorted(set(engines) - set(pythons))
  if unknown:
    parser.error(f"unknown engine(s) {unknown}; choose from {sorted(pythons)}")
  for engine in engines:  # a requested peer that cannot run stops the benchmark before any work
    if engine != "rlvr_jax":
      try:
        peers.require(engine, pythons[engine])
      except peers.PeerError as e:
        parser.error(str(e))
  if args.runs < 1:
    parser.error("--runs must be >= 1")
  speedups: dict[str, list[float]] = {e: [] for e in engines if e != "rlvr_jax"}
  for run in range(args.runs):
    if args.runs > 1:
      print(f"\n### run {run + 1} of {args.runs}")
    failed = _compare(args, engines, pythons, speedups)
    if failed:
      sys.exit(f"benchmark failed: {failed}")
  if args.runs > 1 and "rlvr_jax" in engines:
    print("\nrlvr_jax speed-up per run (peer s/step / rlvr_jax s/step): " + "; ".join(
        f"{e}: {', '.join(f'{x:.2f}x' for x in xs)} -> median {np.median(xs):.2f}x"
        for e, xs in speedups.items() if xs))


def _compare(args, engines: list[str], pythons: dict, speedups: dict) -> str | None:
  """One side-by-side run of ``engines``: prints the table, appends the speed-ups; returns the
  failure of an engine that did not finish (None when all did)."""
  loads = [os.getloadavg()[0]]
  results = {}
  with tempfile.TemporaryDirectory() as tmp:
    info = write_task(pathlib.Path(tmp))
    for engine in engines:
      results[engine] = run_engine(engine, pythons[engine], tmp, args.steps, args.warmup)
      loads.append(os.getloadavg()[0])
      print(f"{engine}: done (load avg {loads[-1]:.2f})", file=sys.stderr)

  import jax
  print(f"machine: {machine()}; load avg (1 min) before / after each engine: "
        + " / ".join(f"{x:.2f}" for x in loads))
  trl_info = results.get("trl", {}).get("versions", {}) if isinstance(results.get("trl"), dict) else {}
  print(f"commit {commit()}; jax {jax.__version__}; " + ", ".join(f"{k} {v}" for k, v in trl_info.items())
        + f"; model {info['params'] / 1e6:.2f}M params f32; {PROMPTS} prompts x G={GROUP} x {NEW} new "
        f"tokens; {args.steps} timed steps after {args.warmup} warm-up steps")
  ours = results.get("rlvr_jax")
  print("\n| engine | s/step median | min - max | rollout s (median) | update s (median) "
        "| rlvr_jax speed-up |")
  print("|---|---:|---:|---:|---:|---:|")
  for engine in engines:
    r = results[engine]
    if not isinstance(r, dict):
      print(f"| {engine} | {r} | | | | |")
      continue
    med, lo, hi = stats(r["step_s"])
    speed = ""
    if isinstance(ours, dict) and engine != "rlvr_jax":
      ratio = med / stats(ours["step_s"])[0]
      speedups[engine].append(ratio)
      speed = f"{ratio:.1f}x"
    print(f"| {engine} | {med:.3f} | {lo:.3f} - {hi:.3f} | {np.median(r['rollout_s']):.3f} | "
          f"{np.median(r['update_s']):.3f} | {speed} |")
  if isinstance(ours, dict) and "train_s" in ours:
    peak = next((v for k, v in NOMINAL_BF16_FLOPS.items() if k in ours["device"]), None)
    train = float(np.median(ours["train_s"]))
    rate = ours["update_flops"] / train
    mfu = f"{100 * rate / peak:.0f}% of {peak / 1e12:.0f} TFLOP/s nominal" if peak else "peak unknown"
    print(f"\nrlvr_jax on {ours['device']}: rollout {np.median(ours['rollout_s']):.2f} s, old/reference "
          f"log-probs {np.median(ours['logprob_s']):.2f} s, update {train:.2f} s "
          f"({ours['update_flops'] / 1e12:.0f} TFLOP, {rate / 1e12:.0f} TFLOP/s: MFU {mfu}); first "
          f"step incl. setup and compilation {ours['first_step_s']:.0f} s")
  failed = [f"{e}: {r}" for e, r in results.items() if not isinstance(r, dict)]
  return "; ".join(failed) or None


if __name__ == "__main__":
  main()
