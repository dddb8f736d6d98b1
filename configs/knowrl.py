r"""KnowRL: self-knowledge by consensus; the policy is rewarded for agreeing with its own samples.

Paper: "KnowRL: Teaching Language Models to Know What They Know", Oct 2025; seed abstract
(arXiv abstract page); docs/papers.md 1.1 ("KnowRL").

KnowRL has two parts: (i) introspection, where the model writes tasks and labels each feasible or
infeasible for itself, and (ii) consensus-based rewarding, where "stability of self-knowledge
assessment is reinforced through internal agreement" [abstract]. This config is part (ii): every
question is a feasibility judgement, G samples answer it, and a sample's reward is the share of
the other samples giving the same judgement (reward `consensus`, rlvr_jax/rewards/self_rewards.py;
the formula is [inferred from abstract]). No label enters the reward.

Left out: part (i), generating the tasks with the policy itself. Bring them as a data file: one row
per task, `question` = the task with the instruction to answer "feasible" or "infeasible", and an
optional `answer` (an external judgement, used only for the logged label accuracy and evaluation).

Reproduction card
  paper:     LLaMA-3.1-8B and Qwen-2.5-7B, a small seed set, no external supervision; up to +28%
             accuracy and +12% F1 on self-knowledge benchmarks "in just a few iterations"
             [abstract]. Hyperparameters were not available offline: below are [this config].
  command:   python -m experiments.run --config configs/knowrl.py --workdir /runs/knowrl \
               --config.model.path=/models/Qwen2.5-7B-Instruct \
               --config.data.path=/data/introspection_tasks.jsonl \
               --config.data.eval_path=/data/self_knowledge_eval.jsonl
             CPU smoke run: python -m experiments.run --config configs/knowrl.py:cpu --workdir /tmp/kr
  hardware:  paper: not recalled. Here untested at that size; :cpu runs in ~1 minute on 2 CPU cores.
             Memory plan: mesh {data: 1, fsdp: 8, tensor: 1}, rollout.max_rows_per_call 512,
             algo.micro_batch_size 8, eval.batch_size 256, model.remat False fit 8 x H100-80GB [this
             config] (python -m experiments.memory --config configs/knowrl.py).
  expected:  the judgements become more self-consistent; with external labels on the evaluation
             set, accuracy and F1 of the feasibility judgements rise.
  measured:  none yet (the :cpu variant is a 2-step smoke test on the arithmetic task: the consensus
             reward on numeric answers, a pipeline check).

Tags: [abstract] the seed abstract; [inferred from abstract]; [this config] chosen here.
"""
import ml_collections

from configs import common

CHOICES = ("feasible", "infeasible")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = common.base()
  c.seed = 0
  c.total_steps = 100  # "a few iterations" [abstract]; the count is [this config]
  common.hf_checkpoint(c)  # --config.model.path: an instruction model [abstract]
  # Memory plan (python -m experiments.memory): Qwen2.5-7B-Instruct shapes on the card's hardware.
  c.hardware.update(dict(model="qwen2p5_7b", device="H100-80GB", count=8, memory_gib=80.0))
  common.local_files(c, answer_format="plain")
  c.data.max_prompt_len = 1024  # [this config]
  c.reward.terms = [dict(name="consensus", weight=1.0,
                         options=dict(extract="auto", choices=list(CHOICES)))]
  c.reward.correctness = "exact_match"  # external judgements, diagnostics and evaluation only
  c.reward.threshold = 1.0
  c.reward.label_free_threshold = 0.5
  c.rollout.prompts_per_step = 64  # [this config]
  c.rollout.num_samples = 8  # [this config]
  c.rollout.max_new_tokens = 512  # [this config]
  c.rollout.temperature = 1.0  # [this config]
  c.algo.advantage = "grpo"  # [this config]
  c.algo.loss = "ppo_clip"
  c.algo.clip_low = 0.2
  c.algo.clip_high = 0.2
  c.algo.kl_coef = 0.001  # [this config]
  c.algo.kl_estimator = "k3"
  c.optim.name = "adamw"
  c.optim.lr = 1e-6  # [this config]
  c.optim.grad_clip = 1.0
  c.eval.size = 500  # [this config]
  c.eval.num_samples = 4  # [this config]
  c.checkpoint.every = 25
  if arg == "cpu":
    c.reward.correctness = "reasoning_gym"
    common.cpu_variant(c)
    c.reward.terms = [dict(name="consensus", weight=1.0, options=dict(extract="none"))]
  elif arg:
    raise ValueError(f"configs/knowrl.py: unknown argument {arg!r}; use no argument or 'cpu'")
  return c
