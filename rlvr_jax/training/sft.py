"""Supervised warm start before RL (the "SFT" stage of R1-style pipelines, here tiny and local).

Trains on (prompt, target) pairs made from the task source: the prompt is the run's templated
question, the target ``config.sft.target`` formatted with the example (default ``"{answer}"``) plus
the tokenizer's end-of-sequence token. ``config.sft.teacher`` picks who writes the target from the
registry `TEACHERS`: "template" (the default: the formatted target, i.e. the reference answer) or an
imperfect demonstrator such as "careless_arithmetic" (RLVR's usual setting: imitation of a flawed
teacher first, then reinforcement against a verifier). The result is cached in ``<workdir>/sft/``
(orbax) with the settings it was made with, so a resumed or repeated run with the same workdir
skips it, and one with different warm-start settings is refused.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from typing import Any, Callable, Mapping

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from flax import nnx

from rlvr_jax import data as data_lib
from rlvr_jax.parallel import multihost
from rlvr_jax.training import batch as batch_lib
from rlvr_jax.training import builders, checkpoint as checkpoint_lib, step as step_lib
from rlvr_jax.training import storage


def format_target(template: str, example: Mapping[str, Any]) -> str:
  try:
    return template.format(**example)
  except (KeyError, IndexError) as e:
    raise ValueError(f"config.sft.target={template!r} needs field {e} that example "
                     f"{example.get('id')!r} does not have (fields: {sorted(example)})") from None


# ------------------------------------------------------------------------------------------------
# Teachers: who writes the warm-start targets
# ------------------------------------------------------------------------------------------------

Teacher = Callable[..., str]
TEACHERS: dict[str, Teacher] = {}


def register_teacher(name: str):
  def wrap(fn: Teacher) -> Teacher:
    if name in TEACHERS:
      raise ValueError(f"teacher {name!r} is already registered")
    TEACHERS[name] = fn
    return fn
  return wrap


@register_teacher("template")
def template_teacher(example: Mapping[str, Any], *, target: str) -> str:
  """The reference target: ``config.sft.target`` formatted with the example's fields."""
  return format_target(target, example)


def _uniform(example: Mapping[str, Any], seed: int) -> float:
  """A per-example number in [0, 1) fixed by the example's id (or question) and ``seed``."""
  key = f"{seed}:{example.get('id', example.get('question'))}".encode()
  return int.from_bytes(hashlib.sha256(key).digest()[:8], "little") / 2.0**64


def careless_add(a: int, b: int) -> int:
  """a + b (a, b >= 0) column by column, forgetting every carry: 78 + 45 -> 113."""
  out, place = 0, 1
  while a >= 10 or b >= 10:
    out += ((a % 10 + b % 10) % 10) * place
    a, b, place = a // 10, b // 10, place * 10
  return out + (a + b) * place


def careless_sub(a: int, b: int) -> int:
  """a - b (a, b >= 0) column by column, taking the smaller digit from the larger instead of
  borrowing (the classic "smaller-from-larger" error): 52 - 38 -> 26; a < b gives -(b ~ a)."""
  if a < b:
    return -careless_sub(b, a)
  out, place = 0, 1
  while a or b:
    out += abs(a % 10 - b % 10) * place
    a, b, place = a // 10, b // 10, place * 10
  return out


_BINARY = re.compile(r"^\s*(\d+)\s*([+-])\s*(\d+)\s*=?\s*$")


@register_teacher("careless_arithmetic")
def careless_arithmetic_teacher(example: Mapping[str, Any], *, target: str, error_rate: float = 0.6,
                                seed: int = 0, prefix: str = "") -> str:
  """A student-like demonstrator for ``a + b`` / ``a - b`` questions (reasoning-gym chain_sum with
  two terms): on a fixed fraction ``error_rate`` of the examples (chosen by hashing the example id
  with ``seed``) it forgets carries (`careless_add`) or borrows (`careless_sub`); otherwise, and
  whenever the slip changes nothing, it gives the reference target. Only carry/borrow problems can
  be wrong, so a model imitating it is wrong on those more often than right, while its samples
  still contain the correct column rule: headroom that a verifier-driven RL stage can recover.

  ``prefix`` is removed from the question before parsing (e.g. chain_sum's instruction). A
  question that is not ``<int> <+|-> <int> [=]`` raises ValueError naming the example.
  """
  question = str(example["question"])
  if prefix and question.startswith(prefix):
    question = question[len(prefix):]
  m = _BINARY.match(question)
  if m is None:
    raise ValueError(f"careless_arithmetic teacher: example {example.get('id')!r} has question "
                     f"{example['question']!r}, not '<int> + <int>' or '<int> - <int>'")
  if _uniform(example, seed) >= error_rate:
    return format_target(target, example)
  a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
  wrong = careless_add(a, b) if op == "+" else careless_sub(a, b)
  return format_target(target, {**example, "answer": str(wrong)})


