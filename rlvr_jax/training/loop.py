"""The RL loop, as named phases over a small run state.

``run(config, workdir)`` is what ``python -m experiments.run`` calls:

* ``setup``: plug-ins (episode, batch builders, allocator, loss spec; typos fail first), data,
  tokenizer, model, mesh, warm start, optimizer, iterator; restores the latest checkpoint (params,
  optimizer, data position, algorithm state). Returns the fixed `Env` and the mutable `RunState`.
* ``collect`` (training/collect.py): examples -> allocator -> episode -> batch builders -> one
  `RolloutRecord` (several generation batches when a builder drops groups);
* ``prepare_batch`` (training/collect.py): padded rows, old / reference log-probs when needed, the
  KL folded into the reward, advantages (group ids, side inputs, persistent state);
* ``update``: mu epochs x mini-batches of ``step.rl_update`` (one jitted function, gradient
  accumulation over micro-batches with global token counts);
* ``after_step``: metrics (stdout, metrics.jsonl, TensorBoard), quick eval, non-finite accounting,
  checkpoint every ``config.checkpoint.every`` steps and on SIGTERM;
* ``finish``: held-out evaluation after RL (``eval.json``, before it: ``eval_before.json``), the
  metrics plot and the ``save_hf`` export.

All host randomness of a step comes from ``np.random.default_rng([seed, step])``, so a resumed run
draws what the uninterrupted one drew.
"""
from __future__ import annotations

import dataclasses
import json
import signal
import time
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from flax import nnx

from rlvr_jax import algorithms
from rlvr_jax import data as data_lib
from rlvr_jax import episodes
from rlvr_jax import models
from rlvr_jax import rewards as rewards_lib
from rlvr_jax.episodes import selection
from rlvr_jax.episodes.record import RolloutRecord
from rlvr_jax.eval import evaluator
from rlvr_jax.parallel import constraints
from rlvr_jax.parallel import mesh as mesh_lib
from rlvr_jax.parallel import multihost
from rlvr_jax.parallel import sampler as parallel_sampler
from rlvr_jax.training import batch as batch_lib
from rlvr_jax.training import builders, checkpoint, metrics as metrics_lib, sft
from rlvr_jax.training import export as export_lib
from rlvr_jax.training import provenance
from rlvr_jax.training import storage
from rlvr_jax.training import collect as collect_lib
from rlvr_jax.training import step as step_lib
from rlvr_jax.training import validate
from rlvr_jax.training import workdir as workdir_lib


# ------------------------------------------------------------------------------------------------
# Preemption
# ------------------------------------------------------------------------------------------------

class Stopped(Exception):
  """A signal asked the run to stop; raised at the next safe point, after saving what can be."""


class _StopFlag:
  """Set by SIGTERM (TPU preemption, SLURM) or a first Ctrl-C, from the start of ``run``: the run
  stops at the next safe point (between warm-start or RL steps, after model loading or an
  evaluation) and saves what can be saved. A second Ctrl-C aborts at once. The previous handlers
  come back when ``run`` returns."""

  def __init__(self):
    self.set = False
    self._previous: dict[int, Any] = {}

  def install(self) -> "_StopFlag":
    for sig in (signal.SIGTERM, signal.SIGINT):
      try:
        self._previous[sig] = signal.signal(sig, self._handler)
      except ValueError:  # not on the main thread: no handler (the caller decides)
        pass
    return self

  def uninstall(self) -> None:
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    self._previous = {}

  def _handler(self, signum, frame):
    del frame
    if signum == signal.SIGINT and self.set:
      raise KeyboardInterrupt  # the second Ctrl-C: abort now
    self.set = True
    name = "Ctrl-C" if signum == signal.SIGINT else f"signal {signum}"
    print(f"{name} received: stopping at the next safe point and saving what can be saved"
          + (" (press Ctrl-C again to abort)" if signum == signal.SIGINT else ""), flush=True)

  def requested(self) -> bool:
    """Whether any process was asked to stop (a collective call in multi-process runs)."""
    return multihost.any_process(self.set)

  def check(self, phase: str, saved: str = "nothing needed saving") -> None:
    """Raises ``Stopped`` at a safe point if a stop was requested."""
    if self.requested():
      raise Stopped(f"stopped by signal {phase}; {saved}. Rerun the same command to continue")


_NO_STOP = _StopFlag()  # never set: setup() called on its own (tests)


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
    if section.get("source") in ("jsonl", "parquet", "arrow") and not section.get("path"):
      # Paper configs expose the file as a short alias (config.data.path / data.eval_path).
      flag = f"data.{alias}" if alias in cfg.data else f"data.{name}.path"
      raise ValueError(f"config.data.{name}.path is not set: pass --config.{flag}=/path/to/local/"
                       f"{section.get('source')} file")


