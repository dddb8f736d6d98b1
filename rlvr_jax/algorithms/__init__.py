"""RL algorithm core: advantage estimators, policy losses, KL regularisers, loss aggregation.

Every piece is a small pure jnp function in a flat registry, selected by name from the config
(docs/adding_a_method.md shows how to add each kind). All are jittable; pass names and mode strings as static
Python values.

Contracts used by the trainer
-----------------------------
``compute_advantages(name, rewards, **options)``
    rewards float [P, G] (P prompts x G samples, samples of one prompt adjacent when flattened)
    -> advantages [P, G]. Registry ``ADVANTAGES`` (``grpo``, ``dr_grpo``, ``rloo``,
    ``reinforce_pp``, ``reinforce_pp_baseline``), decorator ``register_advantage(name)``.
    Group-baseline estimators give exactly 0 for degenerate groups (equal rewards, G = 1).
    Per-token advantages: ``token_advantages(name, token_rewards [N, T], mask, **options)`` with
    ``TOKEN_ADVANTAGES`` (``returns``, ``reinforce_pp``); feed the [N, T] result to ``policy_loss``.

``policy_loss(name, logp, old_logp, advantages, mask, **options) -> (loss, metrics)``
    logp / old_logp / mask [N, T], advantages [N] or [N, T]. Registry ``POLICY_LOSSES``
    (``ppo_clip``, ``gspo``, ``cispo``). Options: clip_low, clip_high, dual_clip, agg_mode,
    ref_logp, kl_coef, kl_estimator, entropy, entropy_coef, global_tokens, global_seqs,
    norm_constant (Dr. GRPO's constant, default T).
    Micro-batching: compute ``global_normalizers(full_mask)`` once per mini-batch and pass its
    ``global_tokens`` / ``global_seqs`` to every micro-batch call; then the SUM of the micro-batch
    losses (and gradients) equals the full-batch loss (gradient) for every ``agg_mode``.
    Metrics are flat dicts of scalars, already divided by the global counts: the full-batch value is
    the SUM over micro-batches / devices, except ``*_max`` (max) and ``*_min`` (min);
    ``combine_metrics`` (list of dicts) and ``reduce_metrics`` (collective over a mesh axis) do it.

KL: ``KL_ESTIMATORS`` (k1, k2, k3, k3+ and verl aliases), ``kl_estimate``; KL subtracted from the
reward: ``kl_in_reward`` (per-token rewards [N, T]) and ``sequence_reward_minus_kl`` ([N]); the
forward direction (DPH-RL) on rehearsal samples of the initial policy: ``FORWARD_DIVERGENCES``,
``forward_kl_loss``; RAPO's forward KL to a reward-tilted reference on the policy's own samples:
``reward_tilt``, ``rapo_forward_kl`` (aux loss ``rapo_forward_kl``).

Trainer-facing forms (``estimate``): an estimator registered in row form,
``fn(rewards [N], *, group_ids [N], <side inputs it names>, **options)``, sees a rollout record's
rows whatever their grouping (ragged groups, roles, turns) plus side inputs (``SIDE_INPUTS``) and
its own persistent ``state`` dict, and returns [N], [N, T] or an ``AdvantageOutput``. Built-in
row-form estimators: ``reinforce_pp_token`` (per-token REINFORCE++), ``role_baseline`` (SPIRAL's
RAE). Losses receive ``config.algo.loss_options`` (``check_loss_options``), the side inputs they
name (``LOSS_SIDE_INPUTS``: entropy, ref_logp, behaviour_logp, batch_stats from an optional
``prepare`` hook over the whole mini-batch); ``AUX_LOSSES`` are extra terms on the same rows
(``forward_kl`` for DPH-RL).

Aggregation: ``AGGREGATIONS`` (token-mean, seq-mean-token-mean, seq-mean-token-sum,
seq-mean-token-sum-norm), ``aggregate``, ``global_normalizers``.

Token statistics for label-free rewards: ``self_certainty_from_logits``, ``self_certainty_from_logp``.

Equation numbers in the docstrings refer to the arXiv papers as recalled, and could not be re-checked
against the PDFs offline; every docstring writes out the formula it implements, and the tests check
that formula on hand-worked cases.
"""
from rlvr_jax.algorithms.advantages import (
    ADVANTAGES,
    SIDE_INPUTS,
    AdvantageOutput,
    estimate,
    estimator_options,
    TOKEN_ADVANTAGES,
    compute_advantages,
    group_std,
    register_advantage,
    register_token_advantage,
    returns_to_go,
    token_advantages,
)
from rlvr_jax.algorithms.aggregation import (
    AGGREGATIONS,
    aggregate,
    global_normalizers,
    register_aggregation,
)
from rlvr_jax.algorithms.kl import (
    FORWARD_DIVERGENCES,
    KL_ESTIMATORS,
    forward_divergence,
    kl_estimate,
    kl_in_reward,
    rapo_forward_kl,
    register_forward_divergence,
    reward_tilt,
    register_kl_estimator,
    sequence_reward_minus_kl,
)
from rlvr_jax.algorithms.losses import (
    AUX_LOSSES,
    LOSS_SIDE_INPUTS,
    POLICY_LOSSES,
    check_loss_options,
    loss_needs,
    loss_option_names,
    masked_quantile,
    prepare_options,
    register_aux_loss,
    combine_metrics,
    forward_kl_loss,
    policy_loss,
    reduce_metrics,
    register_policy_loss,
)
from rlvr_jax.algorithms.token_stats import (max_logprob_from_logp, minp_logmass_from_logp,
                                             self_certainty_from_logits,
                                              self_certainty_from_logp)

__all__ = [
    "ADVANTAGES",
    "AUX_LOSSES",
    "AdvantageOutput",
    "LOSS_SIDE_INPUTS",
    "SIDE_INPUTS",
    "check_loss_options",
    "estimate",
    "estimator_options",
    "loss_needs",
    "loss_option_names",
    "masked_quantile",
    "max_logprob_from_logp",
    "minp_logmass_from_logp",
    "prepare_options",
    "register_aux_loss",
    "AGGREGATIONS",
    "FORWARD_DIVERGENCES",
    "KL_ESTIMATORS",
    "POLICY_LOSSES",
    "TOKEN_ADVANTAGES",
    "aggregate",
    "combine_metrics",
    "compute_advantages",
    "forward_divergence",
    "forward_kl_loss",
    "global_normalizers",
    "group_std",
    "kl_estimate",
    "kl_in_reward",
    "policy_loss",
    "rapo_forward_kl",
    "reduce_metrics",
    "register_advantage",
    "register_aggregation",
    "register_forward_divergence",
    "register_kl_estimator",
    "register_policy_loss",
    "register_token_advantage",
    "returns_to_go",
    "reward_tilt",
    "self_certainty_from_logits",
    "self_certainty_from_logp",
    "sequence_reward_minus_kl",
    "token_advantages",
]
