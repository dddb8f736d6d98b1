"""The claims this codebase tests (docs/papers.md 4.4 lists and numbers them). "catalog X.Y" in
the ``paper`` and ``sentence`` fields below names a section of docs/papers.md, which keeps the
catalog's numbering ("catalog 4.4 claim N" is claim N there; the 80/20 paper's summary is in 2.4).
Sentences are quoted from memory of the papers where marked [recall], not verbatim: the PDFs are
not available offline.

Claims run on ``configs/claims_arith.py`` (the base-model regime: a tiny char-level model
warm-started to be diverse but imperfect) or, where responses need room to grow, on
``configs/claims_scratchpad.py`` (the same task answered with column scratchpads); ``quick`` shrinks
each to its CPU smoke shapes (``:cpu``).
"""
from __future__ import annotations

from rlvr_jax.claims import Claim, Metric, register_claim

_QUICK = {"total_steps": 3, "eval.size": 16, "eval.num_samples": 4}

register_claim(Claim(
    name="dapo_clip_higher",
    paper="DAPO, arXiv 2503.14476, sec. 3.1 (catalog 4.4 claim 1)",
    sentence="[recall] Clip-Higher (decoupling eps_low = 0.2 from eps_high = 0.28) keeps the "
             "policy's entropy from collapsing and so keeps exploration alive, compared with the "
             "symmetric clip of PPO / GRPO.",
    config="configs/claims_arith.py",
    # Off-policy, as DAPO trains (several gradient updates per rollout batch [recall]): with one
    # on-policy update the ratio is 1 and no clip ever binds, so the two arms were identical (the
    # first 3-seed run, results/claims/dapo_clip_higher/onpolicy_summary.json). 4 mini-batches of
    # 16 prompts x 8 samples per step [this config].
    arms={"symmetric_0.2": {"algo.clip_high": 0.2, "algo.num_minibatches": 4},
          "clip_higher_0.28": {"algo.clip_high": 0.28, "algo.num_minibatches": 4}},
    metric=Metric("train_last", "entropy", window=20),
    expect=("clip_higher_0.28", ">", "symmetric_0.2"),
    also=(Metric("eval", "pass@32"), Metric("eval", "pass@1"), Metric("train_last", "clip_frac_high")),
    quick=_QUICK, quick_config="configs/claims_arith.py:cpu",
    curves=("entropy", "accuracy", "clip_frac_high", "response_len")))

register_claim(Claim(
    name="dr_grpo_length_bias",
    paper="Dr. GRPO (Understanding R1-Zero-Like Training), arXiv 2503.20783, sec. 3.1 (catalog 4.4 "
          "claim 2)",
    sentence="[recall] GRPO's per-response length normalisation (and std normalisation) biases "
             "optimisation: longer incorrect responses are penalised less, so the length of "
             "incorrect responses keeps growing; Dr. GRPO removes both terms and the growth.",
    config="configs/claims_scratchpad.py",
    arms={"grpo": {"algo.agg_mode": "seq-mean-token-mean", "algo.advantage": "grpo"},
          "dr_grpo": {"algo.agg_mode": "seq-mean-token-sum-norm", "algo.advantage": "dr_grpo"}},
    metric=Metric("train_change", "response_len_incorrect", window=20),
    expect=("grpo", ">", "dr_grpo"),
    also=(Metric("eval", "greedy_accuracy"),),
    quick=_QUICK, quick_config="configs/claims_scratchpad.py:cpu",
    curves=("response_len_incorrect", "response_len_correct", "accuracy", "entropy"),
    notes="Runs on the column-scratchpad regime (configs/claims_scratchpad.py): bare-number answers "
          "have no room to grow, a scratchpad whose lines can be repeated does."))

register_claim(Claim(
    name="rl_sharpens_narrows",
    paper="Does RL Really Incentivize Reasoning Capacity Beyond the Base Model? (Limit of RLVR), "
          "arXiv 2504.13837 (catalog 4.4 claim 3)",
    sentence="[recall] RLVR-trained models outperform their base models at small k (pass@1), "
             "while base models reach a higher pass@k at large k.",
    config="configs/claims_arith.py",
    arms={"base": {"total_steps": 0}, "rl": {}},
    metric=Metric("eval", "pass@1"),
    expect=("rl", ">", "base"),
    also=(Metric("eval", "pass@64"), Metric("eval", "greedy_accuracy")),
    quick={**_QUICK, "eval.num_samples": 8}, quick_config="configs/claims_arith.py:cpu",
    notes="The second half (base >= RL at pass@256) is read from the pass@k curves of summary.json "
          "(its own verdict: the 'also' metrics at the largest k)."))

