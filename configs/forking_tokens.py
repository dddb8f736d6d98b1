r"""Beyond the 80/20 rule: DAPO with the policy gradient kept only on the high-entropy "forking"
tokens.

Paper: Wang et al., "Beyond the 80/20 Rule: High-Entropy Minority Tokens Drive Effective
Reinforcement Learning for LLM Reasoning", arXiv 2506.01939; docs/papers.md 2.4 ("80/20
forking-token mask").

Per mini-batch, the (1 - rho) quantile of the current policy's token entropies over every response
token is the threshold; only tokens at or above it keep their clipped policy-gradient term
(loss `forking_tokens`, rlvr_jax/algorithms/losses.py; the quantile is taken once over the whole
mini-batch, across micro-batches and devices, by the loss's prepare hook). Everything else is
DAPO (configs/dapo.py). Ablations: --config.algo.loss_options.rho=0.1 / 0.5 / 1.0 (1.0 = every
token, plain DAPO) and --config.algo.loss_options.keep=bottom (train only the other 80%).

Reproduction card
  paper:     Qwen3-8B / 14B / 32B base on DAPO-Math-17K with the DAPO recipe, rho = 0.2: +11.04
             AIME'25 / +7.71 AIME'24 over full-token DAPO at 32B, +4.79 / +5.21 at 14B, about equal
             at 8B; the bottom-80% control is clearly worse [paper, as summarised in
             docs/papers.md 2.4].
             Max response 20K tokens (29K for the best 32B run) [recall].
  command:   python -m experiments.run --config configs/forking_tokens.py --workdir /runs/ft \
               --config.model.path=/models/Qwen3-8B-Base \
               --config.data.path=/data/dapo_math_17k.jsonl --config.data.eval_path=/data/aime24.jsonl
             CPU smoke run: python -m experiments.run --config configs/forking_tokens.py:cpu --workdir /tmp/ft
             tiny regime (claim runs): configs/forking_tokens.py:arith, see `python -m
               experiments.claims --claim forking_tokens_80_20 --seeds 3`
  hardware:  paper: a GPU cluster [recall]. Here untested at that size; :cpu runs in ~1 minute on 2
             CPU cores.
             Memory plan: mesh {data: 1, fsdp: 8, tensor: 8}, rollout.max_rows_per_call 256,
             algo.micro_batch_size 8, eval.batch_size 256, model.remat True fit 64 x H100-80GB [this
             config] (python -m experiments.memory --config configs/forking_tokens.py).
  expected:  docs/papers.md 4.4 #8 (tiny scale): top-20% tokens about as good as all tokens;
             bottom-80% clearly worse. The size-dependent gain over full-token training needs
             large models.
  measured:  see the README ledger ("Claims reproduced", forking_tokens_80_20).

Normaliser: the kept tokens' losses are divided by every response token (normalize="all",
docs/papers.md 2.4 [recall, unchecked]); normalize="kept" divides by the kept tokens only.
Tags: [paper] as summarised in docs/papers.md; [recall] not re-checked offline; [this config]
chosen here.
"""
import ml_collections

from configs import claims_arith, dapo

RHO = 0.2  # the kept entropy fraction [paper]


def forking(c: ml_collections.ConfigDict, *, rho: float = RHO) -> None:
  c.algo.loss = "forking_tokens"
  c.algo.loss_options = ml_collections.ConfigDict(dict(rho=rho, keep="top", normalize="all"))


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  if arg == "arith":  # the tiny regime of configs/claims_arith.py with the mask
    c = claims_arith.get_config(None)  # GRPO settings of the claims regime [claims_arith]
    forking(c)
    c.checkpoint.every = 0
    c.eval.num_samples = 16  # [this config]
    return c
  if arg not in (None, "cpu"):
    raise ValueError(f"configs/forking_tokens.py: unknown argument {arg!r}; use no argument, 'cpu' "
                     "or 'arith'")
  c = dapo.get_config(arg)  # the DAPO recipe [paper]
  # Memory plan (python -m experiments.memory): Qwen3-8B shapes on the card's hardware.
  c.hardware.update(dict(model="qwen3_8b", device="H100-80GB", count=64, memory_gib=80.0))
  forking(c)
  return c