def check_test_time(cfg: Any) -> None:
  """Test-time RL (``config.data.test_time``): refuses, naming it, any reward term that reads a
  gold answer, and a run without evaluation questions to train on."""
  if not cfg.data.get("test_time"):
    return
  if int(cfg.eval.size) <= 0:
    raise ValueError("config.data.test_time trains on the evaluation questions: set "
                     "config.eval.size > 0")
  for term in rewards_lib.parse_spec(cfg.reward.terms):
    if term["name"] not in rewards_lib.GOLD_FREE:
      raise ValueError(f"config.data.test_time: reward term {term['label']!r} ({term['name']}) "
                       f"reads gold answers; test-time rewards must be one of "
                       f"{sorted(rewards_lib.GOLD_FREE)}")
    if term["name"] == "majority_vote" and dict(term.get("options") or {}).get("hybrid"):
      raise ValueError(f"config.data.test_time: reward term {term['label']!r} has hybrid=True, "
                       "which rewards against the gold answer")


def check_semi_supervised(cfg: Any) -> None:
  """The ``trapo`` reward and the ``trajectory_select`` builder read each row's ``labelled`` flag,
  which ``config.data.labelled_fraction`` adds: refuse, naming the term, a run without it."""
  if cfg.data.get("labelled_fraction") is not None:
    return
  users = [f"reward term {t['label']!r}" for t in rewards_lib.parse_spec(cfg.reward.terms)
           if t["name"] == "trapo"]
  users += [f"batch builder {b!r}" for b in (cfg.batch.builders or ()) if b == "trajectory_select"]
  if users:
    raise ValueError(f"{' and '.join(users)} need(s) labelled / unlabelled rows: set "
                     "config.data.labelled_fraction (e.g. 0.1)")


def build_inputs(cfg: Any, workdir: str):
  """The run's training source, held-out examples, tokenizer, template and ``prompt_fn``.

  Shared by ``run`` and ``experiments/eval.py`` so evaluation sees exactly the training prompts
  and the same held-out split. Returns ``(train_source, eval_examples, tokenizer, template,
  prompt_fn)``; ``eval_examples`` is empty when ``config.eval.size`` is 0.
  """
  check_required(cfg)
  check_test_time(cfg)
  check_semi_supervised(cfg)
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


# ------------------------------------------------------------------------------------------------
# Run state and the static pieces of a run
# ------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class RunState:
  """What changes from step to step (and is checkpointed): params, optimizer state, the step, the
  algorithm state (a JSON-able dict with one slot per plug-in: ``advantage``, ``episode``,
  ``builders/<name>``, ``allocator``, ``prompt_stats``), and the count of non-finite steps. The
  reference params are fixed after setup."""

  params: Any
  opt_state: Any
  ref_params: Any
  step: int = 0
  algo_state: dict = dataclasses.field(default_factory=dict)
  nonfinite_steps: int = 0


