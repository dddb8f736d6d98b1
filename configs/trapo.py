r"""TraPO: semi-supervised RLVR; a small labelled set decides which unlabelled prompts to trust.

Paper: "TraPO: A Semi-Supervised Reinforcement Learning Framework for Boosting LLM Reasoning",
arXiv 2512.13106; code ShenzhiYang2000/TRAPO (Weakly_Supervised/Research/Semi_RL/
semi_ray_trainer.py, scripts/run/run_semi.sh); docs/papers.md 2.2 ("TraPO").

A labelled prompt is rewarded by the verifier against its gold answer; an unlabelled prompt by
agreement with the majority answer of its group (a tie for the top count gives no pseudo-label:
reward `trapo`, rlvr_jax/rewards/self_rewards.py). Every visit of a prompt appends its pass rate to
the prompt's trajectory. During the warm-up only labelled prompts are trained; afterwards an
unlabelled prompt enters the batch only if its z-scored pass-rate trajectory is cosine-similar to
the labelled prompts' trajectories (top 10% of the batch's unlabelled prompts, or similarity
>= 0.4), and selected trajectories join the reference database (batch builder
`trajectory_select`, rlvr_jax/episodes/selection.py). Rows are marked labelled by
config.data.labelled_fraction (a fixed seeded subset of the RL pool).

Reproduction card
  paper:     Qwen3-4B-Base; 1K labelled + 3K unlabelled MATH-style prompts reach 42.6% average
             accuracy over six math benchmarks vs 38.3% for the best unsupervised method trained on
             45K; 4K labelled + 12K unlabelled beats full supervision on 45K [abstract]. Settings of
             run_semi.sh [code]: GRPO, 128 prompts x 8 rollouts, mini-batch 64, lr 1e-6, max
             prompt / response 4,096, KL loss 0.001 (low-var KL = k3), entropy coef 0, 15 epochs,
             warm_up 8 (epochs), topk 0.1, thres 0.4, update_db True, mean aggregation.
  command:   python -m experiments.run --config configs/trapo.py --workdir /runs/trapo \
               --config.model.path=/models/Qwen3-4B-Base \
               --config.data.path=/data/math_4k.jsonl --config.data.eval_path=/data/math500.jsonl
             (labelled_fraction 0.25: 1K of the 4K rows keep their labels for the reward)
             CPU smoke run: python -m experiments.run --config configs/trapo.py:cpu --workdir /tmp/tp
             tiny regime (claim runs): configs/trapo.py:arith, see `python -m experiments.claims
               --claim trapo_semi_supervised --seeds 3`
  hardware:  paper: 8 GPUs, one node [code]. Here untested at that size; :cpu runs in ~1 minute on
             2 CPU cores, :arith ~5 minutes per run.
             Memory plan: mesh {data: 2, fsdp: 2, tensor: 2}, rollout.max_rows_per_call 64,
             algo.micro_batch_size 4, eval.batch_size 32, model.remat True fit 8 x H100-80GB [code:
             8 GPUs; H100-80GB assumed, this config]
             (python -m experiments.memory --config configs/trapo.py).
  expected:  docs/papers.md 4.4 #6 (tiny scale): 10% labelled with the trajectory selection is at
             least as good as majority-vote RL on 100% unlabelled, and close to full supervision.
  measured:  see the README ledger ("Claims reproduced", trapo_semi_supervised).

Differences from the code, chosen here: trajectories are compared over a query's own length when
it was visited fewer times than the database's shortest trajectory (the code raises), and an
unlabelled trajectory selected again replaces its own database entry (the code then clears every
unlabelled entry). Warm-up counts visits of the labelled prompts, i.e. epochs, as the code does.

Tags: [abstract] the paper's arXiv abstract (summarised in docs/papers.md 1.1); [code] the
repository as read for docs/papers.md 2.2 and here; [recall] not re-checked offline; [this config]
chosen here.
"""
import ml_collections

from configs import claims_arith, common


