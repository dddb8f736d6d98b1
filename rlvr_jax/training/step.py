"""The jitted pieces of an RL step: response log-probs, the policy update, and the SFT update.

Everything here is a pure function of (params, optimizer state, batch). The update is ONE jitted
function per (shape bucket, loss spec): it splits the mini-batch into micro-batches with
``lax.scan``, sums gradients that are already normalised by the mini-batch's GLOBAL token /
sequence counts (``rlvr_jax.algorithms.global_normalizers``), so the result does not depend on the
micro-batch size, then applies one optax update. Params and optimizer state are donated.

Log-probs always go through ``rlvr_jax.kernels.logprob`` on the final hidden states, so the
[tokens, vocab] logits tensor is never materialised in training.

Batch layout (all leading dim = rows; prompts left-padded to Tp, responses right-padded to Tn):
  tokens    int32 [B, Tp + Tn]   prompt then response tokens
  positions int32 [B, Tp + Tn]   0.. over real tokens (left padding gets 0)
  attn_mask bool  [B, Tp + Tn]   real tokens
  response  int32 [B, Tn]        = tokens[:, Tp:]
  mask      f32   [B, Tn]        1 on response tokens that are trained on
  advantages f32  [B] or [B, Tn]
  old_logp  f32   [B, Tn]        (absent when strictly on-policy: ratio = 1 by construction)
  ref_logp  f32   [B, Tn]        (only with a KL term)
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jaxtyping import Array, Float, Int

from rlvr_jax import algorithms
from rlvr_jax import kernels
from rlvr_jax import sampling
from rlvr_jax.parallel.constraints import constrain


@dataclasses.dataclass(frozen=True)
class LossSpec:
  """Static (hashable) description of the policy objective; one compiled update per spec."""
  loss: str = "ppo_clip"
  agg_mode: str = "token-mean"
  clip_low: float | None = 0.2
  clip_high: float | None = 0.2
  dual_clip: float | None = None
  kl_coef: float = 0.0
  kl_estimator: str = "k3"
  entropy_coef: float = 0.0
  norm_constant: float | None = None
  # A float, or (T0, T1, schedule, max_new_tokens) for a per-position sampling temperature
  # schedule (rlvr_jax.sampling.position_temperature), which the learner then reproduces.
  temperature: float | tuple = 1.0
  logprob_impl: str | None = None
  on_policy: bool = False  # old_logp = sg(logp): one epoch, one mini-batch, no extra forward
  # config.algo.loss_options as sorted (key, value) pairs (hashable: one compile per setting).
  loss_options: tuple = ()
  # config.algo.aux_losses as (name, weight, sorted option pairs) triples.
  aux: tuple = ()

  @property
  def options(self) -> dict:
    return dict(self.loss_options)


def freeze(value):
  """A config value as a hashable one (lists -> tuples, dicts -> sorted item tuples)."""
  if hasattr(value, "to_dict"):
    value = value.to_dict()
  if isinstance(value, dict):
    return tuple(sorted((k, freeze(v)) for k, v in value.items()))
  if isinstance(value, (list, tuple)):
    return tuple(freeze(v) for v in value)
  return value


def response_logprobs(model: nnx.Module, tokens: Int[Array, "B T"], positions: Int[Array, "B T"],
                      attn_mask: Array, response: Int[Array, "B R"], *, temperature: float,
                      impl: str | None) -> tuple[Float[Array, "B R"], Float[Array, "B R"]]:
  """log pi(response_t | prefix) and the entropy at each response position (float32).

  ``temperature`` is a float or a schedule tuple ``(T0, T1, schedule, N)``: response position t
  then uses the sampler's temperature T_t (``sampling.position_temperature``), applied by scaling
  that position's hidden state by 1 / T_t (the logits are linear in it)."""
  b, r = response.shape
  t = tokens.shape[1]
  hidden = model.hidden_states(tokens, positions=positions, attention_mask=attn_mask)  # [B, T, D]
  # Position j predicts token j + 1: the response tokens [T - R, T) come from hidden [T-R-1, T-1).
  hidden = hidden[:, t - r - 1:t - 1]  # [B, R, D]
  hidden, temperature = scheduled_hidden(hidden, temperature)
  logp, ent = kernels.logprob(hidden.reshape(b * r, -1), model.unembed_weight(),
                              response.reshape(b * r), temperature=temperature,
                              implementation=impl)
  return logp.reshape(b, r), ent.reshape(b, r)