register_claim(Claim(
    name="ttrl_majority_vote",
    paper="TTRL, arXiv 2504.16084 (catalog 4.4 claim 4; ETTRL / TraPO report the collapse)",
    sentence="[recall] Majority-vote self-reward improves accuracy without any labels when the "
             "model's majority answer is usually right; on a harder tier, where the majority is "
             "mostly wrong, label accuracy and entropy collapse.",
    config="configs/ttrl.py:arith",
    # Two difficulty tiers of one task, made by stopping the careless warm start early or late
    # (configs/claims_arith.py's sweep: 2000 steps pass@1 73%, maj ~80%; 400 steps pass@1 5.8%,
    # maj@64 7.3%).
    arms={"easy_sft2000": {"sft.steps": 2000}, "hard_sft400": {"sft.steps": 400}},
    metric=Metric("train_change", "accuracy", window=10),
    expect=("easy_sft2000", ">", "hard_sft400"),
    also=(Metric("train_change", "label_accuracy/majority_vote", window=10),
          Metric("train_change", "entropy", window=10),
          Metric("train_last", "reward_accuracy", window=10),
          Metric("eval", "greedy_accuracy")),
    quick=_QUICK,
    quick_arms={"easy_sft2000": {"sft.steps": 4}, "hard_sft400": {"sft.steps": 2}},
    quick_config="configs/ttrl.py:cpu",
    curves=("accuracy", "label_accuracy/majority_vote", "reward_accuracy", "entropy"),
    notes="Ground-truth accuracy is logged, never rewarded: the reward is the vote alone. The "
          "deciding metric is the change of training accuracy (first vs last 10 steps); the eval "
          "greedy accuracy before / after is in each run's eval.json."))

register_claim(Claim(
    name="co_reward_cross_view",
    paper="Co-Reward (Co-rewarding-I), arXiv 2508.00410 (catalog 4.4 claim 5)",
    sentence="[recall] Rewarding each view of a question by the majority answer of its rephrased "
             "view keeps pseudo-label and ground-truth accuracy higher, and collapses later, than "
             "single-view majority voting (TTRL).",
    config="configs/co_reward.py:arith",
    # Equal rollouts: 16 per question in both arms (TTRL: 16 votes, all trained; Co-Reward: 8 per
    # view, both views trained). The warm start (1000 SFT steps, pass@1 22.9%) is the middle tier.
    arms={"ttrl_single_view": {
              "episode.name": "single_turn", "episode.options": {},
              "rollout.num_samples": 16,
              "reward.terms": [{"name": "majority_vote", "weight": 1.0,
                                "options": {"extract": "none"}}]},
          "co_reward": {}},
    metric=Metric("train_last", "accuracy", window=10),
    expect=("co_reward", ">", "ttrl_single_view"),
    also=(Metric("train_last", "label_accuracy", window=10),
          Metric("train_last", "reward_accuracy", window=10),
          Metric("train_change", "entropy", window=10),
          Metric("eval", "greedy_accuracy"), Metric("eval", "pass@1")),
    quick=_QUICK,
    quick_arms={"ttrl_single_view": {"rollout.num_samples": 4,
                                     "reward.terms": [{"name": "majority_vote",
                                                       "options": {"extract": "none"}}]},
                "co_reward": {"rollout.num_samples": 2}},
    quick_config="configs/co_reward.py:cpu",
    curves=("accuracy", "label_accuracy", "reward_accuracy", "entropy"),
    notes="Ground truth is logged, never rewarded. Both arms train on 16 rollouts per question; "
          "the second view is the commuted expression (b + a for a + b), the procedural rephraser "
          "of configs/co_reward.py:arith."))