def trapo(c: ml_collections.ConfigDict, *, verifier: str, verifier_options: dict, extract: str,
          warmup: int) -> None:
  """The TraPO reward and selection on ``c`` (labelled fraction set by the caller)."""
  c.reward.terms = [dict(name="trapo", weight=1.0, options=dict(
      verifier=verifier, verifier_options=verifier_options, extract=extract))]
  c.batch.builders = ("trajectory_select",)
  c.batch.builder_options = ml_collections.ConfigDict(dict(trajectory_select=dict(
      warmup=warmup, topk=0.1, threshold=0.4, aggregate="mean", update_db=True)))  # [code]
  c.batch.max_gen_batches = 1  # rejected prompts leave the batch; nothing is resampled [code]


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  if arg == "arith":  # the tiny regime of configs/claims_arith.py with 10% of the labels
    c = claims_arith.get_config(None)  # warm start 1000 SFT steps: pass@1 22.9% [claims_arith]
    c.data.rl_size = 320  # RL pool: 10 epochs in 100 steps [this config]
    c.data.labelled_fraction = 0.1  # 32 labelled prompts [this config: the claim's 10%]
    c.rollout.prompts_per_step = 32  # [this config]
    c.rollout.num_samples = 8  # [code]
    # Warm-up: the code's 8 of 15 epochs, scaled to 5 of these 10 epochs [this config].
    trapo(c, verifier="exact_match", verifier_options=dict(extract="none"), extract="none",
          warmup=5)
    c.total_steps = 100  # [this config]
    c.eval.num_samples = 16  # [this config]
    c.checkpoint.every = 0
    return c

  c = common.base()
  c.seed = 0
  c.total_steps = 470  # 15 epochs of 4K prompts at 128 per step [code: total_epochs 15]
  common.hf_checkpoint(c)  # --config.model.path: Qwen3-4B-Base [code]
  # Memory plan (python -m experiments.memory): Qwen3-4B shapes on the card's hardware.
  c.hardware.update(dict(model="qwen3_4b", device="H100-80GB", count=8, memory_gib=80.0))
  common.local_files(c, answer_format="plain")
  c.data.max_prompt_len = 4096  # [code]
  c.data.labelled_fraction = 0.25  # 1K labelled of 4K [abstract]
  c.rollout.prompts_per_step = 128  # [code]
  c.rollout.num_samples = 8  # [code]
  c.rollout.max_new_tokens = 4096  # [code]
  c.rollout.temperature = 1.0  # [recall: verl default]
  trapo(c, verifier="math_verify", verifier_options={}, extract="auto", warmup=8)  # [code]
  c.reward.correctness = "math_verify"  # diagnostics and evaluation
  c.reward.threshold = 1.0
  c.algo.advantage = "grpo"  # [code]
  c.algo.loss = "ppo_clip"
  c.algo.clip_low = 0.2
  c.algo.clip_high = 0.2
  c.algo.agg_mode = "token-mean"  # [recall: verl default]
  c.algo.kl_coef = 0.001  # [code]
  c.algo.kl_estimator = "k3"  # low_var_kl [code]
  c.algo.entropy_coef = 0.0  # [code]
  c.algo.num_minibatches = 2  # mini-batch 64 of 128 prompts [code]
  c.optim.name = "adamw"
  c.optim.lr = 1e-6  # [code]
  c.optim.grad_clip = 1.0
  c.eval.size = 500  # [this config]
  c.eval.num_samples = 4  # [this config]
  c.checkpoint.every = 50
  if arg == "cpu":
    c.reward.correctness = "reasoning_gym"
    common.cpu_variant(c)
    c.data.rl_size = 4  # one step per epoch: step 2 already selects
    c.data.labelled_fraction = 0.5
    trapo(c, verifier="exact_match", verifier_options=dict(extract="none"), extract="none",
          warmup=2)
  elif arg:
    raise ValueError(f"configs/trapo.py: unknown argument {arg!r}; use no argument, 'cpu' or "
                     "'arith'")
  return c