def scheduled_hidden(hidden: Float[Array, "B R D"], temperature) -> tuple[Array, float]:
  """(hidden, kernel temperature): a float temperature is left to the kernel; a schedule tuple
  scales position t's hidden state by 1 / T_t and returns temperature 1."""
  if not isinstance(temperature, tuple):
    return hidden, temperature
  temps = sampling.position_temperature(temperature, jnp.arange(hidden.shape[1]))  # [R]
  scale = (1.0 / jnp.asarray(temps, jnp.float32)).astype(hidden.dtype)
  return hidden * scale[None, :, None], 1.0


def _split_micro(batch: dict[str, Array], num_micro: int) -> dict[str, Array]:
  """[B, ...] -> [num_micro, B / num_micro, ...] with micro-batch k = rows k, k + num_micro, ...

  Strided, not contiguous: a batch sharded over devices in contiguous row blocks then gives every
  device an equal slice of every micro-batch (no resharding, all devices busy in each scan step).
  The loss uses global counts, so which rows share a micro-batch does not change the result.
  """
  def one(x):
    if x.shape[0] % num_micro:
      raise ValueError(f"mini-batch of {x.shape[0]} rows does not split into {num_micro} micro-batches")
    x = x.reshape((x.shape[0] // num_micro, num_micro) + x.shape[1:]).swapaxes(0, 1)
    return constrain(x, (None, "batch") + (None,) * (x.ndim - 2))
  return {k: one(v) for k, v in batch.items()}


def _merge_micro(x: Array) -> Array:
  """Inverse of `_split_micro` for one array: [num_micro, B / num_micro, ...] -> [B, ...]."""
  return x.swapaxes(0, 1).reshape((-1,) + x.shape[2:])


def _combine(acc: dict[str, Array], new: dict[str, Array]) -> dict[str, Array]:
  out = {}
  for k, v in new.items():
    if k.endswith("_max"):
      out[k] = jnp.maximum(acc[k], v)
    elif k.endswith("_min"):
      out[k] = jnp.minimum(acc[k], v)
    else:
      out[k] = acc[k] + v
  return out


def _metric_init(template: dict[str, Array]) -> dict[str, Array]:
  out = {}
  for k, v in template.items():
    fill = -jnp.inf if k.endswith("_max") else jnp.inf if k.endswith("_min") else 0.0
    out[k] = jnp.full(v.shape, fill, v.dtype)
  return out


def policy_loss_fn(params: nnx.State, micro: dict[str, Array], *, graphdef: nnx.GraphDef,
                   norms: dict[str, Array], spec: LossSpec):
  model = nnx.merge(graphdef, params)
  logp, ent = response_logprobs(model, micro["tokens"], micro["positions"], micro["attn_mask"],
                                micro["response"], temperature=spec.temperature,
                                impl=spec.logprob_impl)
  old_logp = jax.lax.stop_gradient(logp) if spec.on_policy else micro["old_logp"]
  loss, metrics = algorithms.policy_loss(
      spec.loss, logp, old_logp, micro["advantages"], micro["mask"], agg_mode=spec.agg_mode,
      clip_low=spec.clip_low, clip_high=spec.clip_high, dual_clip=spec.dual_clip,
      ref_logp=micro.get("ref_logp"), kl_coef=spec.kl_coef, kl_estimator=spec.kl_estimator,
      entropy=ent, entropy_coef=spec.entropy_coef, global_tokens=norms["global_tokens"],
      global_seqs=norms["global_seqs"], norm_constant=spec.norm_constant,
      behaviour_logp=micro.get("behaviour_logp"), old_max_logp=micro.get("old_max_logp"),
      old_minp_logmass=micro.get("old_minp_logmass"), batch_stats=norms.get("batch_stats"),
      **spec.options)
  for name, weight, options in spec.aux:
    aux_batch = dict(micro, entropy=ent)
    aux_loss, aux_metrics = algorithms.AUX_LOSSES[name](
        logp, micro["mask"], aux_batch, global_tokens=norms["global_tokens"],
        global_seqs=norms["global_seqs"], **dict(options))
    loss = loss + weight * aux_loss
    metrics = dict(metrics, **{f"aux/{name}/{k}": v for k, v in aux_metrics.items()})
    metrics["loss"] = loss
  return loss, metrics


def _accumulate(loss_fn, params, micro_batches, num_micro: int):
  """Sum of per-micro-batch grads and combined metrics, via lax.scan (one compiled body)."""
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  if num_micro == 1:
    (_, metrics), grads = grad_fn(params, jax.tree.map(lambda x: x[0], micro_batches))
    return grads, metrics
  # Zero-initialised carries keep the gradient body in the scan only (compiled once).
  first = jax.tree.map(lambda x: x[0], micro_batches)
  metric_shapes = jax.eval_shape(lambda: grad_fn(params, first)[0][1])
  init = (jax.tree.map(jnp.zeros_like, params), _metric_init(metric_shapes))

  def body(carry, micro):
    grads, metrics = carry
    (_, m), g = grad_fn(params, micro)
    return (jax.tree.map(jnp.add, grads, g), _combine(metrics, m)), None

  (grads, metrics), _ = jax.lax.scan(body, init, micro_batches)
  return grads, metrics


def rl_update(params: nnx.State, opt_state: Any, batch: dict[str, Array], *,
              graphdef: nnx.GraphDef, tx: optax.GradientTransformation, spec: LossSpec,
              num_micro: int):
  """One optimizer step on one mini-batch (split into ``num_micro`` micro-batches)."""
  norms = algorithms.global_normalizers(batch["mask"])
  prepare = algorithms.POLICY_LOSSES[spec.loss].prepare
  if prepare is not None:
    norms["batch_stats"] = _batch_stats(prepare, params, batch, graphdef=graphdef, spec=spec,
                                        num_micro=num_micro)
  micro = _split_micro(batch, num_micro)
  loss_fn = functools.partial(policy_loss_fn, graphdef=graphdef, norms=norms, spec=spec)
  grads, metrics = _accumulate(loss_fn, params, micro, num_micro)
  return _apply(params, opt_state, grads, metrics, tx)


def _batch_stats(prepare, params, batch, *, graphdef, spec: LossSpec, num_micro: int):
  """The loss's ``prepare`` over the WHOLE mini-batch: the current policy's log-probs and
  entropies of every row (one no-gradient forward, micro-batched like the update), so a statistic
  such as an entropy quantile does not depend on how the mini-batch is split."""
  logp, ent = _logprobs_of(jax.lax.stop_gradient(params), batch, graphdef=graphdef,
                           temperature=spec.temperature, impl=spec.logprob_impl,
                           num_micro=num_micro)
  old_logp = logp if spec.on_policy else batch["old_logp"]
  stats = prepare(logp=logp, entropy=ent, mask=batch["mask"], old_logp=old_logp,
                  advantages=batch["advantages"],
                  **algorithms.prepare_options(spec.loss, spec.options))
  return jax.tree.map(jax.lax.stop_gradient, stats)


def jit_update(fn, *, param_shardings: Any = None, opt_shardings: Any = None):
  """``jax.jit`` of ``rl_update`` / ``sft_update`` with donated state and pinned state shardings.

  Pinning the output shardings to the input ones keeps the compiled program's cache key stable
  from step to step (GSPMD may otherwise normalise e.g. P(None,) to P() and force a recompile).
  """
  statics = ("graphdef", "tx", "num_micro") + (("spec",) if fn is rl_update else ("impl",))
  out = None if param_shardings is None else (param_shardings, opt_shardings, None)
  return jax.jit(fn, static_argnames=statics, donate_argnames=("params", "opt_state"),
                 out_shardings=out)


def state_shardings(params: Any, param_shardings: Any, tx: optax.GradientTransformation,
                    replicated: Any) -> Any:
  """Shardings of ``tx.init(params)``: every sub-tree shaped like the params (Adam's mu, nu, ...)
  is sharded like the params; everything else (step counts) is replicated."""
  treedef = jax.tree.structure(params)

  def like_params(x):
    try:
      return jax.tree.structure(x) == treedef
    except Exception:  # pylint: disable=broad-except
      return False

  abstract = jax.eval_shape(tx.init, params)
  return jax.tree.map(lambda x: param_shardings if like_params(x) else replicated, abstract,
                      is_leaf=like_params)


def _apply(params, opt_state, grads, metrics, tx):
  """The optax step, skipped (params and optimizer state kept) when the loss or a gradient is not
  finite; ``metrics["nonfinite"]`` is 1 for a skipped step so the loop can count and stop."""
  updates, new_opt_state = tx.update(grads, opt_state, params)
  new_params = optax.apply_updates(params, updates)
  grad_norm = optax.global_norm(grads)
  finite = jnp.isfinite(metrics["loss"]) & jnp.isfinite(grad_norm)
  keep = lambda new, old: jnp.where(finite, new, old)
  params = jax.tree.map(keep, new_params, params)
  opt_state = jax.tree.map(keep, new_opt_state, opt_state)
  metrics = dict(metrics)
  metrics["grad_norm"] = grad_norm
  metrics["param_norm"] = optax.global_norm(params)
  metrics["update_norm"] = jnp.where(finite, optax.global_norm(updates), 0.0)
  metrics["nonfinite"] = 1.0 - finite.astype(jnp.float32)
  return params, opt_state, metrics


@functools.partial(jax.jit, static_argnames=("graphdef", "temperature", "impl", "num_micro"))
def batch_logprobs(params: nnx.State, batch: dict[str, Array], *, graphdef: nnx.GraphDef,
                   temperature: float, impl: str | None, num_micro: int):
  """Response log-probs and entropies [B, Tn] of a whole rollout batch (old / reference policy)."""
  return _logprobs_of(params, batch, graphdef=graphdef, temperature=temperature, impl=impl,
                      num_micro=num_micro)


def _logprobs_of(params, batch, *, graphdef, temperature, impl, num_micro):
  keys = ("tokens", "positions", "attn_mask", "response")
  micro = _split_micro({k: batch[k] for k in keys}, num_micro)
  model = nnx.merge(graphdef, params)

  def one(mb):
    return response_logprobs(model, mb["tokens"], mb["positions"], mb["attn_mask"], mb["response"],
                             temperature=temperature, impl=impl)

  logp, ent = jax.lax.map(one, micro)  # [num_micro, B / num_micro, Tn]
  return _merge_micro(logp), _merge_micro(ent)


@functools.partial(jax.jit, static_argnames=("graphdef", "temperature", "impl", "num_micro",
                                             "minp_kappa"))
def batch_token_stats(params: nnx.State, batch: dict[str, Array], *, graphdef: nnx.GraphDef,
                      temperature: float, impl: str | None, num_micro: int,
                      minp_kappa: float | None = None):
  """Per-token statistics [B, Tn] of a rollout batch: ``logp``, ``entropy``, ``self_certainty``
  (``algorithms.self_certainty_from_logp``), ``max_logp`` (``max_logprob_from_logp``) and, with
  ``minp_kappa``, ``minp_logmass`` (``minp_logmass_from_logp``), all without the [N, V] logits."""
  keys = ("tokens", "positions", "attn_mask", "response")
  micro = _split_micro({k: batch[k] for k in keys}, num_micro)
  model = nnx.merge(graphdef, params)

  def one(mb):
    b, r = mb["response"].shape
    t = mb["tokens"].shape[1]
    hidden = model.hidden_states(mb["tokens"], positions=mb["positions"],
                                 attention_mask=mb["attn_mask"])[:, t - r - 1:t - 1]  # [B, R, D]
    hidden, temp = scheduled_hidden(hidden, temperature)
    hidden = hidden.reshape(b * r, -1)
    weight = model.unembed_weight()
    targets = mb["response"].reshape(b * r)
    logp, ent = kernels.logprob(hidden, weight, targets, temperature=temp, implementation=impl)
    sc = algorithms.self_certainty_from_logp(hidden, weight, targets, logp, temp)
    mx = algorithms.max_logprob_from_logp(hidden, weight, targets, logp, temp)
    mass = (algorithms.minp_logmass_from_logp(hidden, weight, targets, logp, mx, minp_kappa, temp)
            if minp_kappa is not None else jnp.zeros_like(mx))
    return (logp.reshape(b, r), ent.reshape(b, r), sc.reshape(b, r), mx.reshape(b, r),
            mass.reshape(b, r))

  logp, ent, sc, mx, mass = jax.lax.map(one, micro)
  out = {"logp": _merge_micro(logp), "entropy": _merge_micro(ent),
         "self_certainty": _merge_micro(sc), "max_logp": _merge_micro(mx)}
  if minp_kappa is not None:
    out["minp_logmass"] = _merge_micro(mass)
  return out


def sft_loss_fn(params: nnx.State, micro: dict[str, Array], *, graphdef: nnx.GraphDef,
                norms: dict[str, Array], impl: str | None):
  """Token-mean negative log-likelihood of the response tokens (global token count)."""
  model = nnx.merge(graphdef, params)
  logp, _ = response_logprobs(model, micro["tokens"], micro["positions"], micro["attn_mask"],
                              micro["response"], temperature=1.0, impl=impl)
  mask = micro["mask"]
  nll = -jnp.sum(logp * mask) / jnp.maximum(norms["global_tokens"], 1.0)
  metrics = {"loss": nll, "tokens": jnp.sum(mask)}
  return nll, metrics


def sft_update(params: nnx.State, opt_state: Any, batch: dict[str, Array], *,
               graphdef: nnx.GraphDef, tx: optax.GradientTransformation, impl: str | None,
               num_micro: int):
  """One supervised (warm-start) optimizer step on the response tokens of ``batch``."""
  norms = algorithms.global_normalizers(batch["mask"])
  micro = _split_micro(batch, num_micro)
  loss_fn = functools.partial(sft_loss_fn, graphdef=graphdef, norms=norms, impl=impl)
  grads, metrics = _accumulate(loss_fn, params, micro, num_micro)
  return _apply(params, opt_state, grads, metrics, tx)
