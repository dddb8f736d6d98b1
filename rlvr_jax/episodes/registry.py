"""The episode registry: ``EPISODES[name](ctx, examples, prompts, counts, **options) -> record``.

An episode turns the step's examples (global, the same on every process) and their prompt token
ids into a `RolloutRecord`, using only what its `EpisodeContext` offers (sample, score, log-probs).
``counts`` is the allocator's per-prompt rollout count (None: the config's G for every prompt).
``options`` come from ``config.episode.options``; an unknown option is an error naming the episode
and the options it accepts.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping

EpisodeFn = Callable[..., Any]

EPISODES: dict[str, EpisodeFn] = {}

_POSITIONAL = ("ctx", "examples", "prompts", "counts")


def register_episode(name: str) -> Callable[[EpisodeFn], EpisodeFn]:
  """Adds ``fn(ctx, examples, prompts, counts=None, **options) -> RolloutRecord``."""

  def wrap(fn: EpisodeFn) -> EpisodeFn:
    if name in EPISODES:
      raise ValueError(f"episode {name!r} is already registered")
    EPISODES[name] = fn
    return fn

  return wrap


def options_of(fn: Callable, skip: tuple[str, ...]) -> list[str]:
  """The keyword options a plug-in accepts (its parameters minus the ones the engine passes)."""
  return [k for k, p in inspect.signature(fn).parameters.items()
          if k not in skip and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]


def check_options(kind: str, name: str, fn: Callable, options: Mapping[str, Any],
                  skip: tuple[str, ...]) -> dict[str, Any]:
  """``options`` as a dict; an unknown key is a ValueError listing the accepted ones."""
  options = dict(options.to_dict() if hasattr(options, "to_dict") else options or {})
  params = inspect.signature(fn).parameters
  if any(p.kind is p.VAR_KEYWORD for p in params.values()):
    return options
  valid = options_of(fn, skip)
  unknown = sorted(set(options) - set(valid))
  if unknown:
    raise ValueError(f"{kind} {name!r} got unknown options {unknown}; it accepts {valid}")
  return options


def get_episode(name: str, options: Mapping[str, Any] | None = None) -> tuple[EpisodeFn, dict]:
  """The registered episode and its checked options (config.episode.name / .options)."""
  if name not in EPISODES:
    raise ValueError(f"config.episode.name={name!r} is not a registered episode; choose one of "
                     f"{sorted(EPISODES)}")
  fn = EPISODES[name]
  return fn, check_options("episode", name, fn, options or {}, _POSITIONAL)
