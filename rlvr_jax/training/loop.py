"""The RL loop: rollout -> rewards -> batch -> advantages -> log-probs -> updates -> metrics -> checkpoint.

``run(config, workdir)`` is what ``python -m experiments.run`` calls. One step:

1. take P prompts from the grain iterator (this process's shard), template and tokenize them;
2. sample G completions per prompt (``rlvr_jax.sampling``: prompt prefilled once, KV fanned out);
3. score them with the configured reward terms (``rlvr_jax.rewards.compute_rewards``); with DAPO
   dynamic sampling, drop groups whose rewards are all equal and sample more batches to refill;
4. build padded rows (shape buckets), compute old / reference log-probs with the fused kernel when
   needed (not when strictly on-policy: one epoch, one mini-batch, where ratio = 1 exactly);
5. advantages over [P, G] (``rlvr_jax.algorithms.compute_advantages``);
6. mu epochs x mini-batches of ``step.rl_update`` (one jitted function, gradient accumulation over
   micro-batches with global token counts);
7. metrics (stdout, metrics.jsonl, TensorBoard), checkpoint every ``config.checkpoint.every`` steps
   and on SIGTERM.

Held-out evaluation runs before the first step and after the last (``eval.json``), then the policy
is exported with ``save_hf``.
"""
from __future__ import annotations

import json
import os
import signal
import time
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from flax import nnx

from rlvr_jax import algorithms
from rlvr_jax import data as data_lib
from rlvr_jax import models
from rlvr_jax import rewards as rewards_lib
from rlvr_jax import sampling
from rlvr_jax.eval import evaluator
from rlvr_jax.parallel import constraints
from rlvr_jax.parallel import mesh as mesh_lib
from rlvr_jax.parallel import multihost
from rlvr_jax.parallel import sampler as parallel_sampler
from rlvr_jax.training import batch as batch_lib
from rlvr_jax.training import builders, checkpoint, metrics as metrics_lib, sft
from rlvr_jax.training import step as step_lib


# ------------------------------------------------------------------------------------------------
# Preemption
# ------------------------------------------------------------------------------------------------

class _StopFlag:
  """Set by SIGTERM (TPU preemption, SLURM) so the loop checkpoints and exits between steps."""

  def __init__(self):
    self.set = False

  def install(self):
    try:
      signal.signal(signal.SIGTERM, self._handler)
    except ValueError:  # not on the main thread (e.g. inside a notebook worker): no handler
      pass

  def _handler(self, signum, frame):
    del frame
    logging.warning("received signal %d: will checkpoint and stop after this step", signum)
    self.set = True


# ------------------------------------------------------------------------------------------------
# Rollout
# ------------------------------------------------------------------------------------------------