register_claim(Claim(
    name="trapo_semi_supervised",
    paper="TraPO, arXiv 2512.13106 (catalog 4.4 claim 6)",
    sentence="[abstract] A small labelled set stabilises self-rewarded RL: with 10% of the labels "
             "and trajectory-similarity selection of unlabelled prompts, accuracy is at least that "
             "of majority-vote RL on all prompts unlabelled, and close to full supervision.",
    config="configs/trapo.py:arith",
    # One RL pool of 320 prompts, 10 epochs. The TTRL arm is the same reward with no labels (the
    # strict vote on every prompt, no selection); the two supervised arms bound TraPO from above
    # (all 320 labelled) and isolate the selection (only the 32 labelled prompts ever trained).
    arms={"ttrl_unlabelled": {"data.labelled_fraction": 0.0, "batch.builders": ()},
          "trapo_10pct": {},
          "labelled_10pct_only": {"batch.builder_options.trajectory_select.warmup": 10**6},
          "supervised_100pct": {"data.labelled_fraction": 1.0, "batch.builders": ()}},
    metric=Metric("eval", "pass@1"),
    expect=("trapo_10pct", ">", "ttrl_unlabelled"),
    also=(Metric("eval", "greedy_accuracy"), Metric("eval", "pass@16"),
          Metric("train_last", "accuracy", window=10),
          Metric("train_last", "valid_group_frac", window=10)),
    quick=_QUICK,
    quick_config="configs/trapo.py:cpu",
    curves=("accuracy", "label_accuracy", "batch/trajectory_select/selected_frac",
            "batch/trajectory_select/selected_label_accuracy"),
    notes="Deciding metric: held-out sampled pass@1 after training (300 problems x 16 samples). "
          "'Close to full supervision' is read from the supervised_100pct arm's numbers."))

register_claim(Claim(
    name="intuitor_self_certainty",
    paper="Intuitor, arXiv 2505.19590 (catalog 4.4 claim 7)",
    sentence="[recall] With the policy's self-certainty as the only reward, accuracy gains a little "
             "early while entropy falls; trained longer, the reward is hacked by confident outputs "
             "(shorter or repetitive) rather than correct ones.",
    config="configs/intuitor.py:arith",
    arms={"intuitor": {},
          "gold_reward": {"reward.terms": [{"name": "exact_match", "weight": 1.0,
                                            "options": {"extract": "none"}}]}},
    # Entropy falls faster under the self-certainty reward than under the gold reward.
    metric=Metric("train_change", "entropy", window=10),
    expect=("gold_reward", ">", "intuitor"),
    also=(Metric("train_change", "accuracy", window=10),
          Metric("train_change", "response_len", window=10),
          Metric("train_last", "reward_auroc", window=10),
          Metric("eval", "greedy_accuracy"), Metric("eval", "pass@1"), Metric("eval", "pass@16")),
    quick=_QUICK,
    quick_arms={"gold_reward": {"reward.terms": [{"name": "exact_match",
                                                  "options": {"extract": "none"}}]}},
    quick_config="configs/intuitor.py:cpu",
    curves=("accuracy", "entropy", "response_len", "reward_mean"),
    notes="The gold-reward arm is the reference (the same regime trained on exact match). Early "
          "gains and hacking are read from the curves (accuracy up first, then down while the "
          "self-certainty reward keeps rising); reward_auroc says whether self-certainty still "
          "ranks correct samples above incorrect ones."))

register_claim(Claim(
    name="forking_tokens_80_20",
    paper="Beyond the 80/20 Rule, arXiv 2506.01939 (catalog 4.4 claim 8)",
    sentence="[paper, as summarised in catalog 1.2] Keeping the policy gradient only on the 20% "
             "highest-entropy tokens matches full-token training (and beats it at scale), while "
             "training only on the other 80% is clearly worse.",
    config="configs/forking_tokens.py:arith",
    arms={"all_tokens": {"algo.loss_options.rho": 1.0},
          "top20": {},
          "bottom80": {"algo.loss_options.keep": "bottom"}},
    metric=Metric("eval", "pass@1"),
    expect=("top20", ">", "bottom80"),
    also=(Metric("eval", "greedy_accuracy"), Metric("eval", "pass@16"),
          Metric("train_last", "forking_kept", window=10),
          Metric("train_change", "entropy", window=10)),
    quick=_QUICK,
    quick_config="configs/forking_tokens.py:cpu",
    curves=("accuracy", "entropy", "forking_kept", "response_len"),
    notes="The 'matches full-token training' half is read from the all_tokens arm (rho = 1: every "
          "token, the same loss without a mask). Bare-number answers: the forking tokens are the "
          "digits where the careless warm start hesitates."))

