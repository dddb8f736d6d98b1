"""What an episode may do: sample, score, and ask for log-probs, without knowing about processes.

An episode (``rlvr_jax.episodes.EPISODES``) receives an `EpisodeContext` and the step's global
examples and prompts. Every process runs the episode on the same global data (the sampler returns
the same numpy result everywhere), so host-side game logic or prompt building cannot diverge.
Scoring is the one place where work is split: each process scores the groups it loaded (group
``k`` belongs to process ``k % S``) and the results are gathered, so a slow verifier runs once per
row, not once per process.

``ctx.sample(prompts, counts=..., temperature=..., forced_prefix=...)`` supports
  * per-prompt rollout counts: prompt ``p`` gets ``counts[p]`` samples. Counts are served by
    copies of the prompt with ``unit`` samples each (``unit`` = the config's G by default) and the
    extra samples dropped; the sampler's batch is bucketed to powers of two, so ragged counts do
    not recompile every step;
  * sampling overrides (temperature, top-p, schedules, max_new_tokens) for this call;
  * forced prefixes: tokens appended to the prompt and returned as the start of the completion
    (``Samples.prefix_lengths``; the episode decides whether they are trained);
  * behaviour log-probs (``Samples.logprobs``) are kept, under the sampling distribution;
  * ``config.rollout.max_rows_per_call`` (when set) bounds the rows of one sampler call: the
    sampler runs the call's prompt copies in chunks of whole copies (all ``unit`` samples of a copy
    in one chunk) and returns the same tokens as one call (`rlvr_jax.sampling.chunk_prompts`).
"""
from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np

from rlvr_jax import rewards as rewards_lib
from rlvr_jax.episodes.record import RolloutRecord, group_index
from rlvr_jax.eval import evaluator
from rlvr_jax.eval import metrics as eval_metrics
from rlvr_jax.parallel import multihost


@dataclasses.dataclass
class Samples:
  """Numpy results of ``EpisodeContext.sample``, one row per sample.

  tokens int32 [N, T] (forced prefix first, then the sampled tokens, pad after ``lengths``),
  lengths int32 [N], logprobs f32 [N, T] (0 on the forced prefix and after the end), finish int8
  [N], prompt_index int32 [N] (which prompt of the call the row continues; samples of one prompt
  adjacent), prefix_lengths int32 [N].
  """

  tokens: np.ndarray
  lengths: np.ndarray
  logprobs: np.ndarray
  finish: np.ndarray
  prompt_index: np.ndarray
  prefix_lengths: np.ndarray

  @property
  def generated_tokens(self) -> int:
    return int((self.lengths - self.prefix_lengths).sum())


@dataclasses.dataclass
class Scores:
  """Result of ``EpisodeContext.score``: rewards f32 [N], correct bool [N], token_rewards
  f32 [N, T] or None, and the reward terms' metrics (means over rows, failures summed)."""

  rewards: np.ndarray
  correct: np.ndarray
  token_rewards: np.ndarray | None
  metrics: dict[str, float]


EAD_OPTIONS = ("decay0", "decay_growth", "decay_max", "offset")


def ead_schedule(rollout: Any, step: int) -> dict:
  """EAD's run-time schedule arguments at training step ``step`` (arXiv 2510.05251): the decay
  d_s = min(decay0 + decay_growth * s, decay_max) lengthens as training goes on, so later rollouts
  stay hot for more tokens; ``offset`` tokens are sampled at temperature 1 first.
  From ``config.rollout.schedule_options``."""
  o = dict(getattr(rollout, "schedule_options", None) or {})
  unknown = sorted(set(o) - set(EAD_OPTIONS))
  if unknown or "decay0" not in o:
    raise ValueError(f"config.rollout.schedule_options for temperature_schedule='ead' needs decay0 "
                     f"(and optionally {list(EAD_OPTIONS[1:])}); unknown: {unknown}")
  decay = float(o["decay0"]) + float(o.get("decay_growth", 0.0)) * int(step)
  decay = min(decay, float(o.get("decay_max", decay)))
  if not decay > 0:
    raise ValueError(f"config.rollout.schedule_options gives EAD decay {decay} at step {step}; "
                     "need > 0")
  return {"temperature_decay": decay, "temperature_offset": int(o.get("offset", 0))}


