"""Batch builders (what of the sampled rows is trained on) and allocators (how many rollouts a
prompt gets). Both are flat registries chosen by name in ``config.batch``.

Batch builder: ``fn(record, *, ctx: BuilderContext, **options) -> record``, applied in the order
of ``config.batch.builders`` to every generation batch (``stage="generation"``) or once to the
assembled step batch (``stage="final"``). A builder may
  * mark groups invalid (``record.valid`` False): the trainer then samples more generation batches
    (at most ``config.batch.max_gen_batches``) until it has as many valid groups as one generation
    batch has groups, and fills what is still missing with invalid groups (trained with weight 0,
    so shapes stay fixed). DAPO's dynamic sampling works this way;
  * drop or pick rows (``record.select``): TTRL's "vote on N, train on n";
  * add rows (replay), keeping what it needs in ``ctx.state`` (checkpointed).

Allocator: ``fn(examples, *, default, ctx, **options) -> counts`` (one int per prompt), given the
config's G as ``default`` and, in ``ctx.prompt_stats``, what earlier steps saw of each prompt
(``{key: {"n": samples, "correct": sum, "reward": sum, "steps": seen}}``, key = `example_key`).
"""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from rlvr_jax.episodes.record import RolloutRecord, group_index
from rlvr_jax.episodes.registry import check_options

BuilderFn = Callable[..., RolloutRecord]
AllocatorFn = Callable[..., Sequence[int]]

BATCH_BUILDERS: dict[str, BuilderFn] = {}
ALLOCATORS: dict[str, AllocatorFn] = {}
STAGES = ("generation", "final")


@dataclasses.dataclass
class BuilderContext:
  """What a builder or allocator may use: the step's numpy ``rng``, its own ``state`` slot (a dict
  it may mutate; saved in every checkpoint), the ``step``, the per-prompt statistics, and
  ``stats``: numbers it wants in this step's metrics row (as ``batch/<name>/<key>``)."""

  rng: np.random.Generator
  state: dict
  step: int
  prompt_stats: Mapping[str, Mapping[str, float]] = dataclasses.field(default_factory=dict)
  stats: dict = dataclasses.field(default_factory=dict)


def register_builder(name: str, *, stage: str = "generation") -> Callable[[BuilderFn], BuilderFn]:
  if stage not in STAGES:
    raise ValueError(f"builder stage {stage!r}; choose one of {STAGES}")

  def wrap(fn: BuilderFn) -> BuilderFn:
    if name in BATCH_BUILDERS:
      raise ValueError(f"batch builder {name!r} is already registered")
    fn.stage = stage
    BATCH_BUILDERS[name] = fn
    return fn

  return wrap


def register_allocator(name: str) -> Callable[[AllocatorFn], AllocatorFn]:
  def wrap(fn: AllocatorFn) -> AllocatorFn:
    if name in ALLOCATORS:
      raise ValueError(f"allocator {name!r} is already registered")
    ALLOCATORS[name] = fn
    return fn

  return wrap


def parse_builders(names: Any, options: Any = None) -> list[tuple[str, BuilderFn, dict]]:
  """``config.batch.builders`` (builder names, in order) with ``config.batch.builder_options``
  (``<name>: {options}``) -> checked ``(name, fn, options)`` entries."""
  options = options.to_dict() if hasattr(options, "to_dict") else dict(options or {})
  if isinstance(names, str):
    names = (names,)
  out = []
  for i, name in enumerate(list(names or ())):
    if name not in BATCH_BUILDERS:
      raise ValueError(f"config.batch.builders[{i}]: unknown batch builder {name!r}; choose one of "
                       f"{sorted(BATCH_BUILDERS)}")
    fn = BATCH_BUILDERS[name]
    out.append((name, fn, check_options("batch builder", name, fn, options.get(name) or {},
                                        ("record", "ctx"))))
  # Options of a registered builder that is switched off are fine (a variant may drop it); a name
  # that is no builder at all is a typo.
  unknown = sorted(set(options) - set(BATCH_BUILDERS))
  if unknown:
    raise ValueError(f"config.batch.builder_options names unknown batch builders {unknown}; choose "
                     f"from {sorted(BATCH_BUILDERS)}")
  return out


