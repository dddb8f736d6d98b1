"""Shared pieces of the run configs (no inheritance: each paper config calls `base()` and then sets
every hyperparameter of its method explicitly, with the paper symbol and source in a comment).

`base()` holds every key the trainer reads, with neutral defaults, so `--config.a.b=v` overrides
work for all of them and a typo is an error (configs are loaded with lock_config=True).

Notation (docs/papers.md 2.0): P prompts per step, G samples per prompt, mu PPO epochs,
eps_lo/eps_hi clip range, c dual-clip constant, beta KL coefficient.
"""
from __future__ import annotations

import ml_collections
from ml_collections import config_dict

from rlvr_jax.training import wandb_writer

# The arithmetic alphabet of the char-level quickstart tokenizer: digits, operators, spacing and the
# few letters of the prompt and answer tags.
ARITHMETIC_ALPHABET = "0123456789+-*/=()., ?:<>\n" + "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


CHAIN_SUM_PREFIX = "State the final answer to the following arithmetic problem: "


def base() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.total_steps = 100  # RL steps (one rollout batch each)
  c.export_hf = True  # write <workdir>/export with save_hf at the end
  c.export = ml_collections.ConfigDict()
  # Stored weight dtype of exports (float32 / bfloat16 / float16); None: the source checkpoint's
  # (model.init="hf"), else the param dtype.
  c.export.dtype = config_dict.placeholder(str)
  c.export.every = 0  # > 0: also export every N steps to <workdir>/exports/step_<N>

  c.model = ml_collections.ConfigDict()
  c.model.init = "preset"  # "preset" (random init of a ModelConfig preset) or "hf" (local checkpoint)
  c.model.preset = "tiny_qwen2"
  c.model.path = config_dict.placeholder(str)  # HF checkpoint directory for init="hf"
  c.model.overrides = ml_collections.ConfigDict()  # ModelConfig field overrides for init="preset"
  c.model.dtype = config_dict.placeholder(str)  # compute dtype (None: the preset's / checkpoint's)
  c.model.param_dtype = config_dict.placeholder(str)
  c.model.remat = config_dict.placeholder(bool)

  c.tokenizer = ml_collections.ConfigDict()
  c.tokenizer.kind = "pretrained"  # pretrained | char | bpe | sentencepiece
  c.tokenizer.path = config_dict.placeholder(str)  # default: config.model.path
  c.tokenizer.alphabet = config_dict.placeholder(str)  # for kind="char"
  c.tokenizer.vocab_size = 512  # for trained bpe / sentencepiece
  c.tokenizer.add_bos = False

  c.data = ml_collections.ConfigDict()
  c.data.train = ml_collections.ConfigDict(dict(source="reasoning_gym", name="chain_sum", size=10000,
                                                seed=0, kwargs={}))
  c.data.eval = config_dict.placeholder(ml_collections.ConfigDict)  # None: derived held-out split
  c.data.template = "plain"  # plain | r1 | chat (rlvr_jax.data.TEMPLATES)
  c.data.template_options = ml_collections.ConfigDict()
  c.data.max_prompt_len = 256  # tokens; longer prompts are counted and skipped
  # Test-time RL (TTRL's setting): RL trains on the evaluation questions with their labels removed
  # (label-free rewards only; audit/* metrics check them against the eval labels afterwards);
  # evaluation still scores with the labels.
  c.data.test_time = False
  # Semi-supervised RL (TraPO): this fraction of the training rows is labelled (``labelled``
  # True), the rest is not; None: rows as they are.
  c.data.labelled_fraction = config_dict.placeholder(float)
  # RL trains on the first rl_size training rows (several epochs over a small pool); the warm start
  # and the held-out split use the whole source. None: all rows.
  c.data.rl_size = config_dict.placeholder(int)

  c.rollout = ml_collections.ConfigDict()
  c.rollout.prompts_per_step = 32  # P
  c.rollout.num_samples = 8  # G
  c.rollout.temperature = 1.0  # T0 (the whole response's temperature with a constant schedule)
  # Per-position temperature over the response: constant | linear | cosine from T0 to T1 = end
  # (rlvr_jax.sampling.position_temperature); the learner's log-probs use the same schedule.
  c.rollout.temperature_schedule = "constant"
  c.rollout.temperature_end = config_dict.placeholder(float)
  # "ead": decay0, decay_growth, decay_max, offset (rlvr_jax.episodes.context.ead_schedule).
  c.rollout.schedule_options = ml_collections.ConfigDict()
  c.rollout.top_p = 1.0
  c.rollout.top_k = 0
  c.rollout.min_p = 0.0
  c.rollout.max_new_tokens = 256
  # Rows (prompts x G) per sampler call: a rollout of P x G rows runs as chunks of whole prompts,
  # with the same tokens as one call, so its KV cache is bounded by this many rows. A multiple of
  # G (and of G x the mesh's data-parallel split). None / 0: the whole rollout in one call.
  c.rollout.max_rows_per_call = config_dict.placeholder(int)

  c.reward = ml_collections.ConfigDict()
  c.reward.terms = [dict(name="reasoning_gym", weight=1.0)]  # rlvr_jax.rewards.parse_spec format
  c.reward.correctness = "reasoning_gym"  # reward whose value >= threshold means "correct"
  c.reward.correctness_options = ml_collections.ConfigDict()
  c.reward.threshold = 1.0
  c.reward.answer_extractor = "auto"  # for maj@k voting (rlvr_jax.rewards.EXTRACTORS)

  c.algo = ml_collections.ConfigDict()
  c.algo.advantage = "grpo"  # rlvr_jax.algorithms.ADVANTAGES
  c.algo.advantage_options = ml_collections.ConfigDict()
  c.algo.loss = "ppo_clip"  # rlvr_jax.algorithms.POLICY_LOSSES
  c.algo.clip_low = 0.2  # eps_lo
  c.algo.clip_high = 0.2  # eps_hi
  c.algo.dual_clip = config_dict.placeholder(float)  # c (None: off)
  c.algo.agg_mode = "seq-mean-token-mean"
  c.algo.norm_constant = config_dict.placeholder(float)  # Dr. GRPO L_const (None: max_new_tokens)
  c.algo.kl_coef = 0.0  # beta
  c.algo.kl_estimator = "k3"
  c.algo.kl_in_reward = False  # subtract beta * KL from the reward instead of adding it to the loss
  c.algo.entropy_coef = 0.0
  c.algo.epochs = 1  # mu
  c.algo.num_minibatches = 1  # optimizer steps per epoch
  c.algo.micro_batch_size = 0  # rows per gradient-accumulation step (0: whole mini-batch)
  c.algo.shuffle = True
  c.algo.loss_options = ml_collections.ConfigDict()  # the loss's own options (checked by name)
  # Extra loss terms on the same rows: [{name, weight, options}] (rlvr_jax.algorithms.AUX_LOSSES).
  c.algo.aux_losses = []
  c.algo.force_old_logprobs = False  # recompute old log-probs even when strictly on-policy

  # How a batch of examples becomes rollout rows (rlvr_jax.episodes.EPISODES).
  c.episode = ml_collections.ConfigDict()
  c.episode.name = "single_turn"
  c.episode.options = ml_collections.ConfigDict()

  # What of the sampled rows is trained on, and how many rollouts each prompt gets.
  c.batch = ml_collections.ConfigDict()
  c.batch.builders = ()  # names, applied in order (rlvr_jax.episodes.BATCH_BUILDERS)
  c.batch.builder_options = ml_collections.ConfigDict()  # <name>: that builder's options
  c.batch.max_gen_batches = 3  # generation batches per step when a builder drops groups
  c.batch.allocator = "uniform"  # per-prompt rollout counts (rlvr_jax.episodes.ALLOCATORS)
  c.batch.allocator_options = ml_collections.ConfigDict()
  c.batch.track_prompt_stats = False  # keep per-prompt statistics (on for non-uniform allocators)

  c.optim = ml_collections.ConfigDict()
  c.optim.name = "adamw"
  c.optim.lr = 1e-6
  c.optim.warmup_steps = 0  # optimizer steps
  c.optim.schedule = "constant"  # constant | cosine | linear
  c.optim.min_lr_ratio = 0.0
  c.optim.weight_decay = 0.0
  c.optim.b1 = 0.9
  c.optim.b2 = 0.999
  c.optim.eps = 1e-8
  c.optim.grad_clip = 1.0

  c.sft = ml_collections.ConfigDict()
  c.sft.steps = 0  # supervised warm-start steps before RL (0: none)
  c.sft.data = config_dict.placeholder(ml_collections.ConfigDict)  # None: the training source
  c.sft.batch_size = 64
  c.sft.micro_batch_size = 0
  c.sft.target = "{answer}"  # formatted with the example's fields, eos appended
  c.sft.teacher = "template"  # who writes the targets: rlvr_jax.training.sft.TEACHERS
  c.sft.teacher_options = ml_collections.ConfigDict()
  c.sft.log_every = 100
  c.sft.optim = ml_collections.ConfigDict(dict(name="adamw", lr=1e-3, warmup_steps=50,
                                               schedule="cosine", min_lr_ratio=0.1,
                                               weight_decay=0.0, b1=0.9, b2=0.99, eps=1e-8,
                                               grad_clip=1.0))

  c.eval = ml_collections.ConfigDict()
  c.eval.size = 500  # held-out problems (0: no evaluation)
  c.eval.before = True
  c.eval.after = True
  c.eval.num_samples = 8  # n for pass@k / maj@k
  c.eval.temperature = 1.0
  c.eval.top_p = 1.0
  c.eval.ks = config_dict.placeholder(tuple)  # None: powers of two up to num_samples
  c.eval.batch_size = 256  # rows per sampler call
  c.eval.every = 0  # steps between quick greedy evals (0: off)
  c.eval.every_size = 200
  # A task's step checker, as a reward name (1 = every step right): adds cot_pass@k to evaluations.
  c.eval.steps_reward = config_dict.placeholder(str)
  c.eval.steps_reward_options = ml_collections.ConfigDict()

  c.train = ml_collections.ConfigDict()
  c.train.logprob_impl = config_dict.placeholder(str)  # None: best for the backend
  # Steps whose loss or gradient is NaN/inf are skipped (no update) and counted; more than this many
  # stops the run with an error, leaving the last good checkpoint.
  c.train.max_nonfinite_steps = 5

  c.checkpoint = ml_collections.ConfigDict()
  c.checkpoint.every = 50
  c.checkpoint.max_to_keep = 2  # >= 1; None keeps every checkpoint
  # A checkpoint that fails to restore is moved to checkpoints_broken/ and the run resumes from the
  # newest intact one; False refuses instead, naming both.
  c.checkpoint.fallback = True
  # Orbax writes the arrays in a background thread while training goes on; the run waits for the
  # last save before it exits (and before it stops on a signal).
  c.checkpoint.async_save = True

  c.log = ml_collections.ConfigDict()
  c.log.progress_bar = True  # tqdm bar on stderr (only when stderr is a terminal)
  # Weights & Biases (rlvr_jax/training/wandb_writer.py): mode "auto" (online with credentials,
  # else offline), "online", "offline" or "disabled"; the run id is kept in <workdir>/wandb_id so
  # a resumed run continues the same W&B run.
  c.log.wandb = ml_collections.ConfigDict(dict(wandb_writer.SETTINGS, mode="disabled"))

  c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1))
  c.sharding_rules = config_dict.placeholder(tuple)  # None: rlvr_jax.parallel.rules.DEFAULT_RULES

  # What the card's command is planned for (python -m experiments.memory; the trainer does not
  # read it): the devices (all hosts together) and one device's memory, and for model.init="hf"
  # the model whose shapes stand in for the checkpoint (a ModelConfig preset or a name in
  # rlvr_jax.parallel.memory.MODELS). None: not named.
  c.hardware = ml_collections.ConfigDict(dict(
      device=config_dict.placeholder(str), count=config_dict.placeholder(int),
      memory_gib=config_dict.placeholder(float), model=config_dict.placeholder(str)))
  return c