class Rollout:
  """Samples groups, scores them, and applies dynamic sampling; host-side numpy results.

  Multi-process: each process reads its own prompts; they are gathered so that every process holds
  the same global prompt batch, which ``sampler`` (a ``parallel.MeshSampler``) samples as one SPMD
  program over the mesh. Each process scores only the groups of its own prompts, and the rewards
  are gathered again: every host decision (dynamic sampling, shuffles, metrics) then sees the same
  global data on every process, so processes cannot diverge.
  """

  def __init__(self, cfg: Any, *, tokenizer: Any, prompt_fn, reward_spec, graphdef, sampler=None):
    self.cfg = cfg
    self.sampler = sampler
    self.tok = tokenizer
    self.prompt_fn = prompt_fn
    self.spec = reward_spec
    self.graphdef = graphdef
    self.group = int(cfg.rollout.num_samples)
    self.max_new = int(cfg.rollout.max_new_tokens)
    self.max_prompt = int(cfg.data.max_prompt_len)

  def _prompts(self, it, want: int, counters: dict) -> tuple[list[dict], list[list[int]]]:
    """``want`` examples whose prompts fit; too-long ones are counted and skipped."""
    examples, prompts = [], []
    while len(examples) < want:
      for ex in next(it):
        ids = self.prompt_fn(ex)
        if not ids or len(ids) > self.max_prompt:
          counters["prompts_skipped_too_long"] = counters.get("prompts_skipped_too_long", 0) + 1
          continue
        examples.append(ex)
        prompts.append(ids)
    return examples[:want], prompts[:want]

  def _sample(self, params, prompts, seed: int):
    r = self.cfg.rollout
    options = dict(max_new_tokens=self.max_new, num_samples=self.group,
                   temperature=float(r.temperature), top_p=float(r.top_p), top_k=int(r.top_k),
                   min_p=float(r.min_p), eos_ids=tuple(self.tok.eos_ids), seed=seed,
                   pad_id=self.tok.pad_id)
    if self.sampler is not None:
      return self.sampler.generate(params, prompts, **options)
    return sampling.generate(nnx.merge(self.graphdef, params), prompts, **options)

  def _score_own(self, examples, tokens, lengths, counters) -> list[dict]:
    """Rewards of this process's prompts (global prompt j * S + i is local example j), shared with
    every process: one JSON-able dict per process."""
    g = self.group
    own = (multihost.own_rows(tokens.shape[0] // g)[:, None] * g + np.arange(g)).reshape(-1)
    texts = evaluator.decode_completions(self.tok, tokens[own], lengths[own])
    rep = [ex for ex in examples for _ in range(g)]
    rewards, rmetrics = rewards_lib.compute_rewards(
        self.spec, texts, rep, group_size=g, lengths=lengths[own], max_len=self.max_new)
    correct = self._correct(texts, rep)
    mine = {"rewards": np.asarray(rewards, np.float32).reshape(-1, g).tolist(),
            "correct": np.asarray(correct, bool).reshape(-1, g).tolist(),
            "metrics": rmetrics, "counters": dict(counters)}
    return multihost.allgather_object(mine)

  def collect(self, params, it, rng: np.random.Generator, num_prompts: int) -> dict:
    g = self.group
    dynamic = bool(self.cfg.algo.dynamic_sampling)
    max_batches = int(self.cfg.algo.max_gen_batches) if dynamic else 1
    counters: dict[str, float] = {}
    global_counters: dict[str, float] = {}
    kept: list[dict] = []      # groups with reward variance (or all groups without dynamic sampling)
    dropped: list[dict] = []   # zero-variance groups (only kept as filler, masked out)
    sampled_groups = zero_groups = 0
    reward_metrics: list[dict] = []
    gen_tokens = 0
    batches = 0
    num_local = num_prompts // jax.process_count()
    while batches < max_batches and len(kept) < num_prompts:
      batches += 1
      examples, local_prompts = self._prompts(it, num_local, counters)
      prompts = multihost.gather_rows(local_prompts)  # the global batch, the same on every process
      out = self._sample(params, prompts, seed=int(rng.integers(2**31 - 1)))
      tokens, lengths = np.asarray(out.tokens), np.asarray(out.lengths)
      finish = np.asarray(out.finish_reason)
      gen_tokens += int(lengths.sum())
      scored = self._score_own(examples, tokens, lengths, counters)
      reward_metrics.append(_mean_dicts([s["metrics"] for s in scored]))
      rewards = np.asarray(multihost.interleave([s["rewards"] for s in scored]), np.float32)
      correct = np.asarray(multihost.interleave([s["correct"] for s in scored]), bool)
      global_counters = _sum_dicts([s["counters"] for s in scored])
      for p in range(len(prompts)):
        sl = slice(p * g, (p + 1) * g)
        own = p % jax.process_count() == jax.process_index()
        group = {"example": examples[p // jax.process_count()] if own else None,
                 "prompt": prompts[p], "tokens": tokens[sl], "lengths": lengths[sl],
                 "rewards": rewards[p], "correct": correct[p], "finish": finish[sl]}
        sampled_groups += 1
        degenerate = float(np.ptp(group["rewards"])) == 0.0
        zero_groups += int(degenerate)
        (dropped if dynamic and degenerate else kept).append(group)
    valid = kept[:num_prompts]
    filler = dropped[:num_prompts - len(valid)]
    for grp in valid:
      grp["valid"] = True
    for grp in filler:
      grp["valid"] = False
    groups = valid + filler
    if len(groups) < num_prompts:  # unreachable unless the iterator yields nothing
      raise RuntimeError(f"rollout collected {len(groups)} groups for {num_prompts} prompts")
    stats = {"gen_batches": batches, "zero_adv_group_frac": zero_groups / max(sampled_groups, 1),
             "valid_group_frac": len(valid) / num_prompts, "gen_tokens": gen_tokens}
    stats.update(global_counters)
    stats.update(_mean_dicts(reward_metrics))
    return {"groups": groups, "stats": stats}

  def _correct(self, texts, examples) -> np.ndarray:
    r = self.cfg.reward
    if not r.correctness:
      return np.zeros(len(texts), bool)
    return evaluator.score(texts, examples, reward=r.correctness,
                           reward_options=dict(r.correctness_options or {}),
                           threshold=float(r.threshold))


def _sum_dicts(dicts: Sequence[Mapping[str, float]]) -> dict[str, float]:
  return {k: float(sum(d.get(k, 0) for d in dicts)) for k in sorted({k for d in dicts for k in d})}


def _mean_dicts(dicts: Sequence[Mapping[str, float]]) -> dict[str, float]:
  keys = {k for d in dicts for k in d}
  out = {}
  for k in keys:
    vals = [float(d[k]) for d in dicts if k in d]
    # failure counters add up over generation batches; means are averaged
    out[k] = float(np.sum(vals)) if k.startswith(("reward_fail", "reward_timeout")) else float(np.mean(vals))
  return out


def rollout_rows(groups: Sequence[dict], *, pad_id: int, group_size: int,
                 prompt_len: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
  """Training rows for the collected groups; rows of filler (invalid) groups get mask 0."""
  tokens = np.concatenate([grp["tokens"] for grp in groups])
  lengths = np.concatenate([grp["lengths"] for grp in groups])
  resp_len = batch_lib.bucket(int(lengths.max(initial=1)), multiple=8, maximum=tokens.shape[1])
  rows = batch_lib.rollout_batch([grp["prompt"] for grp in groups], group_size, tokens, lengths,
                                 pad_id=pad_id, prompt_len=prompt_len, response_len=resp_len)
  valid = np.repeat(np.array([grp["valid"] for grp in groups]), group_size)
  rows["mask"] = rows["mask"] * valid[:, None].astype(np.float32)
  return rows, valid


# ------------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------------

def _sft_settings(cfg: Any) -> dict:
  """The config entries a cached warm start depends on (checked when a workdir reuses it)."""
  def plain(x):
    return x.to_dict() if hasattr(x, "to_dict") else x
  return {"sft": plain(cfg.sft), "model": plain(cfg.model), "tokenizer": plain(cfg.tokenizer),
          "data.train": plain(cfg.data.train), "data.template": cfg.data.template,
          "data.template_options": plain(cfg.data.template_options), "seed": cfg.seed}


def _template_fn(cfg: Any, tokenizer: Any):
  options = dict(cfg.data.template_options or {})
  if cfg.data.template == "chat":
    options["tokenizer"] = tokenizer
  template = data_lib.make_template(cfg.data.template, **options)
  bos = [tokenizer.bos_id] if cfg.tokenizer.add_bos and tokenizer.bos_id is not None else []

  def prompt_fn(example: Mapping) -> list[int]:
    return bos + tokenizer.encode(template(example["question"]))

  return template, prompt_fn


def _corpus(source, template, cfg) -> list[str]:
  # Text a trained tokenizer must cover: prompts and answers (and SFT targets).
  n = min(len(source), 20000)
  target = sft.make_teacher(cfg.sft) if cfg.sft.steps else lambda ex: str(ex["answer"])
  texts = []
  for i in range(n):
    ex = source[i]
    texts.append(template(ex["question"]))
    texts.append(target(ex))  # the warm start's targets, as its teacher writes them
  return texts


def _needs_ref(cfg) -> bool:
  return float(cfg.algo.kl_coef) > 0.0


def _put_fn(mesh, rules):
  # Batches are global host arrays (the same on every process); each process copies its shards.
  def put(batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    return {k: multihost.global_array(v, mesh_lib.batch_sharding(mesh, v.ndim, rules, v.shape[0]))
            for k, v in batch.items()}
  return put


def check_required(cfg: Any) -> None:
  """Paths a config leaves to the user (placeholders) fail here, naming the flag to set."""
  if cfg.model.get("init") == "hf" and not cfg.model.get("path"):
    raise ValueError("config.model.init='hf' needs a local Hugging Face checkpoint directory: pass "
                     "--config.model.path=/path/to/checkpoint")
  sections = [("train", cfg.data.train, "path")]
  if int(cfg.eval.size) > 0 and cfg.data.get("eval"):
    sections.append(("eval", cfg.data.eval, "eval_path"))
  for name, section, alias in sections:
    if section.get("source") in ("jsonl", "parquet") and not section.get("path"):
      # Paper configs expose the file as a short alias (config.data.path / data.eval_path).
      flag = f"data.{alias}" if alias in cfg.data else f"data.{name}.path"
      raise ValueError(f"config.data.{name}.path is not set: pass --config.{flag}=/path/to/local/"
                       f"{section.get('source')} file")


def build_inputs(cfg: Any, workdir: str):
  """The run's training source, held-out examples, tokenizer, template and ``prompt_fn``.

  Shared by ``run`` and ``experiments/eval.py`` so evaluation sees exactly the training prompts
  and the same held-out split. Returns ``(train_source, eval_examples, tokenizer, template,
  prompt_fn)``; ``eval_examples`` is empty when ``config.eval.size`` is 0.
  """
  check_required(cfg)
  train_source = data_lib.make_source(cfg.data.train)
  eval_examples = []
  if int(cfg.eval.size) > 0:
    eval_cfg = cfg.data.eval.to_dict() if cfg.data.get("eval") else None
    eval_source = data_lib.make_eval_source(cfg.data.train, eval_config=eval_cfg,
                                            size=int(cfg.eval.size), train_source=train_source)
    eval_examples = [eval_source[i] for i in range(len(eval_source))]
  tokenizer = builders.build_tokenizer(
      cfg.tokenizer, workdir=workdir, model_path=cfg.model.get("path"),
      corpus=lambda: _corpus(train_source, data_lib.make_template(
          cfg.data.template, **dict(cfg.data.template_options or {})), cfg))
  template, prompt_fn = _template_fn(cfg, tokenizer)
  return train_source, eval_examples, tokenizer, template, prompt_fn


def run(config: Any, workdir: str, *, devices: Sequence[Any] | None = None) -> dict:
  """Trains according to ``config``; returns the final eval summary (also in ``eval.json``).

  ``devices``: the devices of the mesh (default: all, which a multi-process run needs); tests pass
  a subset to compare meshes within one process.
  """
  cfg = config
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  primary = multihost.is_primary()
  say = print if primary else (lambda *a, **k: None)
  t_start = time.time()
  if primary:
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(cfg.to_json_best_effort(indent=2))

  # --- data, tokenizer, model -------------------------------------------------------------------
  if not primary:  # process 0 trains and caches the tokenizer first; the others then load it
    multihost.barrier("rlvr_jax:tokenizer")
  train_source, eval_examples, tokenizer, template, prompt_fn = build_inputs(cfg, workdir)
  if primary:
    multihost.barrier("rlvr_jax:tokenizer")
  rows_skipped = int(getattr(train_source, "num_skipped", 0))
  if rows_skipped:
    say(f"data: {len(train_source)} examples from {train_source.name}; {rows_skipped} bad rows "
        "skipped (see the warning above)")
  model, model_cfg = builders.build_model(cfg.model, vocab_size=tokenizer.vocab_size, seed=cfg.seed)
  graphdef, params = nnx.split(model)
  del model
  mesh = mesh_lib.make_mesh(dict(cfg.mesh), devices)
  rules = cfg.get("sharding_rules")
  shardings = mesh_lib.param_shardings(params, models.logical_axes(nnx.merge(graphdef, params)),
                                       mesh, rules)
  params = multihost.put_tree(params, shardings)
  put_batch = _put_fn(mesh, rules)
  # Rollouts and evaluation sample under the mesh with explicit shardings (data-parallel prompts).
  sampler = parallel_sampler.MeshSampler(mesh, rules, graphdef, shardings, model_cfg)
  say(f"model {model_cfg.family}: {builders.count_params(params) / 1e6:.2f}M params, vocab "
      f"{model_cfg.vocab_size}; tokenizer vocab {tokenizer.vocab_size}; mesh {dict(mesh.shape)}")
  impl = cfg.train.get("logprob_impl")

  # --- warm start -------------------------------------------------------------------------------
  if int(cfg.sft.steps) > 0:
    with constraints.use_mesh(mesh, rules):
      params, sft_info = sft.warm_start(
          params, graphdef=graphdef, cfg=cfg.sft, source=train_source, tokenizer=tokenizer,
          prompt_fn=prompt_fn, workdir=workdir, seed=cfg.seed, logprob_impl=impl,
          put_batch=put_batch, param_shardings=shardings, replicated=mesh_lib.replicated(mesh),
          log=say, settings=_sft_settings(cfg))
    if not sft_info.get("cached"):
      say(f"sft: {sft_info['steps']} steps in {sft_info['time_s']:.1f}s, final loss "
          f"{sft_info['final_loss']:.4f}")

  ref_params = jax.tree.map(jnp.copy, params) if _needs_ref(cfg) else None

  # --- optimizer, iterator, checkpoint ------------------------------------------------------------
  algo = cfg.algo
  epochs, num_mb = int(algo.epochs), int(algo.num_minibatches)
  total_steps = int(cfg.total_steps)
  tx = builders.build_optimizer(cfg.optim, total_steps * epochs * num_mb)
  opt_shardings = step_lib.state_shardings(params, shardings, tx, mesh_lib.replicated(mesh))
  opt_state = jax.jit(tx.init, out_shardings=opt_shardings)(params)
  rl_update = constraints.under_mesh(step_lib.jit_update(
      step_lib.rl_update, param_shardings=shardings, opt_shardings=opt_shardings), mesh, rules)
  batch_logprobs = constraints.under_mesh(step_lib.batch_logprobs, mesh, rules)
  num_prompts = int(cfg.rollout.prompts_per_step)
  if num_prompts % jax.process_count():
    raise ValueError(f"config.rollout.prompts_per_step={num_prompts} must be a multiple of the "
                     f"number of processes ({jax.process_count()}): each loads an equal share")
  p_local = num_prompts // jax.process_count()
  it = data_lib.make_prompt_iterator(train_source, batch_size=p_local, seed=cfg.seed,
                                     shard_index=jax.process_index(),
                                     shard_count=jax.process_count())
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"),
                                 max_to_keep=int(cfg.checkpoint.max_to_keep))
  rng = jax.random.key(cfg.seed)
  start = 0
  if ckpt.latest_step() is not None:
    restored = ckpt.restore(None, params=params, opt_state=opt_state)
    params, opt_state, rng, start = (restored["params"], restored["opt_state"], restored["rng"],
                                     restored["step"])
    it.set_state(restored["data_state"])
    say(f"resumed from {ckpt.directory} at step {start}")

  def save(step_done: int):
    ckpt.save(step_done, params=params, opt_state=opt_state, data_state=it.get_state(), rng=rng,
              config_json=cfg.to_json_best_effort())

  # --- evaluation before RL ---------------------------------------------------------------------
  eval_kwargs = dict(eval_options(cfg, tokenizer, prompt_fn), generate_fn=sampler.generate)
  before_path = os.path.join(workdir, "eval_before.json")
  before = None
  if eval_examples and cfg.eval.before:
    if os.path.exists(before_path):
      with open(before_path) as f:
        before = json.load(f)
    else:
      before = evaluator.evaluate(nnx.merge(graphdef, params), tokenizer, eval_examples,
                                  seed=cfg.seed, **eval_kwargs)
      if primary:
        with open(before_path, "w") as f:
          json.dump(before, f, indent=2)
    say("before RL: " + _eval_line(before))

  # --- RL steps ---------------------------------------------------------------------------------
  rollout = Rollout(cfg, tokenizer=tokenizer, prompt_fn=prompt_fn,
                    reward_spec=rewards_lib.parse_spec(cfg.reward.terms), graphdef=graphdef,
                    sampler=sampler)
  on_policy = epochs == 1 and num_mb == 1 and not algo.get("force_old_logprobs", False)
  spec = builders.loss_spec(algo, temperature=float(cfg.rollout.temperature), logprob_impl=impl,
                            on_policy=on_policy)
  writer = metrics_lib.MetricsWriter(workdir, total_steps=total_steps, enabled=primary,
                                     progress_bar=bool(cfg.log.progress_bar))
  stop = _StopFlag()
  stop.install()
  host_rng = np.random.default_rng([cfg.seed, start])
  g = int(cfg.rollout.num_samples)
  step = start
  nonfinite_steps = 0
  for step in range(start, total_steps):
    t0 = time.time()
    host_rng = np.random.default_rng([cfg.seed, step])
    collected = rollout.collect(params, it, host_rng, num_prompts)
    groups = collected["groups"]
    t_roll = time.time() - t0

    t1 = time.time()
    prompt_len = batch_lib.bucket(max(len(grp["prompt"]) for grp in groups),
                                  maximum=max(int(cfg.data.max_prompt_len), 16))
    rows, valid = rollout_rows(groups, pad_id=tokenizer.pad_id, group_size=g, prompt_len=prompt_len)
    n_rows = rows["tokens"].shape[0]
    micro = int(algo.micro_batch_size) or n_rows // num_mb
    rewards = np.stack([grp["rewards"] for grp in groups])  # [P, G]
    device_rows = put_batch(rows)
    need_old = not on_policy or bool(algo.kl_in_reward and _needs_ref(cfg))
    logp_kwargs = dict(graphdef=graphdef, temperature=spec.temperature, impl=impl,
                       num_micro=max(1, n_rows // micro))
    old_logp = ref_logp = None
    # Log-probs come back to the host (the full global batch on every process), like the rows.
    if need_old:
      old_logp = multihost.to_host(batch_logprobs(params, device_rows, **logp_kwargs)[0])
    if ref_params is not None:
      ref_logp = multihost.to_host(batch_logprobs(ref_params, device_rows, **logp_kwargs)[0])
    scores = jnp.asarray(rewards.reshape(-1))
    reward_kl = None
    if ref_params is not None and algo.kl_in_reward:
      scores = algorithms.sequence_reward_minus_kl(
          scores, old_logp, ref_logp, rows["mask"], kl_coef=float(algo.kl_coef),
          kl_estimator=algo.kl_estimator)
      # The KL folded into the reward is not seen by the loss: log its token mean as "kl".
      kl_tok = algorithms.kl_estimate(algo.kl_estimator, jnp.asarray(old_logp), jnp.asarray(ref_logp))
      reward_kl = float(jnp.sum(kl_tok * rows["mask"]) / max(float(rows["mask"].sum()), 1.0))
    adv = algorithms.compute_advantages(algo.advantage, scores.reshape(-1, g),
                                        **dict(algo.advantage_options or {}))
    adv = np.asarray(adv).reshape(-1) * valid
    rows["advantages"] = adv.astype(np.float32)
    if old_logp is not None and not on_policy:
      rows["old_logp"] = np.asarray(old_logp)
    if ref_logp is not None and spec.kl_coef > 0:
      rows["ref_logp"] = np.asarray(ref_logp)
    t_logp = time.time() - t1

    t2 = time.time()
    update_metrics = []
    mb_rows = n_rows // num_mb
    for epoch in range(epochs):
      order = host_rng.permutation(n_rows) if algo.shuffle else np.arange(n_rows)
      for m in range(num_mb):
        idx = np.sort(order[m * mb_rows:(m + 1) * mb_rows]) if num_mb > 1 else order
        mb = put_batch({k: v[idx] for k, v in rows.items()})
        params, opt_state, um = rl_update(
            params, opt_state, mb, graphdef=graphdef, tx=tx, spec=spec,
            num_micro=max(1, mb_rows // min(micro, mb_rows)))
        update_metrics.append(um)
    update_metrics = jax.device_get(update_metrics)
    t_update = time.time() - t2
    rng = jax.random.fold_in(rng, step)

    record = _step_metrics(groups, collected["stats"], update_metrics, rows, t_roll, t_logp,
                           t_update, time.time() - t0)
    if reward_kl is not None:
      record["kl"] = reward_kl
    record["lr"] = float(builders.learning_rate_schedule(cfg.optim, total_steps * epochs * num_mb)(
        (step + 1) * epochs * num_mb))
    done = step + 1
    if int(cfg.eval.every) and done % int(cfg.eval.every) == 0 and done < total_steps and eval_examples:
      quick = evaluator.evaluate(nnx.merge(graphdef, params), tokenizer,
                                 eval_examples[:int(cfg.eval.every_size)], seed=cfg.seed,
                                 **dict(eval_kwargs, num_samples=0))
      record["eval/greedy_accuracy"] = quick["greedy_accuracy"]
    # A non-finite loss or gradient skips that update inside rl_update (params and optimizer state
    # kept); count such steps and stop once there are too many, leaving the last good checkpoint.
    skipped = int(sum(float(m["nonfinite"]) for m in update_metrics))
    nonfinite_steps += int(skipped > 0)
    record["nonfinite_updates"] = skipped
    record["nonfinite_steps_total"] = nonfinite_steps
    writer.write(done, record)
    if skipped:
      logging.warning("step %d: %d update(s) with a non-finite loss or gradient were skipped "
                      "(%d such steps so far)", done, skipped, nonfinite_steps)
    if nonfinite_steps > int(cfg.train.max_nonfinite_steps):
      ckpt.wait()
      writer.close()
      raise RuntimeError(
          f"step {done}: {nonfinite_steps} steps had a non-finite loss or gradient, more than "
          f"config.train.max_nonfinite_steps={cfg.train.max_nonfinite_steps}; stopping. The last "
          f"checkpoint (step {ckpt.latest_step()}) in {ckpt.directory} is intact.")
    stopping = multihost.any_process(stop.set)  # every process stops at the same step
    if ((int(cfg.checkpoint.every) and done % int(cfg.checkpoint.every) == 0 and not skipped)
        or stopping):
      save(done)
    if stopping:
      ckpt.wait()
      writer.close()
      say(f"stopped by signal after step {done}; checkpoint saved, rerun with the same --workdir "
          "to resume")
      raise SystemExit(0)
  if total_steps > start and ckpt.latest_step() != total_steps:
    save(total_steps)
  ckpt.wait()
  writer.close()

  # --- evaluation after RL, plot, export ---------------------------------------------------------
  summary: dict[str, Any] = {"steps": total_steps, "train_time_s": time.time() - t_start,
                             "data_rows_skipped": rows_skipped}
  if eval_examples and cfg.eval.after:
    after = evaluator.evaluate(nnx.merge(graphdef, params), tokenizer, eval_examples,
                               seed=cfg.seed, **eval_kwargs)
    summary.update({"before": before, "after": after})
    if before is not None and "greedy_accuracy" in after:
      summary["greedy_gain_points"] = 100 * (after["greedy_accuracy"] - before["greedy_accuracy"])
    say("after RL:  " + _eval_line(after))
    if before is not None:
      say(f"held-out greedy accuracy: {100 * before['greedy_accuracy']:.1f}% -> "
          f"{100 * after['greedy_accuracy']:.1f}% ({summary['greedy_gain_points']:+.1f} points, "
          f"n={after.get('num_problems', len(eval_examples))}, stderr "
          f"{100 * after['greedy_accuracy_stderr']:.1f})")
  if primary:
    writer.write_summary("eval", summary, workdir)
    jsonl = os.path.join(workdir, "metrics.jsonl")
    if os.path.exists(jsonl) and os.path.getsize(jsonl):
      metrics_lib.plot_metrics(jsonl, os.path.join(workdir, "metrics.png"))
  # Every process takes part in gathering sharded params; process 0 writes them.
  export_params = multihost.to_host(params) if cfg.export_hf and jax.process_count() > 1 else params
  if primary:
    if cfg.export_hf:
      export = os.path.join(workdir, "export")
      models.save_hf(nnx.merge(graphdef, export_params), model_cfg, export)
      tokenizer.save(export)
      say(f"exported policy to {export}")
  return summary


def eval_options(cfg: Any, tokenizer: Any, prompt_fn) -> dict:
  """Keyword arguments of ``evaluator.evaluate`` from ``config.eval`` / ``config.reward``."""
  e = cfg.eval
  return dict(prompt_fn=prompt_fn, max_new_tokens=int(cfg.rollout.max_new_tokens),
              num_samples=int(e.num_samples), temperature=float(e.temperature),
              top_p=float(e.top_p), ks=list(e.ks) if e.ks else None,
              reward=cfg.reward.correctness or "exact_match",
              reward_options=dict(cfg.reward.correctness_options or {}),
              threshold=float(cfg.reward.threshold), answer_extractor=cfg.reward.answer_extractor,
              batch_size=int(e.batch_size))


def _eval_line(result: Mapping[str, Any]) -> str:
  keys = [k for k in ("greedy_accuracy", "mean_accuracy") if k in result]
  keys += [k for k in result if k.startswith(("pass@", "maj@")) and not k.endswith("_expected")]
  return ", ".join(f"{k} {100 * result[k]:.1f}%" for k in keys) + f" (n={result.get('num_problems')})"


def _step_metrics(groups, stats, update_metrics, rows, t_roll, t_logp, t_update, t_step) -> dict:
  rewards = np.concatenate([grp["rewards"] for grp in groups])
  correct = np.concatenate([grp["correct"] for grp in groups])
  lengths = np.concatenate([grp["lengths"] for grp in groups])
  finish = np.concatenate([grp["finish"] for grp in groups])
  rec: dict[str, Any] = {
      "reward_mean": float(rewards.mean()), "reward_std": float(rewards.std()),
      "accuracy": float(correct.mean()), "response_len": float(lengths.mean()),
      "response_len_correct": float(lengths[correct].mean()) if correct.any() else None,
      "response_len_incorrect": float(lengths[~correct].mean()) if (~correct).any() else None,
      "truncated_frac": float(np.mean(finish == sampling.FINISH_LENGTH)),
      "time_rollout_s": t_roll, "time_logprob_s": t_logp, "time_update_s": t_update,
      "time_step_s": t_step, "tokens_per_s": stats.get("gen_tokens", 0) / max(t_roll, 1e-9),
      "train_tokens": float(rows["mask"].sum()),
  }
  rec.update({k: v for k, v in stats.items() if k != "gen_tokens"})
  if update_metrics:
    keys = update_metrics[0].keys()
    for k in keys:
      vals = np.array([float(m[k]) for m in update_metrics])
      rec[k] = float(vals.max() if k.endswith("_max") else vals.min() if k.endswith("_min")
                     else vals.mean())
    # "kl" is the KL to the reference policy when there is one; without a reference it falls back
    # to approx_kl (k3 of pi_old vs pi_theta), so the column is always present.
    rec.setdefault("kl", rec.get("approx_kl"))
  return rec