def get_allocator(name: str, options: Any) -> tuple[AllocatorFn, dict]:
  if name not in ALLOCATORS:
    raise ValueError(f"config.batch.allocator={name!r} is not a registered allocator; choose one "
                     f"of {sorted(ALLOCATORS)}")
  fn = ALLOCATORS[name]
  return fn, check_options("allocator", name, fn, options or {}, ("examples", "default", "ctx"))


def example_key(example: Mapping) -> str:
  """A stable key of a data row for per-prompt statistics: its ``id`` if it has one, else a hash
  of the question."""
  if example.get("id") is not None:
    return str(example["id"])
  return hashlib.sha1(str(example.get("question", "")).encode()).hexdigest()[:16]


def update_prompt_stats(stats: dict, record: RolloutRecord) -> None:
  """Adds the valid rows of ``record`` to the per-prompt statistics table ``stats`` (in place)."""
  if record.examples is None:
    return
  seen = set()
  for i in np.flatnonzero(record.valid):
    ex = record.examples[i]
    if ex is None:
      continue
    key = example_key(ex)
    entry = stats.setdefault(key, {"n": 0, "correct": 0.0, "reward": 0.0, "steps": 0})
    entry["n"] += 1
    entry["correct"] += float(record.correct[i])
    entry["reward"] += float(record.rewards[i])
    if key not in seen:
      entry["steps"] += 1
      seen.add(key)


# ------------------------------------------------------------------------------------------------
# Builders
# ------------------------------------------------------------------------------------------------

FILTER_METRICS = ("accuracy", "reward")


def group_spread(record: RolloutRecord, metric: str) -> np.ndarray:
  """Per-row flag: True where the row's group has no spread of ``metric`` (accuracy or reward)."""
  if metric not in FILTER_METRICS:
    raise ValueError(f"dynamic_sampling metric={metric!r}; choose one of {FILTER_METRICS}")
  values = record.correct.astype(np.float32) if metric == "accuracy" else record.rewards
  dense, _ = group_index(record.group_ids)
  lo = np.full(dense.max(initial=-1) + 1, np.inf, np.float32)
  hi = np.full_like(lo, -np.inf)
  np.minimum.at(lo, dense, values)
  np.maximum.at(hi, dense, values)
  return (hi - lo)[dense] == 0.0


@register_builder("dynamic_sampling")
def dynamic_sampling(record: RolloutRecord, *, ctx: BuilderContext,
                     metric: str = "accuracy") -> RolloutRecord:
  """DAPO dynamic sampling (arXiv 2503.14476, sec. 3.2, eq. 11): a group whose ``metric`` is the
  same for every sample (all correct or all wrong, for the paper's ``accuracy``) has zero advantage
  and is marked invalid; the trainer resamples to refill. ``metric="reward"`` filters on the total
  reward instead (shaping terms such as the overlong penalty included)."""
  del ctx
  return record.replace(valid=record.valid & ~group_spread(record, metric))


@register_builder("vote_subsample")
def vote_subsample(record: RolloutRecord, *, ctx: BuilderContext, n: int,
                   mode: str = "random") -> RolloutRecord:
  """TTRL's "vote on N, train on n" (arXiv 2504.16084, sec. 3): rewards were computed with all N
  samples of a group (e.g. the majority vote); only ``n`` rows per group are kept for training:
  the first n (``mode="first"``) or n drawn without replacement (``"random"``)."""
  if mode not in ("first", "random"):
    raise ValueError(f"vote_subsample mode={mode!r}; choose 'first' or 'random'")
  n = int(n)
  if n < 1:
    raise ValueError(f"vote_subsample n={n}; need n >= 1")
  keep = []
  for g in dict.fromkeys(record.group_ids.tolist()):
    rows = np.flatnonzero(record.group_ids == g)
    if mode == "random" and len(rows) > n:
      rows = np.sort(ctx.rng.choice(rows, size=n, replace=False))
    keep.extend(rows[:n].tolist())
  return record.select(keep)