def dynamic_sampling(c: ml_collections.ConfigDict, *, metric: str = "accuracy",
                     max_gen_batches: int = 3) -> None:
  """DAPO dynamic sampling (arXiv 2503.14476, sec. 3.2) as the first batch builder: groups whose
  ``metric`` (accuracy as in the paper, or the total reward) has no spread are dropped and at most
  ``max_gen_batches`` generation batches are drawn to refill the step."""
  c.batch.builders = ("dynamic_sampling",) + tuple(
      b for b in c.batch.builders if b != "dynamic_sampling")
  c.batch.builder_options.dynamic_sampling = ml_collections.ConfigDict(dict(metric=metric))
  c.batch.max_gen_batches = max_gen_batches


def tiny_model(c: ml_collections.ConfigDict, *, hidden: int = 64, layers: int = 2, heads: int = 4,
               kv_heads: int = 2, mlp: int = 128) -> None:
  """A tiny Qwen2-architecture model for CPU variants (vocab set from the tokenizer)."""
  c.model.init = "preset"
  c.model.preset = "tiny_qwen2"
  c.model.overrides = ml_collections.ConfigDict(dict(
      hidden_size=hidden, num_layers=layers, num_heads=heads, num_kv_heads=kv_heads,
      head_dim=hidden // heads, intermediate_size=mlp))


def hf_checkpoint(c: ml_collections.ConfigDict) -> None:
  """Full-size paper variants: weights and tokenizer from a local Hugging Face checkpoint directory
  given on the command line (--config.model.path; the run stops with a message naming that flag
  while it is unset), prompts rendered with the checkpoint's own chat template."""
  c.model.init = "hf"
  c.model.path = None
  c.tokenizer.kind = "pretrained"  # tokenizer.json / chat template of config.model.path
  c.data.template = "chat"


def local_files(c: ml_collections.ConfigDict, *, source: str = "jsonl",
                answer_format: str = "auto", question_key: str | None = None,
                answer_key: str | None = None) -> None:
  """Training and held-out rows from local files named on the command line: --config.data.path
  and --config.data.eval_path (FieldReferences into data.train.path and data.eval.path, so the
  short flags are enough). Formats: rlvr_jax.data.rows (gsm8k, math, plain)."""
  c.data.path = config_dict.placeholder(str)  # training file(s), glob allowed
  c.data.eval_path = config_dict.placeholder(str)  # held-out file(s), e.g. the paper's test set
  fields = dict(source=source, answer_format=answer_format, question_key=question_key,
                answer_key=answer_key)
  c.data.train = ml_collections.ConfigDict(fields)
  c.data.train.path = c.data.get_ref("path")
  c.data.eval = ml_collections.ConfigDict(fields)
  c.data.eval.path = c.data.get_ref("eval_path")


def cpu_variant(c: ml_collections.ConfigDict, *, steps: int = 2) -> ml_collections.ConfigDict:
  """Shrinks a paper config to run on a laptop CPU in seconds: tiny char-level model, short
  arithmetic task, few prompts. Algorithm settings are left as the paper's."""
  tiny_model(c)
  c.tokenizer.kind = "char"
  c.tokenizer.alphabet = ARITHMETIC_ALPHABET
  c.data.train = ml_collections.ConfigDict(dict(
      source="reasoning_gym", name="chain_sum", size=2000, seed=0,
      kwargs=dict(min_terms=2, max_terms=2, min_digits=1, max_digits=2)))
  c.data.eval = None  # the derived reasoning-gym held-out split
  c.data.template = "plain"
  c.data.template_options = ml_collections.ConfigDict(dict(format="{question}",
                                                           strip_prefix=CHAIN_SUM_PREFIX))
  c.data.max_prompt_len = 32
  # The tiny model answers with the bare number (no <answer> tags): score the whole completion.
  # reasoning-gym's chain_sum scorer gives partial credit for near misses; the CPU runs use a 0/1
  # exact match of the number instead, so "correct" and a reward of 1 mean the same thing.
  terms = []
  for term in c.reward.terms:
    term = dict(term)
    if term["name"] == "reasoning_gym":
      term["name"] = "exact_match"
    if term["name"] in ("exact_match", "math_verify"):
      term["options"] = dict(term.get("options") or {}, extract="none")
    terms.append(term)
  c.reward.terms = terms
  c.reward.correctness = "exact_match"
  c.reward.correctness_options = ml_collections.ConfigDict(dict(extract="none"))
  c.reward.answer_extractor = "none"
  c.rollout.prompts_per_step = 4
  c.rollout.num_samples = 4
  c.rollout.max_new_tokens = 8
  c.total_steps = steps
  c.sft.steps = min(int(c.sft.steps), 2)
  c.sft.batch_size = 8
  c.eval.size = 0
  c.checkpoint.every = 0
  c.export_hf = False
  c.optim.lr = 1e-4
  return c