@register_teacher("careless_scratchpad")
def careless_scratchpad_teacher(example: Mapping[str, Any], *, target: str, error_rate: float = 0.6,
                                repeat_rate: float = 0.0, seed: int = 0, prefix: str = "") -> str:
  """Column scratchpads for ``a + b`` / ``a - b`` (`rlvr_jax.rewards.scratchpad`): on a fixed
  fraction ``error_rate`` of the examples (hashed with ``seed``, as `careless_arithmetic_teacher`)
  the careless lines (carries forgotten, smaller digit from the larger), otherwise the careful ones;
  each line is written twice with probability ``repeat_rate`` (fixed per example and line), so the
  demonstrations vary in length without changing their content. ``target`` is ignored: the
  scratchpad is the target. A question that is not ``<int> <+|-> <int>`` raises ValueError.
  """
  del target
  from rlvr_jax.rewards import scratchpad  # pylint: disable=import-outside-toplevel
  try:
    a, op, b = scratchpad.parse_question(example["question"], prefix)
  except ValueError as err:
    raise ValueError(f"careless_scratchpad teacher: example {example.get('id')!r}: {err}") from None
  careless = _uniform(example, seed) < error_rate
  lines = (scratchpad.careless_steps if careless else scratchpad.column_steps)(a, op, b)
  repeats = [int(_uniform({"id": f"{example.get('id', example.get('question'))}:{i}"}, seed + 1)
                 < repeat_rate) for i in range(len(lines))]
  return scratchpad.render(lines, repeats)


def make_teacher(cfg: Any) -> Callable[[Mapping[str, Any]], str]:
  """``example -> target text`` for the ``config.sft`` section (teacher name and options)."""
  name = cfg.get("teacher", "template") or "template"
  if name not in TEACHERS:
    raise ValueError(f"config.sft.teacher={name!r} is not registered; choose from {sorted(TEACHERS)}")
  options = cfg.get("teacher_options") or {}
  options = options.to_dict() if hasattr(options, "to_dict") else dict(options)
  fn = TEACHERS[name]

  def teacher(example: Mapping[str, Any]) -> str:
    # Rows that carry their own supervised target (e.g. judge_pairs) get the reference answer
    # from every teacher: a careless demonstrator only makes sense for the task it imitates.
    if (example.get("metadata") or {}).get("reference_target"):
      return format_target(cfg.target, example)
    return fn(example, target=cfg.target, **options)

  return teacher


def _check_settings(path: str, settings: Mapping[str, Any] | None, directory: str) -> None:
  if settings is None:
    return
  if not storage.exists(path):
    logging.warning("sft: %s has no settings.json (made by an older version); reusing it unchecked",
                    directory)
    return
  cached = json.loads(storage.read_text(path))
  differ = sorted(k for k in set(cached) | set(settings) if cached.get(k) != settings.get(k))
  if differ:
    raise ValueError(f"the cached warm start in {directory} was made with different settings "
                     f"({', '.join(differ)}); use a new --workdir or delete {directory}")


def _write_settings(path: str, settings: Mapping[str, Any]) -> None:
  storage.write_text(path, json.dumps(settings, indent=1, sort_keys=True))