def zscore_rows(x: np.ndarray) -> np.ndarray:
  """Each row minus its mean over its std (n - 1 in the denominator, + 1e-8: TraPO's code)."""
  x = np.asarray(x, np.float64)
  std = x.std(axis=-1, ddof=1, keepdims=True) if x.shape[-1] > 1 else np.zeros_like(x[..., :1])
  return (x - x.mean(axis=-1, keepdims=True)) / (std + 1e-8)


def trajectory_similarity(query: np.ndarray, database: np.ndarray,
                          aggregate: str = "mean") -> np.ndarray:
  """TraPO's reliability score of unlabelled prompts (arXiv 2512.13106; code
  ``_compute_trajectory_cosine``): every trajectory (pass rate per visit, over time) is z-scored,
  the cosine similarity of each query [Q, L] to each database trajectory [D, L] is taken
  (0 for an all-constant trajectory) and aggregated over the database by ``mean`` or ``max`` -> [Q].
  """
  if aggregate not in ("mean", "max"):
    raise ValueError(f"trajectory similarity aggregate={aggregate!r}; choose 'mean' or 'max'")
  q, d = zscore_rows(query), zscore_rows(database)
  norms = np.linalg.norm(d, axis=-1)[:, None] * np.linalg.norm(q, axis=-1)[None, :]
  cos = (d @ q.T) / np.maximum(norms, 1e-8)  # [D, Q]
  return cos.mean(axis=0) if aggregate == "mean" else cos.max(axis=0)