_OFF_POLICY = {"algo.num_minibatches": 4}  # 4 updates per rollout batch: ratios leave 1

register_claim(Claim(
    name="diversity_preserving_losses",
    paper="Lp-Reg (2510.03222), ACE (2602.21420), DISPO (2602.00983); catalog 4.4 claim 9",
    sentence="[paper summaries, catalog 2.3-2.4] Losses that protect low-probability tokens or "
             "penalise confident errors keep pass@k at large k (and entropy) closer to the base "
             "model than GRPO at equal pass@1.",
    config="configs/claims_arith.py",
    arms={"grpo": dict(_OFF_POLICY),
          "lp_reg": {**_OFF_POLICY, "algo.loss": "lp_reg",
                     "algo.loss_options": {"kappa": 0.02, "neg_frac": 0.01, "beta": 1.0}},
          "ace": {**_OFF_POLICY, "algo.loss": "ace", "algo.loss_options": {"alpha": 1.0}},
          "dispo_w_up": {**_OFF_POLICY, "algo.loss": "dispo",
                         "algo.loss_options": {"pos_low": 0.2, "pos_high": 1.0,
                                               "neg_low": 0.2, "neg_high": 0.28}},
          "dph_rl": {**_OFF_POLICY, "episode.name": "rehearsal",
                     "episode.options": {"rehearsal_samples": 8, "perfect_threshold": 1.0},
                     "algo.aux_losses": [{"name": "forward_kl", "weight": 1.0,
                                          "options": {"divergence": "k1", "roles": [1]}}]}},
    metric=Metric("eval", "pass@64"),
    expect=("lp_reg", ">", "grpo"),
    also=(Metric("eval", "pass@1"), Metric("eval", "pass@8"), Metric("eval", "greedy_accuracy"),
          Metric("train_last", "entropy", window=10)),
    quick={"total_steps": 3, "eval.size": 4, "eval.num_samples": 64},  # pass@64 needs n = 64
    quick_config="configs/claims_arith.py:cpu",
    curves=("accuracy", "entropy", "clip_frac", "response_len"),
    notes="All arms train off-policy (4 mini-batches per rollout batch) so that DISPO's bounds and "
          "the clip act. Deciding pair: Lp-Reg vs GRPO on held-out pass@64 (300 problems x 64); "
          "ACE, DISPO (room for weights up to 2 on correct responses) and DPH-RL (forward KL on "
          "the initial policy's samples of prompts it always solves) are read from their own "
          "numbers against the same GRPO arm."))

register_claim(Claim(
    name="ead_annealed_temperature",
    paper="EAD, arXiv 2510.05251 (docs/papers.md 4.4 claim 15)",
    sentence="[abstract] Annealing the sampling temperature from high to low along each response "
             "(explore early tokens, exploit late ones) gives higher accuracy at equal training "
             "steps than a fixed temperature of 1.0, and than a fixed high temperature.",
    config="configs/ead.py:arith",
    arms={"fixed_t1": {"rollout.temperature": 1.0, "rollout.temperature_schedule": "constant",
                       "rollout.temperature_end": None, "algo.loss": "ppo_clip",
                       "algo.loss_options": {}},
          "fixed_hot": {"rollout.schedule_options.decay0": 1e9,
                        "rollout.schedule_options.decay_growth": 0.0},
          "ead": {}},
    metric=Metric("eval", "pass@1"),
    expect=("ead", ">", "fixed_t1"),
    also=(Metric("eval", "greedy_accuracy"), Metric("eval", "pass@16"),
          Metric("train_last", "accuracy", window=10), Metric("train_last", "tis_weight", window=10),
          Metric("train_change", "entropy", window=10)),
    quick=_QUICK,
    quick_config="configs/ead.py:cpu",
    curves=("accuracy", "entropy", "tis_weight", "response_len"),
    notes="fixed_hot samples every token at tau_max = 1.2 (EAD's schedule with an infinite decay) "
          "and trains like the ead arm (temperature-1 learner, truncated IS, C = 2); fixed_t1 is "
          "plain GRPO at temperature 1 (no importance weight needed). Held-out evaluation samples "
          "at temperature 1 in every arm. Decay scaled to bare-number answers (configs/ead.py)."))

