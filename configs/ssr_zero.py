r"""SSR-Zero: reference-free RL for translation, rewarded by the policy's own judgement.

Paper: "SSR-Zero: Simple Self-Rewarding Reinforcement Learning for Machine Translation",
arXiv 2505.16637; seed abstract (arXiv abstract page); docs/papers.md 2.2 ("SSR-Zero").

The policy translates; for each translation the same policy is prompted, with no reference, to
score it from 0 to 100 (GEMBA-DA style: wrong language, irrelevant text or several translations
score 0), and the score / 100 is the GRPO reward (episode `self_judge`,
rlvr_jax/episodes/self_judge.py). SSR-X adds an external metric (COMET) as a second reward term;
COMET is not available offline, so only SSR-Zero is configured.

Reproduction card
  paper:     Qwen2.5-7B base, 13K monolingual English / Chinese sentences, translation both ways;
             SSR-Zero-7B beats TowerInstruct-13B, GemmaX-28-9B and Qwen2.5-32B-Instruct on
             EN<->ZH WMT23/24 and Flores200 [abstract]. GRPO settings below are [recall] where
             tagged, else [this config].
  command:   python -m experiments.run --config configs/ssr_zero.py --workdir /runs/ssr_zero \
               --config.model.path=/models/Qwen2.5-7B \
               --config.data.path=/data/monolingual_en_zh.jsonl
             (rows: `question` = the translation instruction with the source sentence, `answer`
             may be empty: nothing reads it; evaluation needs an external MT metric and is off)
             CPU smoke run: python -m experiments.run --config configs/ssr_zero.py:cpu --workdir /tmp/ssr
  hardware:  paper: a GPU node [recall]. Here untested at that size (each response adds a judge
             generation); :cpu runs in ~1 minute on 2 CPU cores.
             Memory plan: mesh {data: 1, fsdp: 8, tensor: 1}, rollout.max_rows_per_call 512,
             algo.micro_batch_size 8, eval.batch_size 256, model.remat False fit 8 x H100-80GB [this
             config] (python -m experiments.memory --config configs/ssr_zero.py).
  expected:  translation quality (COMET / BLEU on WMT) rises with no reference and no external
             reward model.
  measured:  tiny regime :arith, seed 0, 100 steps (2-core Xeon, 2026-11-28): the warm start did
             NOT learn to judge: the self-scores' AUROC against correctness was 0.52 over the first
             10 steps (0.49 over the last 10), so the reward was noise and held-out greedy accuracy
             fell 54.7% -> 26.7% (pass@1 46.2% -> 25.0%). A learnable-judge regime is still open
             (a longer or judge-weighted warm start, or a task whose answers are easier to check
             than to produce); not tuned further here. The :cpu variant is a 2-step pipeline check.

Tags: [abstract] the seed abstract; [recall] not re-checked offline; [this config] chosen here.
"""
import ml_collections

from configs import claims_arith, common

JUDGE = ("Score the following translation on a continuous scale from 0 to 100. A "
         "translation in the wrong language, an irrelevant one or several translations score 0.\n"
         "Source: {question}\nTranslation: {response}\nThink briefly, then give the score as the "
         "last number.")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  if arg == "arith":  # a tiny regime where judging is learnable
    c = claims_arith.get_config(None)  # answer warm start of the claims regime [claims_arith]
    # The warm start also learns to judge: half of its rows are "<a + b = > <candidate> score:"
    # with target 100 (candidate right) or 0 (a careless carry / borrow slip) [this config].
    c.sft.data = ml_collections.ConfigDict(dict(
        source="mixture", seed=0, weights=[1.0, 1.0], sources=[
            c.data.train.to_dict(),
            dict(source="judge_pairs", base=c.data.train.to_dict(), seed=0, correct_frac=0.5,
                 suffix=" score:")]))
    c.sft.steps = 2000  # two tasks share the warm start: ~1000 steps' worth each [this config]
    c.episode.name = "self_judge"
    c.episode.options = ml_collections.ConfigDict(dict(
        judge_template="{question} {response} score:", judge_samples=1,
        judge_max_new_tokens=4, score_max=100.0, judge_weight=1.0))
    c.reward.terms = []  # the self-score is the whole reward; correctness is logged only
    c.rollout.prompts_per_step = 32  # [this config]
    c.total_steps = 100  # [this config]
    c.eval.num_samples = 16  # [this config]
    c.checkpoint.every = 0
    return c

  c = common.base()
  c.seed = 0
  c.total_steps = 400  # [this config]
  common.hf_checkpoint(c)  # --config.model.path: Qwen2.5-7B base [abstract]
  # Memory plan (python -m experiments.memory): Qwen2.5-7B shapes on the card's hardware.
  c.hardware.update(dict(model="qwen2p5_7b", device="H100-80GB", count=8, memory_gib=80.0))
  common.local_files(c, answer_format="plain")
  c.data.max_prompt_len = 1024  # [this config]
  c.episode.name = "self_judge"
  c.episode.options = ml_collections.ConfigDict(dict(
      judge_template=JUDGE,  # GEMBA-DA style, no reference [recall]
      judge_samples=1, judge_max_new_tokens=512, score_max=100.0, judge_weight=1.0))
  c.reward.terms = []  # the self-score is the whole reward [abstract]
  c.reward.correctness = ""  # reference-free: nothing to check against
  c.rollout.prompts_per_step = 64  # [this config]
  c.rollout.num_samples = 8  # [this config]
  c.rollout.max_new_tokens = 512  # [this config]
  c.rollout.temperature = 1.0  # [recall]
  c.algo.advantage = "grpo"  # [abstract: GRPO]
  c.algo.loss = "ppo_clip"
  c.algo.clip_low = 0.2
  c.algo.clip_high = 0.2
  c.algo.kl_coef = 0.0  # [this config]
  c.optim.name = "adamw"
  c.optim.lr = 1e-6  # [this config]
  c.optim.grad_clip = 1.0
  c.eval.size = 0  # translation needs an external metric (COMET / BLEU), not run here
  c.checkpoint.every = 50
  if arg == "cpu":
    common.cpu_variant(c)
    c.reward.terms = []
    c.episode.options = ml_collections.ConfigDict(dict(
        judge_template="{question} {response} score:", judge_samples=2,
        judge_max_new_tokens=4, score_max=100.0, judge_weight=1.0))
  elif arg:
    raise ValueError(f"configs/ssr_zero.py: unknown argument {arg!r}; use no argument, 'cpu' or "
                     "'arith'")
  return c