@dataclasses.dataclass
class Env:
  """The run's fixed pieces, built once by ``setup``: config, data, tokenizer, model structure,
  mesh, jitted functions, plug-ins, checkpointer and metrics writer."""

  cfg: Any
  workdir: str
  say: Callable
  primary: bool
  tokenizer: Any
  prompt_fn: Callable
  eval_examples: list
  rows_skipped: int
  graphdef: Any
  model_cfg: Any
  mesh: Any
  put_batch: Callable
  sampler: Any
  tx: Any
  rl_update: Callable
  logprob_jit: Callable
  token_stats_jit: Callable
  spec: step_lib.LossSpec
  it: Any
  ckpt: checkpoint.Checkpointer
  writer: Any = None
  episode: Callable = None
  episode_options: dict = dataclasses.field(default_factory=dict)
  builders: list = dataclasses.field(default_factory=list)
  allocator: Callable = None
  allocator_options: dict = dataclasses.field(default_factory=dict)
  allocator_is_uniform: bool = True
  lock: Any = None  # workdir_lib.WorkdirLock held by process 0
  track_prompt_stats: bool = False
  max_gen_batches: int = 1
  row_fields: frozenset = frozenset()
  needs_ref: bool = False
  eval_kwargs: dict = dataclasses.field(default_factory=dict)
  audit_gold: dict | None = None  # test-time RL: labelled eval rows by key, for audit metrics only

  @property
  def num_prompts(self) -> int:
    return int(self.cfg.rollout.prompts_per_step)

  @property
  def max_prompt(self) -> int:
    return int(self.cfg.data.max_prompt_len)

  @property
  def num_minibatches(self) -> int:
    return int(self.cfg.algo.num_minibatches)

  @property
  def optimizer_steps(self) -> int:
    return int(self.cfg.total_steps) * int(self.cfg.algo.epochs) * self.num_minibatches

  def num_micro(self, rows: int) -> int:
    micro = int(self.cfg.algo.micro_batch_size) or rows // self.num_minibatches
    return max(1, rows // micro)

  def row_bucket(self, n: int, *, rectangular: bool) -> int:
    """Training rows for a record of ``n`` rows: ``n`` for a rectangular record whose rows split
    into the mini- and micro-batches (today's shapes); otherwise a multiple of that split rounded
    to a power of two, so ragged episodes compile a handful of update programs."""
    unit = self.num_minibatches * max(1, int(self.cfg.algo.micro_batch_size))
    if rectangular and n % unit == 0:
      return n
    return unit * (1 << max(0, -(-n // unit) - 1).bit_length())

  def logprobs(self, params, rows: dict[str, np.ndarray]):
    """(logp, entropy) [N, Tn] of host rows under ``params``, back on the host."""
    out = self.batch_logprobs(params, self.put_batch(rows))
    return multihost.to_host(out[0]), multihost.to_host(out[1])

  def batch_logprobs(self, params, device_rows):
    n = device_rows["tokens"].shape[0]
    return self.logprob_jit(params, device_rows, graphdef=self.graphdef,
                            temperature=self.spec.temperature, impl=self.spec.logprob_impl,
                            num_micro=self.num_micro(n))

  def token_stats(self, params, rows: dict[str, np.ndarray],
                  minp_kappa: float | None = None) -> dict[str, np.ndarray]:
    n = rows["tokens"].shape[0]
    out = multihost.to_host(self.token_stats_jit(
        params, self.put_batch(rows), graphdef=self.graphdef, temperature=self.spec.temperature,
        impl=self.spec.logprob_impl, num_micro=self.num_micro(n), minp_kappa=minp_kappa))
    return dict(out, mask=rows["mask"])


# ------------------------------------------------------------------------------------------------
# Phases
# ------------------------------------------------------------------------------------------------

def plugins(cfg: Any) -> dict:
  """Every plug-in the config names, checked (an unknown name or option is a ValueError naming
  it), as `Env` fields: episode, batch builders, allocator, loss spec, the extra row fields and
  whether a reference policy is kept."""
  episode, episode_options = episodes.get_episode(cfg.episode.name, cfg.episode.options)
  builders_list = selection.parse_builders(cfg.batch.builders, cfg.batch.builder_options)
  allocator, allocator_options = selection.get_allocator(cfg.batch.allocator,
                                                         cfg.batch.allocator_options)
  if cfg.algo.advantage not in algorithms.ADVANTAGES:
    raise ValueError(f"config.algo.advantage={cfg.algo.advantage!r}; choose one of "
                     f"{sorted(algorithms.ADVANTAGES)}")
  algo = cfg.algo
  on_policy = (int(algo.epochs) == 1 and int(algo.num_minibatches) == 1
               and not algo.get("force_old_logprobs", False))
  spec = builders.loss_spec(algo, temperature=float(cfg.rollout.temperature),
                            logprob_impl=cfg.train.get("logprob_impl"), on_policy=on_policy)
  if spec.norm_constant is None:  # Dr. GRPO's L_const: the generation budget, not the batch's bucket
    spec = dataclasses.replace(spec, norm_constant=float(cfg.rollout.max_new_tokens))
  schedule = cfg.rollout.get("temperature_schedule", "constant")
  if schedule == "ead":
    # EAD trains the target policy at temperature 1; the tempered samples are corrected by
    # truncated importance weights against the sampler's log-probs (loss "ppo_clip_tis").
    spec = dataclasses.replace(spec, temperature=1.0)
  elif schedule != "constant":  # the learner reproduces the sampler's per-position temperature
    spec = dataclasses.replace(spec, temperature=(
        float(cfg.rollout.temperature), float(cfg.rollout.temperature_end), schedule,
        int(cfg.rollout.max_new_tokens)))
  row_fields = set(algorithms.loss_needs(spec.loss)) & {"behaviour_logp", "ref_logp",
                                                        "old_max_logp", "old_minp_logmass"}
  for name, _, _ in spec.aux:
    row_fields |= set(getattr(algorithms.AUX_LOSSES[name], "needs", ()))
  uniform = allocator is selection.ALLOCATORS["uniform"]
  filters = any(fn.stage == "generation" for _, fn, _ in builders_list)
  return dict(
      episode=episode, episode_options=episode_options, builders=builders_list,
      allocator=allocator, allocator_options=allocator_options, allocator_is_uniform=uniform,
      track_prompt_stats=not uniform or bool(cfg.batch.track_prompt_stats),
      max_gen_batches=int(cfg.batch.max_gen_batches) if filters else 1, spec=spec,
      row_fields=frozenset(row_fields),
      needs_ref=(float(algo.kl_coef) > 0.0 or "ref_logp" in row_fields
                 or bool(getattr(episode, "needs_reference", False))))


def setup(config: Any, workdir: str, *, devices: Sequence[Any] | None = None,
          allow_config_changes: bool = False, stop: _StopFlag = _NO_STOP) -> tuple[Env, RunState]:
  """Data, tokenizer, model, mesh, warm start, optimizer, plug-ins, iterator; restores the latest
  intact checkpoint of ``workdir`` (params, optimizer, data position, algorithm state) when there
  is one.

  Before any work: the config's ranges (``validate``), the workdir lock (process 0), and on resume
  the config against the checkpoint's (``workdir.check_resume``; ``allow_config_changes`` accepts
  the changes that need a flag). ``config.json`` is written only after those checks pass.
  """
  cfg = config
  validate.check_config(cfg)  # ranges and cross-key rules, before the workdir is touched
  workdir = storage.resolve(workdir)  # local: absolute; gs://...: kept as a URL
  storage.check_access(workdir)  # credentials / client library / bucket, named now, not at step 1
  primary = multihost.is_primary()
  say = print if primary else (lambda *a, **k: None)
  lock = workdir_lib.WorkdirLock(workdir).acquire() if primary else None
  if lock is not None and lock.took_over is not None:
    held = lock.took_over
    say(f"took over the lock of {workdir} from process {held.get('pid')} (started "
        f"{held.get('started')}), which is no longer running")
  try:
    env, state = _setup_locked(cfg, workdir, primary, say, devices, allow_config_changes, stop)
  except BaseException:
    if lock is not None:
      lock.release()
    raise
  env.lock = lock
  return env, state


def _check_and_record_config(cfg: Any, workdir: str, ckpt: checkpoint.Checkpointer, primary: bool,
                             say: Callable, allow_changes: bool) -> None:
  """On resume, the config against the newest readable checkpoint's; then config.json."""
  saved, step = None, 0
  for s in sorted(ckpt.all_steps(), reverse=True):
    try:
      saved, step = ckpt.read_meta(s).get("config"), s
      break
    except Exception:  # pylint: disable=broad-except  (a broken step: restore() reports it)
      continue
  config_json = cfg.to_json_best_effort(indent=2)
  diff = workdir_lib.check_resume(saved, json.loads(config_json), step=step,
                                  checkpoint_dir=ckpt.directory, allow_changes=allow_changes)
  for part, label in (("flagged", "changed on resume (--allow_config_changes)"),
                      ("free", "changed on resume")):
    for key, (old, new) in diff[part].items():
      say(f"config: {key} {label}: {old!r} -> {new!r}")
  if primary:
    moved = workdir_lib.record_config(workdir, config_json, step=step, diff=diff)
    if moved:
      say(f"config: the previous config.json of this workdir is kept as {moved}")


def _setup_locked(cfg: Any, workdir: str, primary: bool, say: Callable,
                  devices: Sequence[Any] | None, allow_config_changes: bool, stop: _StopFlag
                  ) -> tuple[Env, RunState]:
  ckpt = checkpoint.Checkpointer(storage.join(workdir, "checkpoints"),
                                 max_to_keep=(None if cfg.checkpoint.max_to_keep is None  # keep all
                                              else int(cfg.checkpoint.max_to_keep)),
                                 async_save=bool(cfg.checkpoint.get("async_save", True)))
  _check_and_record_config(cfg, workdir, ckpt, primary, say, allow_config_changes)
  run_info = provenance.run_info(workdir=workdir)
  if primary:  # this launch, and every launch of the workdir (which code trained which steps)
    storage.write_text(storage.join(workdir, "run_info.json"), json.dumps(run_info, indent=1))
    storage.append_text(storage.join(workdir, "launches.jsonl"), json.dumps(run_info) + "\n")
  # Plug-ins first: a typo in an episode / builder / loss option fails before any work.
  parts = plugins(cfg)
  impl, needs_ref = parts["spec"].logprob_impl, parts["needs_ref"]
  epochs, num_mb = int(cfg.algo.epochs), int(cfg.algo.num_minibatches)

  # --- data, tokenizer, model -------------------------------------------------------------------
  if not primary:  # process 0 trains and caches the tokenizer first; the others then load it
    multihost.barrier("rlvr_jax:tokenizer")
  train_source, eval_examples, tokenizer, _, prompt_fn = build_inputs(cfg, workdir)
  if primary:
    multihost.barrier("rlvr_jax:tokenizer")
  _check_vocabulary(ckpt, tokenizer.vocab_size)
  rows_skipped = int(getattr(train_source, "num_skipped", 0))
  if rows_skipped:
    say(f"data: {len(train_source)} examples from {train_source.name}; {rows_skipped} bad rows "
        "skipped (see the warning above)")
  # Shardings from the abstract model first, so the params are born sharded: each process reads
  # (or draws) only the slices its devices hold, and no device ever holds the whole model.
  mesh = mesh_lib.make_mesh(dict(cfg.mesh), devices)
  rules = cfg.get("sharding_rules")
  abstract, _ = builders.abstract_model(cfg.model, vocab_size=tokenizer.vocab_size)
  shardings = mesh_lib.param_shardings(nnx.split(abstract)[1], models.logical_axes(abstract), mesh,
                                       rules)
  del abstract
  model, model_cfg = builders.build_model(cfg.model, vocab_size=tokenizer.vocab_size, seed=cfg.seed,
                                          shardings=shardings)
  graphdef, params = nnx.split(model)
  del model
  put_batch = _put_fn(mesh, rules)
  # Rollouts and evaluation sample under the mesh with explicit shardings (data-parallel prompts).
  sampler = parallel_sampler.MeshSampler(mesh, rules, graphdef, shardings, model_cfg)
  say(f"model {model_cfg.family}: {builders.count_params(params) / 1e6:.2f}M params, vocab "
      f"{model_cfg.vocab_size}; tokenizer vocab {tokenizer.vocab_size}; mesh {dict(mesh.shape)}")
  stop.check("while loading data and the model")

  # --- warm start -------------------------------------------------------------------------------
  if int(cfg.sft.steps) > 0:
    with constraints.use_mesh(mesh, rules):
      params, sft_info = sft.warm_start(
          params, graphdef=graphdef, cfg=cfg.sft,
          source=(data_lib.make_source(cfg.sft.data) if cfg.sft.get("data") else train_source),
          tokenizer=tokenizer,
          prompt_fn=prompt_fn, workdir=workdir, seed=cfg.seed, logprob_impl=impl,
          put_batch=put_batch, param_shardings=shardings, replicated=mesh_lib.replicated(mesh),
          log=say, settings=_sft_settings(cfg), should_stop=stop.requested)
    if sft_info.get("stopped"):
      raise Stopped(f"stopped by signal during the warm start, before step "
                    f"{sft_info['step'] + 1}/{sft_info['steps']}; its state is saved in "
                    f"{sft_info['saved']}. Rerun the same command to continue")
    if not sft_info.get("cached"):
      say(f"sft: {sft_info['steps']} steps in {sft_info['time_s']:.1f}s, final loss "
          f"{sft_info['final_loss']:.4f}")
  stop.check("after the warm start", "the warm start is saved in <workdir>/sft")
  ref_params = jax.tree.map(jnp.copy, params) if needs_ref else None

  # --- optimizer, iterator, checkpoint ------------------------------------------------------------
  total_steps = int(cfg.total_steps)
  tx = builders.build_optimizer(cfg.optim, total_steps * epochs * num_mb)
  opt_shardings = step_lib.state_shardings(params, shardings, tx, mesh_lib.replicated(mesh))
  opt_state = jax.jit(tx.init, out_shardings=opt_shardings)(params)
  rl_update = constraints.under_mesh(step_lib.jit_update(
      step_lib.rl_update, param_shardings=shardings, opt_shardings=opt_shardings), mesh, rules)
  num_prompts = int(cfg.rollout.prompts_per_step)
  if num_prompts % jax.process_count():
    raise ValueError(f"config.rollout.prompts_per_step={num_prompts} must be a multiple of the "
                     f"number of processes ({jax.process_count()}): each loads an equal share")
  # Test-time RL trains on the evaluation questions with their labels removed (the warm start
  # above still used the labelled training data); evaluation keeps the labels.
  rl_source = (data_lib.unlabelled_source(eval_examples) if cfg.data.get("test_time")
               else train_source)
  if cfg.data.get("rl_size"):  # RL on the first rl_size rows (the warm start above used them all)
    rl_source = data_lib.SubsetSource(rl_source, int(cfg.data.rl_size))
  if cfg.data.get("labelled_fraction") is not None:  # TraPO: a labelled subset, the rest unlabelled
    rl_source = data_lib.LabelledSplitSource(rl_source, cfg.data.labelled_fraction,
                                             seed=int(cfg.data.train.get("seed") or 0))
  it = data_lib.make_prompt_iterator(rl_source, batch_size=num_prompts // jax.process_count(),
                                     seed=cfg.seed, shard_index=jax.process_index(),
                                     shard_count=jax.process_count())
  state = restore(ckpt, it, RunState(params=params, opt_state=opt_state, ref_params=ref_params),
                  say, fallback=bool(cfg.checkpoint.get("fallback", True)))
  if state.step > total_steps:
    raise validate.ConfigError(
        f"config.total_steps={total_steps} is below the step of the checkpoint this workdir "
        f"resumes ({state.step}, in {ckpt.directory}): nothing would be trained and the results "
        f"would be labelled with the wrong step. Raise config.total_steps to train further, or "
        f"evaluate the checkpoint with python -m experiments.eval --workdir {workdir}")
  if primary:
    dropped = metrics_lib.truncate_rows(storage.join(workdir, "metrics.jsonl"), state.step)
    if dropped:
      say(f"metrics.jsonl: dropped {dropped} row(s) after step {state.step}, written after the "
          "checkpoint this run resumes from")
  env = Env(
      cfg=cfg, workdir=workdir, say=say, primary=primary, tokenizer=tokenizer, prompt_fn=prompt_fn,
      eval_examples=eval_examples, rows_skipped=rows_skipped, graphdef=graphdef,
      model_cfg=model_cfg, mesh=mesh, put_batch=put_batch, sampler=sampler, tx=tx,
      rl_update=rl_update,
      logprob_jit=constraints.under_mesh(step_lib.batch_logprobs, mesh, rules),
      token_stats_jit=constraints.under_mesh(step_lib.batch_token_stats, mesh, rules),
      it=it, ckpt=ckpt,
      audit_gold=({selection.example_key(ex): ex for ex in eval_examples}
                  if cfg.data.get("test_time") else None), **parts)
  env.eval_kwargs = dict(eval_options(cfg, tokenizer, prompt_fn), generate_fn=sampler.generate)
  env.writer = metrics_lib.MetricsWriter(workdir, total_steps=total_steps, enabled=primary,
                                         progress_bar=bool(cfg.log.progress_bar),
                                         first_extra={"run_info": run_info},
                                         extra=_extra_writers(cfg, workdir, run_info, primary))
  return env, state


def _check_vocabulary(ckpt: checkpoint.Checkpointer, vocab_size: int) -> None:
  """A resume whose tokenizer has another vocabulary than the checkpoint's is refused, naming
  both sizes (the config check cannot see it when the tokenizer files changed under the same
  path)."""
  for s in sorted(ckpt.all_steps(), reverse=True):
    try:
      saved = ckpt.read_meta(s).get("extra", {}).get("vocab_size")
    except Exception:  # pylint: disable=broad-except  (a broken step: restore() reports it)
      continue
    if saved is not None and int(saved) != int(vocab_size):
      raise workdir_lib.ConfigChangeError(
          f"the tokenizer of this run has a vocabulary of {vocab_size} tokens; the checkpoint at "
          f"step {s} in {ckpt.directory} was trained with {saved}. Use a new --workdir, or the "
          "tokenizer the checkpoint was trained with")
    return


def _extra_writers(cfg: Any, workdir: str, run_info: Mapping[str, Any], primary: bool) -> tuple:
  """Metrics writers beside metrics.jsonl and TensorBoard: W&B when ``config.log.wandb.mode`` is
  not "disabled" (process 0 only; the run's config and ``run_info`` go into the W&B run config)."""
  settings = cfg.log.get("wandb")
  if not primary or not settings or settings.get("mode", "disabled") == "disabled":
    return ()
  from rlvr_jax.training import wandb_writer  # pylint: disable=import-outside-toplevel
  plain = settings.to_dict() if hasattr(settings, "to_dict") else dict(settings)
  return (wandb_writer.WandbWriter(plain, workdir=workdir,
                                   config=json.loads(cfg.to_json_best_effort()),
                                   run_info=run_info, read_text=storage.read_text,
                                   write_text=storage.write_text),)


class CheckpointError(RuntimeError):
  """No checkpoint of the workdir restores (or the newest does not, with fallback off)."""


def _one_line(e: BaseException, limit: int = 300) -> str:
  text = " ".join(str(e).split()) or "(no message)"
  return f"{type(e).__name__}: {text[:limit]}{'...' if len(text) > limit else ''}"


def restore(ckpt: checkpoint.Checkpointer, it: Any, state: RunState, say: Callable, *,
            fallback: bool = True) -> RunState:
  """``state`` with the newest intact checkpoint's params, optimizer state, step and algorithm
  state (and the data iterator moved to its position); unchanged when there is no checkpoint.

  A checkpoint that fails to restore (truncated or corrupt files) is named with its error in one
  line and moved to ``checkpoints_broken/``; the run resumes from the newest intact one. With
  ``fallback=False`` (``config.checkpoint.fallback``) it refuses instead, naming both.
  """
  steps = sorted(ckpt.all_steps(), reverse=True)
  if not steps:
    return state
  broken: list[tuple[int, str]] = []
  restored = None
  for step in steps:
    try:
      restored = ckpt.restore(step, params=state.params, opt_state=state.opt_state)
      break
    except Exception as e:  # pylint: disable=broad-except  (orbax / tensorstore / json errors)
      broken.append((step, _one_line(e)))
  if restored is None:
    raise CheckpointError(f"no checkpoint in {ckpt.directory} restores: " + "; ".join(
        f"step {s}: {err}" for s, err in broken))
  if broken and not fallback:
    raise CheckpointError(
        f"the newest checkpoint, step {broken[0][0]} in {ckpt.directory}, does not restore "
        f"({broken[0][1]}); the newest intact one is step {restored['step']}. Set "
        "config.checkpoint.fallback=True to resume from it (the broken ones are moved aside)")
  for step, err in broken:
    moved = ckpt.quarantine(step, err) if multihost.is_primary() else "checkpoints_broken/"
    say(f"checkpoint step {step} in {ckpt.directory} does not restore ({err}); moved to {moved}; "
        f"resuming from step {restored['step']}")
  if broken:
    multihost.barrier("rlvr_jax:quarantine")
    ckpt.reload()
  state.params, state.opt_state, state.step = (restored["params"], restored["opt_state"],
                                               restored["step"])
  it.set_state(restored["data_state"])
  if restored["algo_state"] is None:
    say("the checkpoint predates the algorithm state: per-plug-in state starts empty")
  else:
    state.algo_state = restored["algo_state"]
  say(f"resumed from {ckpt.directory} at step {state.step}")
  return state


def update(env: Env, state: RunState, rows: dict[str, np.ndarray],
           rng: np.random.Generator) -> list[dict]:
  """``config.algo.epochs`` x ``num_minibatches`` optimizer steps on the rows (shuffled with
  ``rng`` when ``config.algo.shuffle``); updates ``state`` in place, returns per-update metrics."""
  algo = env.cfg.algo
  n_rows = rows["tokens"].shape[0]
  num_mb = env.num_minibatches
  mb_rows = n_rows // num_mb
  micro = int(algo.micro_batch_size) or n_rows // num_mb
  out = []
  for _ in range(int(algo.epochs)):
    order = rng.permutation(n_rows) if algo.shuffle else np.arange(n_rows)
    for m in range(num_mb):
      idx = np.sort(order[m * mb_rows:(m + 1) * mb_rows]) if num_mb > 1 else order
      mb = env.put_batch({k: v[idx] for k, v in rows.items()})
      state.params, state.opt_state, um = env.rl_update(
          state.params, state.opt_state, mb, graphdef=env.graphdef, tx=env.tx, spec=env.spec,
          num_micro=max(1, mb_rows // min(micro, mb_rows)))
      out.append(um)
  return jax.device_get(out)


def save(env: Env, state: RunState, step_done: int) -> None:
  """Checkpoints ``step_done`` (orbax writes the arrays in the background when
  ``config.checkpoint.async_save``; ``env.ckpt.wait()`` before exit) and makes the metrics written
  so far durable (a remote metrics.jsonl is uploaded here)."""
  env.ckpt.save(step_done, params=state.params, opt_state=state.opt_state,
                data_state=env.it.get_state(), config_json=env.cfg.to_json_best_effort(),
                algo_state=state.algo_state,
                extra={"vocab_size": int(env.tokenizer.vocab_size)})
  env.writer.flush()


def after_step(env: Env, state: RunState, record: RolloutRecord, stats: dict, info: dict,
               update_metrics: list[dict], rows: dict, times: dict, stop: _StopFlag) -> None:
  """Metrics row, quick eval, non-finite accounting, checkpoint, preemption; advances the step."""
  cfg = env.cfg
  total_steps = int(cfg.total_steps)
  record_m = metrics_lib.step_metrics(record, stats, update_metrics, rows, times)
  record_m.update(info)
  per = int(cfg.algo.epochs) * env.num_minibatches
  record_m["lr"] = float(builders.learning_rate_schedule(cfg.optim, env.optimizer_steps)(
      (state.step + 1) * per))
  done = state.step + 1
  if (int(cfg.eval.every) and done % int(cfg.eval.every) == 0 and done < total_steps
      and env.eval_examples):
    quick = evaluator.evaluate(nnx.merge(env.graphdef, state.params), env.tokenizer,
                               env.eval_examples[:int(cfg.eval.every_size)], seed=cfg.seed,
                               **dict(env.eval_kwargs, num_samples=0))
    record_m["eval/greedy_accuracy"] = quick["greedy_accuracy"]
  # A non-finite loss or gradient skips that update inside rl_update (params and optimizer state
  # kept); count such steps and stop once there are too many, leaving the last good checkpoint.
  skipped = int(sum(float(m["nonfinite"]) for m in update_metrics))
  state.nonfinite_steps += int(skipped > 0)
  record_m["nonfinite_updates"] = skipped
  record_m["nonfinite_steps_total"] = state.nonfinite_steps
  env.writer.write(done, record_m)
  state.step = done
  if skipped:
    logging.warning("step %d: %d update(s) with a non-finite loss or gradient were skipped "
                    "(%d such steps so far)", done, skipped, state.nonfinite_steps)
  if state.nonfinite_steps > int(cfg.train.max_nonfinite_steps):
    env.ckpt.wait()
    env.writer.close()
    raise RuntimeError(
        f"step {done}: {state.nonfinite_steps} steps had a non-finite loss or gradient, more than "
        f"config.train.max_nonfinite_steps={cfg.train.max_nonfinite_steps}; stopping. The last "
        f"checkpoint (step {env.ckpt.latest_step()}) in {env.ckpt.directory} is intact.")
  stopping = multihost.any_process(stop.set)  # every process stops at the same step
  if ((int(cfg.checkpoint.every) and done % int(cfg.checkpoint.every) == 0 and not skipped)
      or stopping):
    save(env, state, done)
  every = int((cfg.get("export") or {}).get("every") or 0)
  if cfg.export_hf and every and done % every == 0 and done < total_steps and not stopping:
    export(env, state.params, storage.join(env.workdir, "exports", f"step_{done}"))
  if stopping:
    env.ckpt.wait()
    env.writer.close()
    raise Stopped(f"stopped by signal after step {done}; checkpoint saved. Rerun the same command "
                  "(same --workdir) to resume")


def evaluate(env: Env, state: RunState, samples_file: str | None = None) -> dict:
  """Held-out evaluation; ``samples_file`` (in the workdir, written by process 0) gets every
  completion with its prompt, extracted answer and verdict."""
  samples_path = storage.join(env.workdir, samples_file) if samples_file and env.primary else None
  return evaluator.evaluate(nnx.merge(env.graphdef, state.params), env.tokenizer,
                            env.eval_examples, seed=env.cfg.seed, samples_path=samples_path,
                            **env.eval_kwargs)


def run(config: Any, workdir: str, *, devices: Sequence[Any] | None = None,
        allow_config_changes: bool = False) -> dict:
  """Trains according to ``config``; returns the final eval summary (also in ``eval.json``).

  ``devices``: the devices of the mesh (default: all, which a multi-process run needs); tests pass
  a subset to compare meshes within one process. ``allow_config_changes``: resume a workdir whose
  checkpoint was written with different values of keys that need the flag (``workdir.py``).
  """
  t_start = time.time()
  stop = _StopFlag().install()  # from the first second: loading, warm start, evaluation, RL
  try:
    env, state = setup(config, workdir, devices=devices,
                       allow_config_changes=allow_config_changes, stop=stop)
    try:
      return _run(env, state, t_start, stop)
    finally:
      try:
        env.ckpt.wait()  # an async save still streaming finishes before the process exits
      finally:
        if env.lock is not None:
          env.lock.release()
  except Stopped as e:
    if multihost.is_primary():
      print(str(e), flush=True)
    raise SystemExit(0) from None
  finally:
    stop.uninstall()


def _run(env: Env, state: RunState, t_start: float, stop: _StopFlag) -> dict:
  cfg, workdir, say = env.cfg, env.workdir, env.say
  total_steps, start = int(cfg.total_steps), state.step

  before_path = storage.join(workdir, "eval_before.json")
  before = None
  if env.eval_examples and cfg.eval.before:
    if storage.exists(before_path):
      before = json.loads(storage.read_text(before_path))
    else:
      before = evaluate(env, state, "eval_before_samples.jsonl")
      if env.primary:
        storage.write_text(before_path, json.dumps(before, indent=2))
    say("before RL: " + _eval_line(before))
    stop.check("after the evaluation before RL", "eval_before.json is saved")

  while state.step < total_steps:
    t0 = time.time()
    rng = np.random.default_rng([cfg.seed, state.step])  # all host randomness of this step
    record, stats = collect_lib.collect(env, state, rng)
    t1 = time.time()
    rows, info = collect_lib.prepare_batch(env, state, record)
    t2 = time.time()
    update_metrics = update(env, state, rows, rng)
    t3 = time.time()
    times = {"time_rollout_s": t1 - t0, "time_logprob_s": t2 - t1, "time_update_s": t3 - t2,
             "time_step_s": time.time() - t0}
    after_step(env, state, record, stats, info, update_metrics, rows, times, stop)
  if total_steps > start and env.ckpt.latest_step() != total_steps:
    save(env, state, total_steps)
  env.ckpt.wait()
  env.writer.flush()
  try:
    stop.check("after the last RL step", "its checkpoint is saved; the evaluation after RL and "
               "the export run when the same command is run again")
    return finish(env, state, before, time.time() - t_start)
  finally:
    env.writer.close()  # after finish: its eval summary goes to the writers (W&B) too


def finish(env: Env, state: RunState, before: dict | None, train_time: float) -> dict:
  """Held-out evaluation after RL, the metrics plot, and the export."""
  cfg, say = env.cfg, env.say
  summary: dict[str, Any] = {"steps": int(cfg.total_steps), "train_time_s": train_time,
                             "data_rows_skipped": env.rows_skipped}
  if env.eval_examples and cfg.eval.after:
    after = evaluate(env, state, "eval_samples.jsonl")
    summary.update({"before": before, "after": after})
    if before is not None and "greedy_accuracy" in after:
      summary["greedy_gain_points"] = 100 * (after["greedy_accuracy"] - before["greedy_accuracy"])
    say("after RL:  " + _eval_line(after))
    if before is not None:
      say(f"held-out greedy accuracy: {100 * before['greedy_accuracy']:.1f}% -> "
          f"{100 * after['greedy_accuracy']:.1f}% ({summary['greedy_gain_points']:+.1f} points, "
          f"n={after.get('num_problems', len(env.eval_examples))}, stderr "
          f"{100 * after['greedy_accuracy_stderr']:.1f})")
  if env.primary:
    env.writer.write_summary("eval", summary, env.workdir)
    jsonl = storage.join(env.workdir, "metrics.jsonl")
    if storage.exists(jsonl) and storage.read_text(jsonl).strip():
      try:
        metrics_lib.plot_metrics(jsonl, storage.join(env.workdir, "metrics.png"))
      except ImportError as e:  # matplotlib is an extra; metrics.jsonl has the same numbers
        logging.warning("no metrics.png: %s", e)
  if cfg.export_hf:
    export(env, state.params, storage.join(env.workdir, "export"))
  return summary


def export(env: Env, params: Any, dest: str) -> None:
  """Writes the policy as an HF checkpoint to ``dest`` (export.py). Every process takes part in
  gathering sharded params; process 0 writes them."""
  cfg = env.cfg
  host = multihost.to_host(params) if jax.process_count() > 1 else params
  if env.primary:
    dtype = export_lib.export_dtype(cfg, env.model_cfg)
    source = export_lib.source_checkpoint(cfg)
    export_lib.export_policy(nnx.merge(env.graphdef, host), env.model_cfg, env.tokenizer, dest,
                             dtype=dtype, source=source)
    env.say(f"exported policy to {dest} ({dtype} weights)")

def eval_options(cfg: Any, tokenizer: Any, prompt_fn) -> dict:
  """Keyword arguments of ``evaluator.evaluate`` from ``config.eval`` / ``config.reward``."""
  e = cfg.eval
  steps = e.get("steps_reward")  # a task's step checker as a reward (1 = every step right)
  steps_ok_fn = None
  if steps:
    steps_options = dict(e.get("steps_reward_options") or {})
    steps_ok_fn = lambda texts, examples: evaluator.score(  # noqa: E731
        texts, examples, reward=steps, reward_options=steps_options, threshold=1.0)
  return dict(prompt_fn=prompt_fn, max_new_tokens=int(cfg.rollout.max_new_tokens),
              num_samples=int(e.num_samples), temperature=float(e.temperature),
              top_p=float(e.top_p), ks=list(e.ks) if e.ks else None,
              reward=cfg.reward.correctness or "exact_match",
              reward_options=dict(cfg.reward.correctness_options or {}),
              threshold=float(cfg.reward.threshold), answer_extractor=cfg.reward.answer_extractor,
              batch_size=int(e.batch_size), steps_ok_fn=steps_ok_fn)


def _eval_line(result: Mapping[str, Any]) -> str:
  keys = [k for k in ("greedy_accuracy", "mean_accuracy") if k in result]
  keys += [k for k in result if k.startswith(("pass@", "maj@")) and not k.endswith("_expected")]
  return ", ".join(f"{k} {100 * result[k]:.1f}%" for k in keys) + f" (n={result.get('num_problems')})"