@register_builder("trajectory_select")
def trajectory_select(record: RolloutRecord, *, ctx: BuilderContext, warmup: int = 8,
                      topk: float = 0.1, threshold: float = 0.4, aggregate: str = "mean",
                      update_db: bool = False) -> RolloutRecord:
  """TraPO's selection of unlabelled prompts (arXiv 2512.13106; code semi_ray_trainer.py).

  Every visit of a prompt appends its group's mean reward to the prompt's trajectory (the
  verifier's pass rate for a labelled prompt, the share of samples agreeing with the vote for an
  unlabelled one; kept in the builder state, so it survives a resume). The database is the
  labelled prompts' trajectories (plus, with ``update_db``, those of unlabelled prompts selected
  before), cut to their shortest length L. Until L >= ``warmup`` visits (the code counts epochs:
  each prompt is visited once per epoch) only labelled groups are trained. Then each unlabelled
  group of the batch is scored by ``trajectory_similarity`` of its first L rates against the
  database, and kept if it is in the top ``topk`` fraction of the batch's unlabelled groups (at
  least one when ``topk`` > 0, as the code) or its score is >= ``threshold``; the rest are marked
  invalid (weight 0; with ``config.batch.max_gen_batches`` = 1 nothing is resampled, as the paper).
  Rows need the ``labelled`` flag (``config.data.labelled_fraction``). A query seen fewer than L
  times is compared over its own length (the code raises instead); fewer than 2 visits score 0.
  """
  if int(warmup) < 0 or not 0.0 <= float(topk) <= 1.0:
    raise ValueError(f"trajectory_select: warmup={warmup} must be >= 0 and topk={topk} in [0, 1]")
  if aggregate not in ("mean", "max"):
    raise ValueError(f"trajectory_select aggregate={aggregate!r}; choose 'mean' or 'max'")
  if record.examples is None or any(ex is None or "labelled" not in ex for ex in record.examples):
    raise ValueError("trajectory_select needs rows with a 'labelled' flag: set "
                     "config.data.labelled_fraction")
  label_traj = ctx.state.setdefault("label_traj", {})
  unlabel_traj = ctx.state.setdefault("unlabel_traj", {})
  extra_db = ctx.state.setdefault("db_unlabelled", {})
  dense, _ = group_index(record.group_ids)
  groups = []  # (rows, key, labelled)
  for g in range(dense.max(initial=-1) + 1):
    rows = np.flatnonzero(dense == g)
    ex = record.examples[rows[0]]
    key = example_key(ex)
    table = label_traj if ex["labelled"] else unlabel_traj
    table.setdefault(key, []).append(float(np.mean(record.rewards[rows])))
    groups.append((rows, key, bool(ex["labelled"])))
  database = list(label_traj.values()) + (list(extra_db.values()) if update_db else [])
  length = min((len(t) for t in database), default=0)
  unlabelled = [(rows, key) for rows, key, lab in groups if not lab]
  valid = record.valid.copy()
  warming = length < max(int(warmup), 2)
  ctx.stats.update(warmup=float(warming), db_size=float(len(database)), db_len=float(length),
                   unlabelled_groups=float(len(unlabelled)))
  if not unlabelled:
    return record
  if warming:
    for rows, _ in unlabelled:
      valid[rows] = False
    ctx.stats["selected_frac"] = 0.0
    return record.replace(valid=valid)
  db = np.asarray([t[:length] for t in database], np.float64)
  sims = np.zeros(len(unlabelled))
  for j, (_, key) in enumerate(unlabelled):
    traj = unlabel_traj[key][:length]
    if len(traj) >= 2:
      sims[j] = trajectory_similarity(np.asarray([traj]), db[:, :len(traj)], aggregate)[0]
  k = max(1, int(len(unlabelled) * float(topk))) if float(topk) > 0 else 0
  chosen = set(np.argsort(-sims, kind="stable")[:k].tolist()) | set(
      np.flatnonzero(sims >= float(threshold)).tolist())
  right = []  # is the group's pseudo-label the gold answer? (diagnostics only)
  for j, (rows, key) in enumerate(unlabelled):
    right.append(bool(np.any((record.rewards[rows] > 0.5) & record.correct[rows])))
    if j in chosen:
      if update_db:
        extra_db[key] = list(unlabel_traj[key])
    else:
      valid[rows] = False
  picked = np.array([j in chosen for j in range(len(unlabelled))])
  right = np.array(right)
  ctx.stats.update(
      selected_frac=float(picked.mean()),
      selected_similarity=float(sims[picked].mean()) if picked.any() else 0.0,
      rejected_similarity=float(sims[~picked].mean()) if (~picked).any() else 0.0,
      selected_label_accuracy=float(right[picked].mean()) if picked.any() else 0.0,
      rejected_label_accuracy=float(right[~picked].mean()) if (~picked).any() else 0.0)
  return record.replace(valid=valid)


def _group_to_json(record: RolloutRecord, step: int) -> dict:
  return {"step": int(step), "prompts": [p.tolist() for p in record.prompts],
          "completions": record.completions.tolist(), "lengths": record.lengths.tolist(),
          "loss_mask": record.loss_mask.tolist(), "rewards": record.rewards.tolist(),
          "correct": record.correct.tolist(), "behaviour_logp": record.behaviour_logp.tolist(),
          "finish": record.finish.tolist(), "role_ids": record.role_ids.tolist(),
          "turn_ids": record.turn_ids.tolist(),
          # only what the per-prompt statistics read: rewards are not recomputed for replayed rows
          "examples": None if record.examples is None else [
              {k: ex[k] for k in ("id", "question", "answer") if k in ex} for ex in record.examples]}