def warm_start(params: nnx.State, *, graphdef: nnx.GraphDef, cfg: Any, source: Any, tokenizer: Any,
               prompt_fn: Callable[[Mapping], list[int]], workdir: str, seed: int,
               logprob_impl: str | None, put_batch: Callable[[dict], dict],
               param_shardings: Any = None, replicated: Any = None,
               log: Callable[[str], None] = print,
               settings: Mapping[str, Any] | None = None,
               should_stop: Callable[[], bool] | None = None) -> tuple[nnx.State, dict]:
  """Runs ``cfg.steps`` supervised steps (or restores the cached result). Returns (params, info).

  ``settings`` (JSON-able: the config sections the warm start depends on) is stored next to the
  cached params; a later run in the same workdir whose settings differ gets a ValueError naming
  the differing entries instead of silently reusing a warm start made for another config.

  ``should_stop()`` is asked before every step (a signal reached the run): the warm start then saves
  its params, optimizer state and data position in ``<workdir>/sft/partial`` and returns with
  ``info["stopped"]``; the next call with the same settings continues from that step, with the
  same batches as an uninterrupted run.
  """
  directory = storage.join(storage.resolve(workdir), "sft")  # local or gs://
  checkpointer = ocp.StandardCheckpointer()
  done = storage.join(directory, "params")
  settings_path = storage.join(directory, "settings.json")
  settings = None if settings is None else json.loads(json.dumps(settings, sort_keys=True, default=str))
  if storage.isdir(done):
    _check_settings(settings_path, settings, directory)
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
                            params)
    restored = checkpointer.restore(done, abstract)
    log(f"sft: reusing warm start from {done}")
    return restored, {"cached": True}

  steps = int(cfg.steps)
  partial = checkpoint_lib.Checkpointer(storage.join(directory, "partial"), max_to_keep=1)
  tx = builders.build_optimizer(cfg.optim, steps)
  opt_shardings = (None if param_shardings is None else
                   step_lib.state_shardings(params, param_shardings, tx, replicated))
  opt_state = jax.jit(tx.init, out_shardings=opt_shardings)(params)
  update = step_lib.jit_update(step_lib.sft_update, param_shardings=param_shardings,
                               opt_shardings=opt_shardings)
  # Each process reads 1/S of the batch; the gathered global batch is the one a single process reads.
  if int(cfg.batch_size) % jax.process_count():
    raise ValueError(f"config.sft.batch_size={cfg.batch_size} must be a multiple of the number of "
                     f"processes ({jax.process_count()})")
  it = data_lib.make_prompt_iterator(source, batch_size=int(cfg.batch_size) // jax.process_count(),
                                     seed=seed + 1, shard_index=jax.process_index(),
                                     shard_count=jax.process_count())
  eos = list(tokenizer.eos_ids[:1])
  teacher = make_teacher(cfg)
  micro = int(cfg.get("micro_batch_size", 0) or cfg.batch_size)
  if int(cfg.batch_size) % micro:
    raise ValueError(f"config.sft.batch_size={cfg.batch_size} is not a multiple of "
                     f"config.sft.micro_batch_size={micro}")
  start = 0
  if partial.latest_step() is not None:
    _check_settings(settings_path, settings, directory)
    restored = partial.restore(None, params=params, opt_state=opt_state)
    params, opt_state, start = restored["params"], restored["opt_state"], restored["step"]
    it.set_state(restored["data_state"])
    log(f"sft: continuing the warm start at step {start}/{steps} from {partial.directory}")
  t0 = time.time()
  losses = []
  for i in range(start, steps):
    if should_stop is not None and should_stop():
      if settings is not None and jax.process_index() == 0:
        _write_settings(settings_path, settings)
      partial.save(i, params=params, opt_state=opt_state, data_state=it.get_state(),
                   config_json="{}")
      partial.close()
      return params, {"cached": False, "stopped": True, "step": i, "steps": steps,
                      "saved": partial.directory}
    examples = next(it)
    prompts = [prompt_fn(ex) for ex in examples]
    targets = [tokenizer.encode(teacher(ex)) + eos for ex in examples]
    if jax.process_count() > 1:
      pairs = multihost.gather_rows([[p, t] for p, t in zip(prompts, targets)])
      prompts, targets = [p for p, _ in pairs], [t for _, t in pairs]
    batch = batch_lib.supervised_batch(
        prompts, targets, pad_id=tokenizer.pad_id,
        prompt_len=batch_lib.bucket(max(map(len, prompts))),
        response_len=batch_lib.bucket(max(map(len, targets)), multiple=8))
    params, opt_state, metrics = update(
        params, opt_state, put_batch(batch), graphdef=graphdef, tx=tx, impl=logprob_impl,
        num_micro=int(cfg.batch_size) // micro)
    if (i + 1) % int(cfg.get("log_every", 50)) == 0 or i + 1 == steps:
      loss = float(metrics["loss"])
      losses.append(loss)
      log(f"sft step {i + 1}/{steps} | loss {loss:.4f} | {time.time() - t0:.1f}s")
  # Block before saving so the timing covers the work, then write atomically.
  params = jax.block_until_ready(params)
  elapsed = time.time() - t0
  if settings is not None and jax.process_index() == 0:
    _write_settings(settings_path, settings)
  checkpointer.save(done, params)
  checkpointer.wait_until_finished()
  partial.close()
  if jax.process_index() == 0:  # the finished warm start replaces its partial state
    storage.rmtree(partial.directory)
  return params, {"cached": False, "steps": steps, "time_s": elapsed,
                  "final_loss": losses[-1] if losses else float("nan")}
