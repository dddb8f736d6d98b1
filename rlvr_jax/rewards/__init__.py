"""Rewards: one scalar per completion (plus optional per-token scores), from a flat registry.

Contracts used by the trainer
-----------------------------
``REWARDS``: name -> ``fn(completions: Sequence[str], examples: Sequence[Mapping], **options)``
returning ``np.ndarray`` float32 [N] or a ``RewardOutput``; N = P * G decoded responses with the
samples of one prompt adjacent; ``examples[i]`` is the data row of completion i with at least
``question`` and ``answer`` (gold, str), optionally ``metadata`` (dict) and ``task``
(reasoning-gym dataset name). Register new ones with ``register_reward(name)``.

Registered: ``scratchpad_steps`` (the column-scratchpad step checker, `scratchpad.py`), ``math_verify`` (math-verify in a process pool, per-item timeout), ``reasoning_gym``
(the dataset's ``score_answer``), ``exact_match`` (normalised), ``format`` (``<think>..</think>
<answer>..</answer>``), ``overlong`` (DAPO soft penalty, in tokens), ``majority_vote`` (TTRL;
receives ``group_size``), ``self_certainty`` / ``neg_entropy`` / ``mean_logp`` (Intuitor family;
receive ``token_stats``: numpy [N, T] arrays ``mask`` plus ``self_certainty`` / ``entropy`` /
``logp`` respectively, computed on device with ``rlvr_jax.algorithms.token_stats``).

``compute_rewards(spec, completions, examples, *, group_size, token_stats=None, lengths=None,
max_len=None) -> (rewards [N] float32, metrics)`` combines weighted terms; spec is a list of
``{name, weight, options[, label]}`` dicts (or ``{name: weight}``, or a ConfigDict of either).
A term that raises or times out scores 0 for the affected items and is counted in
``reward_fail/<label>`` (timeouts also in ``reward_timeout/<label>``); ``reward/<label>`` is each
term's mean and ``reward/total`` the mean of the sum. Setup mistakes (``RewardConfigError``: a
missing ``lengths``, ``token_stats`` key or gold field) raise.

Answer extraction helpers (``extract_answer``, ``extract_tag``, ``extract_boxed``,
``extract_last_number``, ``normalize_answer``) are shared by the verifiers and the vote. The
math-verify pool (``pool.get_pool``) starts on first use, is reused, and closes at exit.

This package imports only numpy and the standard library at import time (math-verify and
reasoning-gym load lazily), because every pool worker imports it.
"""
from rlvr_jax.rewards.extract import (
    EXTRACTORS,
    extract_answer,
    extract_boxed,
    extract_last_number,
    extract_tag,
    normalize_answer,
)
from rlvr_jax.rewards.pool import VerifierPool, get_pool, shutdown_pools
from rlvr_jax.rewards.registry import (
    REWARDS,
    RewardConfigError,
    RewardOutput,
    compute_rewards,
    parse_spec,
    register_reward,
)
from rlvr_jax.rewards import scratchpad as _scratchpad  # noqa: F401  (registers rewards)
from rlvr_jax.rewards import self_rewards as _self_rewards  # noqa: F401
from rlvr_jax.rewards import shaping as _shaping  # noqa: F401
from rlvr_jax.rewards import verifiers as _verifiers  # noqa: F401
from rlvr_jax.rewards.self_rewards import GOLD_FREE, LABEL_FREE, majority_answers
from rlvr_jax.rewards.shaping import THINK_ANSWER, overlong_penalty

__all__ = [
    "EXTRACTORS",
    "GOLD_FREE",
    "LABEL_FREE",
    "REWARDS",
    "THINK_ANSWER",
    "RewardConfigError",
    "RewardOutput",
    "VerifierPool",
    "compute_rewards",
    "extract_answer",
    "extract_boxed",
    "extract_last_number",
    "extract_tag",
    "get_pool",
    "majority_answers",
    "normalize_answer",
    "overlong_penalty",
    "parse_spec",
    "register_reward",
    "shutdown_pools",
]