def _group_from_json(item: dict, width: int, group_id: int) -> RolloutRecord:
  def fit(rows, fill):
    x = np.asarray(rows)
    x = x[:, :width]
    return np.pad(x, ((0, 0), (0, width - x.shape[1])), constant_values=fill)
  n = len(item["prompts"])
  return RolloutRecord(
      prompts=item["prompts"], completions=fit(item["completions"], 0),
      lengths=np.minimum(item["lengths"], width), group_ids=np.full(n, group_id),
      rewards=item["rewards"], loss_mask=fit(item["loss_mask"], 0.0), correct=item["correct"],
      behaviour_logp=fit(item["behaviour_logp"], 0.0), finish=item["finish"],
      role_ids=item["role_ids"], turn_ids=item["turn_ids"], examples=item["examples"])


@register_builder("replay", stage="final")
def replay(record: RolloutRecord, *, ctx: BuilderContext, capacity: int = 64,
           max_age: int = 8) -> RolloutRecord:
  """Replay of informative groups (the idea of VL-Rethinker's selective sample replay and RePO;
  not either paper's exact rule): groups of earlier steps whose rewards had spread are kept in a
  buffer (the ``capacity`` most recent, in the algorithm state, so they survive a resume), and
  every filler group of this step (no valid row left, e.g. after dynamic sampling ran out of
  generation batches) is replaced by the freshest buffered group at most ``max_age`` steps old.
  Replayed rows are off-policy: their old log-probs are recomputed under the current policy, and
  their sampler log-probs stay in ``behaviour_logp`` for losses that correct for it. Records with
  per-row ``meta`` or per-token rewards are not replayed (ValueError)."""
  if record.meta or record.token_rewards is not None:
    raise ValueError("replay keeps prompts, completions, rewards and ids only; this record has "
                     "per-row meta or token rewards")
  buffer = [g for g in ctx.state.get("groups", []) if ctx.step - g["step"] <= int(max_age)]
  groups = record.split_groups()
  next_id = int(record.group_ids.max(initial=-1)) + 1
  replayed = 0
  out = []
  for grp in groups:
    if not grp.valid.any() and buffer:
      out.append(_group_from_json(buffer.pop(), record.width, next_id))
      next_id += 1
      replayed += 1
    else:
      out.append(grp)
  fresh = [_group_to_json(g, ctx.step) for g in groups
           if g.valid.all() and float(np.ptp(g.rewards)) > 0]
  ctx.state["groups"] = (buffer + fresh)[-int(capacity):]
  ctx.stats["replayed_groups"] = replayed
  ctx.stats["buffer_size"] = len(ctx.state["groups"])
  return RolloutRecord.concat(out, renumber_groups=False)


# ------------------------------------------------------------------------------------------------
# Allocators
# ------------------------------------------------------------------------------------------------


@register_allocator("uniform")
def uniform(examples: Sequence[Mapping], *, default: int, ctx: BuilderContext) -> list[int]:
  """Every prompt gets the config's G samples (the GRPO default)."""
  del ctx
  return [int(default)] * len(examples)


@register_allocator("by_success_rate")
def by_success_rate(examples: Sequence[Mapping], *, default: int, ctx: BuilderContext,
                    low: int = 2, high: int | None = None, prior: float = 0.5) -> list[int]:
  """A simple informativeness allocator (the budget-reallocation idea of Knapsack RL / XRPO, not
  either paper's exact rule): a prompt whose past success rate p is near 0 or 1 gets ``low``
  samples, one near 0.5 up to ``high`` (default 2 G), in proportion to p (1 - p) / 0.25. Unseen
  prompts use ``prior``. The total can differ from P * G; the sampler takes ragged counts."""
  high = 2 * int(default) if high is None else int(high)
  counts = []
  for ex in examples:
    entry = ctx.prompt_stats.get(example_key(ex))
    p = entry["correct"] / entry["n"] if entry and entry["n"] else prior
    counts.append(int(round(low + (high - low) * min(1.0, p * (1 - p) / 0.25))))
  return counts