class EpisodeContext:
  """Built by the trainer once per step. Attributes an episode may read: ``config`` (the run's
  ConfigDict), ``tokenizer``, ``prompt_fn`` (example -> prompt ids), ``rng`` (numpy Generator of
  this step; draws are deterministic per (seed, step)), ``state`` (the episode's own slot of the
  persistent algorithm state, a dict it may mutate), ``step``.

  Args (trainer side): ``generate(params, prompts, **options) -> sampling.SampleResult``;
  ``logprob_fn(params, rows) -> (logp, entropy)`` over record rows; ``token_stats_fn(params, rows)
  -> dict of [N, T] arrays``; ``rows_fn(record) -> training rows``.
  """

  def __init__(self, *, config: Any, tokenizer: Any, prompt_fn: Callable, params: Any,
               ref_params: Any, generate: Callable, rows_fn: Callable, logprob_fn: Callable,
               token_stats_fn: Callable | None, rng: np.random.Generator, state: dict,
               step: int):
    self.config = config
    self.tokenizer = tokenizer
    self.prompt_fn = prompt_fn
    self.params = params
    self.ref_params = ref_params
    self.rng = rng
    self.state = state
    self.step = step
    self._generate = generate
    self._rows_fn = rows_fn
    self._logprob_fn = logprob_fn
    self._token_stats_fn = token_stats_fn
    self.reward_spec = rewards_lib.parse_spec(config.reward.terms)
    self.stats: dict[str, float] = {}
    self.reward_metrics: list[dict[str, float]] = []  # one dict per score() call
    self.gen_tokens = 0

  # --- sampling ----------------------------------------------------------------------------------
  def sampling_options(self, **overrides) -> dict:
    r = self.config.rollout
    options = dict(max_new_tokens=int(r.max_new_tokens), temperature=float(r.temperature),
                   top_p=float(r.top_p), top_k=int(r.top_k), min_p=float(r.min_p),
                   eos_ids=tuple(self.tokenizer.eos_ids), pad_id=self.tokenizer.pad_id)
    schedule = getattr(r, "temperature_schedule", "constant")
    if schedule != "constant":  # only then: a constant schedule keeps today's sampler program
      options.update(temperature_schedule=schedule, temperature_end=float(r.temperature_end))
    if schedule == "ead":
      options.update(ead_schedule(r, self.step))
    extra = {"temperature_end", "temperature_schedule", "temperature_decay", "temperature_offset"}
    unknown = sorted(set(overrides) - set(options) - extra)
    if unknown:
      raise ValueError(f"EpisodeContext.sample: unknown sampling options {unknown}; valid: "
                       f"{sorted(set(options) | extra)}")
    options.update({k: v for k, v in overrides.items() if v is not None})
    return options

  def sample(self, prompts: Sequence[Sequence[int]], *, num_samples: int | None = None,
             counts: Sequence[int] | None = None, unit: int | None = None,
             forced_prefix: Sequence[Sequence[int]] | None = None, seed: int | None = None,
             policy: str = "current", **overrides) -> Samples:
    """Samples continuations of ``prompts`` (see the module docstring). ``num_samples`` (default
    the config's G) applies to every prompt unless ``counts`` gives one count per prompt.
    ``policy="reference"`` samples from the frozen reference policy (an episode that does so sets
    ``needs_reference = True`` on its function, so the trainer keeps one)."""
    if policy not in ("current", "reference"):
      raise ValueError(f"sample: policy={policy!r}; choose 'current' or 'reference'")
    params = self.params if policy == "current" else self.ref_params
    if policy == "reference" and params is None:
      raise ValueError("sample(policy='reference'): this run keeps no reference policy (set "
                       "needs_reference = True on the episode or config.algo.kl_coef > 0)")
    g = int(self.config.rollout.num_samples) if num_samples is None else int(num_samples)
    counts = [g] * len(prompts) if counts is None else [int(c) for c in counts]
    if len(counts) != len(prompts):
      raise ValueError(f"sample: {len(counts)} counts for {len(prompts)} prompts")
    if any(c < 0 for c in counts):
      raise ValueError(f"sample: rollout counts must be >= 0, got {counts}")
    prefixes = [list(p) for p in forced_prefix] if forced_prefix is not None else None
    if prefixes is not None and len(prefixes) != len(prompts):
      raise ValueError(f"sample: {len(prefixes)} forced prefixes for {len(prompts)} prompts")
    if seed is None:
      seed = int(self.rng.integers(2**31 - 1))
    options = self.sampling_options(**overrides)
    bound = int(getattr(self.config.rollout, "max_rows_per_call", None) or 0)
    if bound:  # only then: a generate function without the option keeps working
      options["max_rows_per_call"] = bound
    uniform = len(set(counts)) == 1 and counts[0] > 0
    unit = counts[0] if uniform and unit is None else int(unit or g)
    # Prompt copies: prompt p appears ceil(counts[p] / unit) times with `unit` samples each.
    copies = [-(-c // unit) for c in counts]
    call_prompts = []
    for p, (prompt, n) in enumerate(zip(prompts, copies)):
      call_prompts += [list(prompt) + (prefixes[p] if prefixes is not None else [])] * n
    if not call_prompts:
      raise ValueError("sample: every rollout count is 0")
    out = self._generate(params, call_prompts, num_samples=unit, seed=seed, **options)
    keep, index, first = [], [], 0
    for p, n in enumerate(copies):
      rows = [(first + j) * unit + s for j in range(n) for s in range(unit)][:counts[p]]
      keep += rows
      index += [p] * len(rows)
      first += n
    keep = np.asarray(keep, np.int64)
    tokens, lengths = np.asarray(out.tokens)[keep], np.asarray(out.lengths)[keep]
    logprobs, finish = np.asarray(out.logprobs)[keep], np.asarray(out.finish_reason)[keep]
    index = np.asarray(index, np.int32)
    pre = np.zeros(len(keep), np.int32)
    if prefixes is not None and any(prefixes):
      pre = np.asarray([len(prefixes[p]) for p in index], np.int32)
      width = int(pre.max()) + tokens.shape[1]
      full = np.full((len(keep), width), self.tokenizer.pad_id, np.int32)
      full_lp = np.zeros((len(keep), width), np.float32)
      for i, p in enumerate(index):
        k = pre[i]
        full[i, :k] = prefixes[p]
        full[i, k:k + tokens.shape[1]] = tokens[i]
        full_lp[i, k:k + tokens.shape[1]] = logprobs[i]
      tokens, logprobs, lengths = full, full_lp, lengths + pre
    samples = Samples(tokens=tokens, lengths=lengths.astype(np.int32), logprobs=logprobs,
                      finish=finish, prompt_index=index, prefix_lengths=pre)
    self.gen_tokens += samples.generated_tokens
    return samples

  def decode(self, tokens: np.ndarray, lengths: np.ndarray) -> list[str]:
    return evaluator.decode_completions(self.tokenizer, tokens, lengths)

  def encode(self, text: str) -> list[int]:
    return list(self.tokenizer.encode(text))

  # --- scoring -----------------------------------------------------------------------------------
  def score(self, texts: Sequence[str], examples: Sequence[Mapping], *, group_ids: np.ndarray,
            lengths: np.ndarray | None = None, record: RolloutRecord | None = None,
            spec: Any = None, correctness: bool = True) -> Scores:
    """Reward terms (``config.reward.terms``, or ``spec``) and correctness of N completions.

    ``group_ids`` [N] say which rows form a group (majority vote, ownership). Terms that name
    ``token_stats`` in their signature get the policy's per-token statistics of the rows (a
    forward of the current policy over ``record``, which must then be given).
    """
    n = len(texts)
    spec = self.reward_spec if spec is None else rewards_lib.parse_spec(spec)
    dense, sizes = group_index(np.asarray(group_ids))
    group_size = int(sizes[0]) if len(set(sizes.tolist())) == 1 else None
    token_stats = None
    if any("token_stats" in inspect.signature(rewards_lib.REWARDS[t["name"]]).parameters
           for t in spec):
      if record is None or self._token_stats_fn is None:
        raise ValueError("a reward term needs token_stats: pass record= to EpisodeContext.score")
      token_stats = self._token_stats_fn(self.params, self._rows_fn(record))
    count = jax.process_count()
    own = np.flatnonzero(dense % count == jax.process_index())
    max_len = int(self.config.rollout.max_new_tokens)
    own_lengths = None if lengths is None else np.asarray(lengths)[own]
    term_scores: dict[str, np.ndarray] = {}
    rewards, token_rewards, metrics = rewards_lib.compute_rewards(
        spec, [texts[i] for i in own], [examples[i] for i in own], group_size=group_size,
        group_ids=dense[own], lengths=own_lengths, max_len=max_len, return_token_rewards=True,
        token_stats=None if token_stats is None else {k: v[own] for k, v in token_stats.items()},
        term_scores=term_scores)
    if not correctness:
      correct = np.zeros(len(own), bool)
    else:
      reused = self._correctness_term(spec)  # the verifier already ran as a reward term
      correct = (evaluator.is_correct(term_scores[reused], float(self.config.reward.threshold))
                 if reused is not None and self.grades_training
                 else self.correct([texts[i] for i in own], [examples[i] for i in own]))
    mine = {"rows": own.tolist(), "rewards": np.asarray(rewards, np.float32).tolist(),
            "correct": np.asarray(correct, bool).tolist(), "metrics": metrics,
            "token_rewards": None if token_rewards is None else token_rewards.tolist()}
    parts = multihost.allgather_object(mine)
    out_r = np.zeros(n, np.float32)
    out_c = np.zeros(n, bool)
    out_t = None
    for part in parts:
      rows = np.asarray(part["rows"], np.int64)
      out_r[rows] = part["rewards"]
      out_c[rows] = part["correct"]
      if part["token_rewards"] is not None:
        tok = np.asarray(part["token_rewards"], np.float32)
        if out_t is None:
          out_t = np.zeros((n, tok.shape[1]), np.float32)
        out_t[rows, :tok.shape[1]] = tok
    metrics = mean_metrics([p["metrics"] for p in parts])
    names = {t["name"] for t in spec}
    if correctness and self.config.reward.correctness and names & rewards_lib.LABEL_FREE:
      if "majority_vote" in names:
        # TTRL's collapse detector: how often the vote reward agrees with the ground truth (a
        # sample counts as rewarded when its reward exceeds config.reward.label_free_threshold).
        cut = float(getattr(self.config.reward, "label_free_threshold", 0.5))
        metrics["reward_accuracy"] = float(np.mean((out_r > cut) == out_c))
      if out_c.any() and not out_c.all():
        # For any label-free reward: does it rank correct samples above incorrect ones?
        metrics["reward_auroc"] = float(eval_metrics.auroc(out_r, out_c))
    votes = [k for k in metrics if k.startswith("label_accuracy/")]
    if len(votes) == 1:  # one key for every pseudo-labelling method (cross_view logs it too)
      metrics["label_accuracy"] = metrics[votes[0]]
    self.reward_metrics.append(metrics)
    return Scores(out_r, out_c, out_t, metrics)

  @property
  def grades_training(self) -> bool:
    """Whether training rows can be checked against their labels: a correctness check is
    configured and the run is not test-time RL (whose training examples carry no labels)."""
    return bool(self.config.reward.correctness) and not getattr(
        getattr(self.config, "data", None), "test_time", False)

  def _correctness_term(self, spec: list[dict]) -> str | None:
    """The label of a reward term that is exactly the correctness check (same reward, same
    options), whose scores then decide correctness without verifying a second time."""
    r = self.config.reward
    options = r.correctness_options or {}
    options = options.to_dict() if hasattr(options, "to_dict") else dict(options)  # plain, as spec
    for term in spec:
      if term["name"] == r.correctness and term["options"] == options:
        return term["label"]
    return None

  def correct(self, texts: Sequence[str], examples: Sequence[Mapping]) -> np.ndarray:
    r = self.config.reward
    if not self.grades_training:
      return np.zeros(len(texts), bool)
    return evaluator.score(texts, examples, reward=r.correctness,
                           reward_options=dict(r.correctness_options or {}),
                           threshold=float(r.threshold))

  # --- log-probs ---------------------------------------------------------------------------------
  def logprobs(self, record: RolloutRecord, policy: str = "current") -> tuple[np.ndarray, np.ndarray]:
    """(logp, entropy) [N, T] of the record's completions under the current or reference policy."""
    if policy == "current":
      params = self.params
    elif policy == "reference":
      if self.ref_params is None:
        raise ValueError("no reference policy in this run (it is kept when config.algo.kl_coef > 0 "
                         "or a loss / episode asks for reference log-probs)")
      params = self.ref_params
    else:
      raise ValueError(f"logprobs: policy={policy!r}; choose 'current' or 'reference'")
    logp, ent = self._logprob_fn(params, self._rows_fn(record))
    t = record.width
    return np.asarray(logp)[:, :t], np.asarray(ent)[:, :t]

  def log(self, key: str, value: float) -> None:
    """An episode statistic for this step's metrics row (the last value logged wins)."""
    self.stats[key] = float(value)


def mean_metrics(dicts: Sequence[Mapping[str, float]]) -> dict[str, float]:
  """Per-process / per-batch metric dicts combined: failure counters add up, the rest average."""
  keys = {k for d in dicts for k in d}
  out = {}
  for k in keys:
    vals = [float(d[k]) for d in dicts if k in d]
    out[k] = float(np.sum(vals)) if k.startswith(("reward_fail", "reward_timeout")) \
        else float(np.mean(vals))
  return out


def sum_metrics(dicts: Sequence[Mapping[str, float]]) -> dict[str, float]:
  return {k: float(sum(d.get(k, 0) for d in dicts)) for k in sorted({k for d in dicts for k in d})}
