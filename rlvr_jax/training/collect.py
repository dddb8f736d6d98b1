"""Two phases of an RL step: ``collect`` (examples -> episode -> batch builders -> one rollout
record) and ``prepare_batch`` (record -> padded training rows with log-probs and advantages).

Both read the run's static pieces from ``env`` (`rlvr_jax.training.loop.Env`) and the mutable ones
from ``state`` (`rlvr_jax.training.loop.RunState`); neither updates parameters.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from rlvr_jax import algorithms
from rlvr_jax.episodes import context as context_lib
from rlvr_jax.episodes import selection
from rlvr_jax.episodes.record import RolloutRecord, group_index
from rlvr_jax.parallel import multihost
from rlvr_jax.training import batch as batch_lib


# ------------------------------------------------------------------------------------------------
# Collect
# ------------------------------------------------------------------------------------------------

def next_examples(env: Any, counters: dict) -> tuple[list[dict], list[list[int]]]:
  """This step's global examples and prompt ids (the same on every process).

  Each process takes ``P / S`` examples whose prompts fit ``config.data.max_prompt_len`` from its
  own data shard (too-long ones are counted and skipped); the rows are then gathered in global
  order (row j of process i is global row j * S + i).
  """
  want = env.num_prompts // jax.process_count()
  examples, prompts = [], []
  unusable = 0  # consecutive draws without a usable prompt
  lengths = []  # of those draws' prompts
  while len(examples) < want:
    for ex in next(env.it):
      ids = env.prompt_fn(ex)
      if not ids or len(ids) > env.max_prompt:
        counters["prompts_skipped_too_long"] = counters.get("prompts_skipped_too_long", 0) + 1
        _warn_too_long(ex, len(ids), env.max_prompt)
        unusable += 1
        lengths.append(len(ids))
        continue
      unusable, lengths = 0, []
      examples.append(ex)
      prompts.append(ids)
    if unusable >= max(100 * want, 1000):
      raise ValueError(f"{unusable} training prompts in a row are longer than "
                       f"config.data.max_prompt_len={env.max_prompt} tokens after the template "
                       f"(their lengths: {min(lengths)} to {max(lengths)} tokens); raise "
                       "config.data.max_prompt_len or shorten the template / the data")
  examples, prompts = examples[:want], prompts[:want]
  return multihost.gather_rows(examples), multihost.gather_rows(prompts)


_TOO_LONG_WARNINGS = 5  # prompts named per process; the rest are only counted
_too_long_named = [0]


def _warn_too_long(example: dict, length: int, limit: int) -> None:
  if _too_long_named[0] < _TOO_LONG_WARNINGS:
    _too_long_named[0] += 1
    logging.warning("skipped a training prompt of %d tokens (> config.data.max_prompt_len=%d): %s%s",
                    length, limit, example.get("id") or repr(str(example.get("question"))[:60]),
                    " (further ones are counted in prompts_skipped_too_long)"
                    if _too_long_named[0] == _TOO_LONG_WARNINGS else "")


def audit_test_time(env: Any, ctx: context_lib.EpisodeContext, record: RolloutRecord) -> dict:
  """Test-time RL's collapse detectors, computed outside the reward path.

  In ``config.data.test_time`` the rows the episode and the rewards see carry no label. After the
  rewards are fixed, this looks the rows up (by ``example_key``) in the labelled evaluation
  examples the trainer holds for evaluation, and returns ``audit/accuracy`` (samples correct),
  ``audit/reward_accuracy`` (reward > ``config.reward.label_free_threshold`` exactly when correct)
  and ``audit/label_accuracy`` (groups whose rewarded samples are correct: for a vote reward, the
  pseudo-label equals the gold). Nothing here feeds back into rewards or training. Empty when no
  correctness check is configured or a row has no labelled counterpart.
  """
  r = env.cfg.reward
  if not r.correctness or record.examples is None or env.audit_gold is None:
    return {}
  gold = [env.audit_gold.get(selection.example_key(ex)) for ex in record.examples]
  if any(g is None for g in gold):
    return {}
  from rlvr_jax.eval import evaluator  # pylint: disable=import-outside-toplevel
  texts = ctx.decode(record.completions, record.lengths)
  correct = np.asarray(evaluator.score(texts, gold, reward=r.correctness,
                                       reward_options=dict(r.correctness_options or {}),
                                       threshold=float(r.threshold)), bool)
  rewarded = np.asarray(record.rewards) > float(r.get("label_free_threshold", 0.5))
  dense, _ = group_index(record.group_ids)
  groups = range(int(dense.max(initial=-1)) + 1)
  return {"audit/accuracy": float(correct.mean()),
          "audit/reward_accuracy": float(np.mean(rewarded == correct)),
          "audit/label_accuracy": float(np.mean([np.any((rewarded & correct)[dense == g])
                                                 for g in groups]))}


def make_context(env: Any, state: Any, rng: np.random.Generator) -> context_lib.EpisodeContext:
  return context_lib.EpisodeContext(
      config=env.cfg, tokenizer=env.tokenizer, prompt_fn=env.prompt_fn, params=state.params,
      ref_params=state.ref_params, generate=env.sampler.generate,
      rows_fn=lambda record: record_rows(env, record)[0],
      logprob_fn=lambda params, rows: env.logprobs(params, rows),
      token_stats_fn=lambda params, rows: env.token_stats(params, rows),
      rng=rng, state=state.algo_state.setdefault("episode", {}), step=state.step)


def collect(env: Any, state: Any, rng: np.random.Generator) -> tuple[RolloutRecord, dict]:
  """Runs the episode on generation batches until the batch builders leave as many valid groups
  as one generation batch has (at most ``config.batch.max_gen_batches`` batches when a builder
  can invalidate groups, else one); missing groups are filled with invalid ones (weight 0)."""
  counters: dict[str, float] = {}
  bctx = selection.BuilderContext(rng=rng, state=state.algo_state.setdefault("builders", {}),
                                  step=state.step,
                                  prompt_stats=state.algo_state.get("prompt_stats", {}))
  actx = selection.BuilderContext(rng=rng, state=state.algo_state.setdefault("allocator", {}),
                                  step=state.step, prompt_stats=bctx.prompt_stats)
  ctx = make_context(env, state, rng)
  builder_ctx = {name: selection.BuilderContext(
      rng=rng, state=bctx.state.setdefault(name, {}), step=state.step,
      prompt_stats=bctx.prompt_stats) for name, _, _ in env.builders}
  kept: list[RolloutRecord] = []
  dropped: list[RolloutRecord] = []
  audits: list[dict] = []
  target = None
  sampled = zero = batches = 0
  while target is None or (batches < env.max_gen_batches and len(kept) < target):
    batches += 1
    examples, prompts = next_examples(env, counters)
    counts = env.allocator(examples, default=int(env.cfg.rollout.num_samples), ctx=actx,
                           **env.allocator_options)
    counts = None if env.allocator_is_uniform else counts
    record = env.episode(ctx, examples, prompts, counts, **env.episode_options)
    if not isinstance(record, RolloutRecord):
      raise TypeError(f"episode {env.cfg.episode.name!r} returned {type(record).__name__}, not a "
                      "RolloutRecord")
    if env.audit_gold is not None:
      audits.append(audit_test_time(env, ctx, record))
    spread_free = selection.group_spread(record, "reward")  # [N] per row: its group's flag
    first_rows = np.unique(record.group_ids, return_index=True)[1]
    sampled += len(first_rows)
    zero += int(spread_free[first_rows].sum())
    for name, fn, options in env.builders:
      if fn.stage == "generation":
        record = fn(record, ctx=builder_ctx[name], **options)
    groups = record.split_groups()
    if target is None:
      target = len(groups)
    for grp in groups:  # a group with no valid row left is only filler
      (kept if grp.valid.any() else dropped).append(grp)
  filler = [g.replace(valid=np.zeros(g.num_rows, bool)) for g in dropped[:target - len(kept[:target])]]
  chosen = kept[:target] + filler
  if len(chosen) < target:  # unreachable unless the iterator yields nothing
    raise RuntimeError(f"rollout collected {len(chosen)} groups for {target}")
  record = RolloutRecord.concat(chosen)
  for name, fn, options in env.builders:
    if fn.stage == "final":
      record = fn(record, ctx=builder_ctx[name], **options)
  if env.track_prompt_stats:
    selection.update_prompt_stats(state.algo_state.setdefault("prompt_stats", {}), record)
  stats = {"gen_batches": batches, "zero_adv_group_frac": zero / max(sampled, 1),
           "valid_group_frac": len(kept[:target]) / target, "gen_tokens": ctx.gen_tokens}
  stats.update(context_lib.sum_metrics(multihost.allgather_object(counters)))
  stats.update(context_lib.mean_metrics(ctx.reward_metrics))
  stats.update(context_lib.mean_metrics(audits))
  stats.update({f"episode/{k}": v for k, v in ctx.stats.items()})
  for name, bc in builder_ctx.items():
    stats.update({f"batch/{name}/{k}": float(v) for k, v in bc.stats.items()})
  return record, stats


# ------------------------------------------------------------------------------------------------
# Prepare the batch
# ------------------------------------------------------------------------------------------------

def record_rows(env: Any, record: RolloutRecord) -> tuple[dict[str, np.ndarray], int]:
  """Model-input rows of a record (prompts left padded, completions right padded, both to shape
  buckets) with ``mask`` = loss mask x valid; ragged records are padded with masked copies of
  row 0 to a bucketed row count. Returns (rows, number of real rows)."""
  n = record.num_rows
  longest = max(len(p) for p in record.prompts)
  prompt_len = batch_lib.bucket(longest, maximum=max(env.max_prompt, 16, longest))
  resp_len = batch_lib.bucket(int(record.lengths.max(initial=1)), multiple=8,
                              maximum=record.width)
  rows = batch_lib.record_batch(record.prompts, record.completions, record.lengths,
                                pad_id=env.tokenizer.pad_id, prompt_len=prompt_len,
                                response_len=resp_len)
  rows["mask"] = (record.loss_mask[:, :resp_len] * rows["mask"]) * record.valid[:, None].astype(
      np.float32)
  total = env.row_bucket(n, rectangular=record.rectangular() is not None)
  if total > n:
    extra = np.zeros(total - n, np.int64)
    rows = {k: np.concatenate([v, v[extra]]) for k, v in rows.items()}
    rows["mask"][n:] = 0.0
  return rows, n


def prepare_batch(env: Any, state: Any, record: RolloutRecord) -> tuple[dict[str, np.ndarray], dict]:
  """Training rows of ``record``: old / reference log-probs where needed, the KL folded into the
  reward (``config.algo.kl_in_reward``), advantages from the configured estimator (with the
  record's group ids, side inputs and the estimator's persistent state). Returns (rows, info)."""
  cfg, algo, spec = env.cfg, env.cfg.algo, env.spec
  rows, n = record_rows(env, record)
  valid = record.valid
  device_rows = env.put_batch(rows)
  need_old = not spec.on_policy or bool(algo.kl_in_reward and env.needs_ref)
  old_logp = ref_logp = None
  # Log-probs come back to the host (the full global batch on every process), like the rows.
  if need_old:
    old_logp = multihost.to_host(env.batch_logprobs(state.params, device_rows)[0])
  if state.ref_params is not None:
    ref_logp = multihost.to_host(env.batch_logprobs(state.ref_params, device_rows)[0])
  mask = rows["mask"][:n]
  scores = jnp.asarray(record.rewards)
  info: dict[str, Any] = {}
  kl_penalty = np.zeros(mask.shape, np.float32)
  if state.ref_params is not None and algo.kl_in_reward:
    scores = algorithms.sequence_reward_minus_kl(
        scores, old_logp[:n], ref_logp[:n], mask, kl_coef=float(algo.kl_coef),
        kl_estimator=algo.kl_estimator)
    # The KL folded into the reward is not seen by the loss: log its token mean as "kl".
    kl_tok = algorithms.kl_estimate(algo.kl_estimator, jnp.asarray(old_logp[:n]),
                                    jnp.asarray(ref_logp[:n]))
    info["kl"] = float(jnp.sum(kl_tok * mask) / max(float(mask.sum()), 1.0))
    kl_penalty = np.asarray(kl_tok, np.float32) * float(algo.kl_coef) * mask
  dense, _ = group_index(record.group_ids)
  side = dict(group_ids=dense, lengths=record.lengths, roles=record.role_ids,
              turns=record.turn_ids, correct=record.correct,
              seq_logp=(record.behaviour_logp * record.loss_mask).sum(-1), mask=mask,
              scores=np.asarray(record.rewards), kl_penalty=kl_penalty,
              token_rewards=(None if record.token_rewards is None
                             else record.token_rewards[:, :mask.shape[1]]),
              meta=record.meta, state=state.algo_state.setdefault("advantage", {}))
  adv, adv_metrics = algorithms.estimate(
      algo.advantage, scores, group_ids=dense, rectangular=record.rectangular(), side=side,
      options=dict(algo.advantage_options or {}))
  info.update({f"adv/{k}": v for k, v in adv_metrics.items()})
  if adv.ndim == 1:
    adv = np.asarray(adv).reshape(-1) * valid
  else:
    adv = adv * valid[:, None]
  rows["advantages"] = _pad_rows(adv.astype(np.float32), rows["mask"].shape[0])
  if old_logp is not None and not spec.on_policy:
    rows["old_logp"] = np.asarray(old_logp)
  if ref_logp is not None and (spec.kl_coef > 0 or "ref_logp" in env.row_fields):
    rows["ref_logp"] = np.asarray(ref_logp)
  if "old_max_logp" in env.row_fields or "old_minp_logmass" in env.row_fields:
    # The old policy's confidence / min-p mass, for losses that ask (one statistics pass).
    kappa = dict(spec.options).get("kappa") if "old_minp_logmass" in env.row_fields else None
    stats = env.token_stats(state.params, rows, minp_kappa=None if kappa is None else float(kappa))
    for key, field in (("max_logp", "old_max_logp"), ("minp_logmass", "old_minp_logmass")):
      if field in env.row_fields:
        rows[field] = stats[key]
  extra = {"behaviour_logp": record.behaviour_logp, "role_ids": record.role_ids,
           "turn_ids": record.turn_ids}
  for key in env.row_fields:
    if key in extra:
      value = extra[key][:, :mask.shape[1]] if extra[key].ndim == 2 else extra[key]
      rows[key] = _pad_rows(value, rows["mask"].shape[0])
  return rows, info


def _pad_rows(x: np.ndarray, total: int) -> np.ndarray:
  if x.shape[0] == total:
    return x
  return np.concatenate([x, np.zeros((total - x.shape[0],) + x.shape[1:], x.dtype)])