register_claim(Claim(
    name="dispo_entropy_knobs",
    paper="DISPO, arXiv 2602.00983 (docs/papers.md 2.4; the abstract's knob directions)",
    sentence="[abstract] On correct responses, importance weights above 1 raise the entropy "
             "(exploration) and weights below 1 lower it (distillation).",
    config="configs/claims_arith.py",
    arms={"correct_w_above_1": {**_OFF_POLICY, "algo.loss": "dispo",
                                "algo.loss_options": {"pos_low": 0.0, "pos_high": 1.0,
                                                      "neg_low": 0.2, "neg_high": 0.28}},
          "correct_w_below_1": {**_OFF_POLICY, "algo.loss": "dispo",
                                "algo.loss_options": {"pos_low": 0.5, "pos_high": 0.0,
                                                      "neg_low": 0.2, "neg_high": 0.28}}},
    metric=Metric("train_change", "entropy", window=10),
    expect=("correct_w_above_1", ">", "correct_w_below_1"),
    also=(Metric("eval", "pass@1"), Metric("eval", "pass@64"), Metric("eval", "greedy_accuracy"),
          Metric("train_last", "clip_frac", window=10)),
    quick={"total_steps": 3, "eval.size": 4, "eval.num_samples": 64},
    quick_config="configs/claims_arith.py:cpu",
    curves=("accuracy", "entropy", "clip_frac", "response_len"),
    notes="Both arms train off-policy (4 mini-batches per rollout batch) so that importance weights "
          "leave 1; correct-response tokens outside [1, 2] (first arm) or [0.5, 1] (second arm) are "
          "masked, incorrect ones keep DAPO's [0.8, 1.28]. The first mini-batch of every rollout "
          "(weights exactly 1) trains the same in both arms."))

_RAPO_BETA = 0.1  # the same coefficient for both divergences (configs/rapo.py:arith) [this config]

register_claim(Claim(
    name="rapo_forward_kl_passk",
    paper="RAPO, 'Unlocking Reasoning Capabilities in LLMs via Reinforcement Learning "
          "Exploration' (Oct 2025; abstract only; configs/rapo.py)",
    sentence="[abstract, read as a claim] RAPO's forward KL to a reward-reweighted reference keeps "
             "pass@k at large k above GRPO with a reverse KL of the same coefficient, while pass@1 "
             "is not worse.",
    config="configs/rapo.py:arith",
    arms={"rapo": {},
          "reverse_kl": {"algo.aux_losses": [], "algo.kl_coef": _RAPO_BETA,
                         "algo.kl_estimator": "k2"},
          "no_kl": {"algo.aux_losses": []}},
    metric=Metric("eval", "pass@64"),
    expect=("rapo", ">", "reverse_kl"),
    also=(Metric("eval", "pass@1"), Metric("eval", "pass@8"), Metric("eval", "pass@16"),
          Metric("eval", "greedy_accuracy"), Metric("train_last", "entropy", window=10),
          Metric("train_last", "kl", window=10),
          Metric("train_last", "aux/rapo_forward_kl/fkl", window=10),
          Metric("train_last", "aux/rapo_forward_kl/is_weight", window=10)),
    quick={"total_steps": 3, "eval.size": 4, "eval.num_samples": 64},  # pass@64 needs n = 64
    quick_config="configs/rapo.py:cpu",
    curves=("accuracy", "entropy", "kl", "aux/rapo_forward_kl/fkl"),
    notes="All arms train on-policy (one update per rollout batch). The reverse-KL arm uses k2 in "
          "the loss, whose gradient is the reverse-KL gradient (GRPO's k3 in the loss already has "
          "the forward-KL gradient in expectation, configs/rapo.py); rapo uses beta = 0.1, tilt "
          "lambda = 1, truncation C = 10; no_kl is plain GRPO for scale. The 'pass@1 not worse' "
          "half is read from the pass@1 numbers of the two arms (not part of the verdict)."))
