r"""Self-play on tic-tac-toe with the two_seat_game episode: one policy plays both seats, zero-sum
outcomes, role-conditioned advantage estimation (RAE: a per-seat EMA baseline kept in the run's
algorithm state and checkpoints).

Paper: SPIRAL (Liu et al., "SPIRAL: Self-Play on Zero-Sum Games Incentivizes Reasoning via
Multi-Agent Multi-Turn Reinforcement Learning", arXiv 2506.24119; docs/papers.md 2.3, 2.8). SPIRAL
trains Qwen3-4B-Base on TicTacToe, Kuhn Poker and Simple Negotiation through TextArena; this config
is the engine's two-seat run on a built-in tic-tac-toe (rlvr_jax/episodes/games/tictactoe.py), not
yet a reproduction of SPIRAL's transfer results: that is the self-play issue.

Reproduction card
  paper:     SPIRAL: Qwen3-4B-Base, Kuhn Poker self-play, +8.6% math / +8.4% general reasoning
             [abstract, docs/papers.md 2.8]; RAE with decay 0.95, lr 1e-6, 128 games per batch,
             T = 1.0 [docs/papers.md 2.3, from the reference code].
  command:   python -m experiments.run --config configs/selfplay_tictactoe.py --workdir /runs/ttt \
               --config.model.path=/models/Qwen3-4B-Base
             CPU smoke run: python -m experiments.run --config configs/selfplay_tictactoe.py:cpu \
               --workdir /tmp/ttt
  hardware:  untested at full size; the :cpu variant takes ~1 minute on 2 CPU cores.
             Memory plan: mesh {data: 1, fsdp: 1, tensor: 8}, rollout.max_rows_per_call 128,
             algo.micro_batch_size 1, eval.batch_size 256, model.remat False fit 8 x H100-80GB [this
             config] (python -m experiments.memory --config configs/selfplay_tictactoe.py).
  expected:  illegal-move rate falls, and the per-seat baselines absorb the first-mover advantage
             (docs/papers.md 4.4 claim 18).
  measured:  none (the :cpu variant is a 2-step smoke test with a random tiny model).

Metrics: episode/seat0_win_rate, episode/seat1_win_rate, episode/draw_rate,
episode/illegal_move_rate, episode/game_plies, adv/baseline_role0, adv/baseline_role1; role0/* and
role1/* per-seat means. Tags: [paper] as printed; [docs/papers.md X.Y] as summarised in that
section; [this config] ours.
"""
import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = common.base()
  c.total_steps = 400  # policy steps [docs/papers.md 2.3]
  common.hf_checkpoint(c)
  # Memory plan (python -m experiments.memory): Qwen3-4B shapes on the card's hardware.
  c.hardware.update(dict(model="qwen3_4b", device="H100-80GB", count=8, memory_gib=80.0))
  c.data.template = "plain"  # the rendered board is the whole prompt [this config]
  c.data.template_options = ml_collections.ConfigDict(dict(format="{question}"))
  c.eval.size = 0  # no held-out set: the game is the task

  c.episode.name = "two_seat_game"
  c.episode.options = ml_collections.ConfigDict(dict(game="tictactoe", opening_moves=0))

  c.rollout.prompts_per_step = 128  # games per rollout batch [docs/papers.md 2.3]
  c.rollout.num_samples = 1  # one move per position; the game supplies the groups
  c.rollout.max_new_tokens = 4096  # [docs/papers.md 2.3]
  c.rollout.temperature = 1.0  # [docs/papers.md 2.3]

  c.algo.advantage = "role_baseline"  # RAE [paper]
  # alpha [docs/papers.md 2.3]
  c.algo.advantage_options = ml_collections.ConfigDict(dict(decay=0.95))
  c.algo.loss = "ppo_clip"
  c.algo.agg_mode = "seq-mean-token-mean"
  c.algo.kl_coef = 0.0  # no KL [docs/papers.md 2.3]
  c.algo.epochs = 2  # PPO epochs [docs/papers.md 2.3]
  c.optim.lr = 1e-6  # constant [docs/papers.md 2.3]
  c.optim.schedule = "constant"

  if arg == "cpu":
    common.cpu_variant(c)
    c.episode.options.opening_moves = 2  # vary the positions the tiny model sees
    c.rollout.max_new_tokens = 2  # a move and a stop token
    c.algo.epochs = 1
  elif arg:
    raise ValueError(f"configs/selfplay_tictactoe.py: unknown argument {arg!r}; use no argument "
                     "or 'cpu'")
  return c
