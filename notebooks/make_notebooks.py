"""Writes notebooks/<family>.ipynb: one Colab notebook per recipe family.

    python -m notebooks.make_notebooks        # after adding a config or a claim to a family

Each notebook has an "Open in Colab" link, an install cell that runs only in Colab, the CPU-sized
run of every config of the family (in-process, so compiled programs are shared), their learning
curves and last-step metrics side by side, and each of the family's claims as measured
(results/claims/<claim>: the arms side by side, the verdict, the curves and pass@k plots).

Notebooks are committed with their outputs stripped: this script writes them, and
tests/test_notebooks.py checks that the committed files are what it writes, that every config and
every measured claim belongs to one family, and executes every notebook (nbclient) on the CPU-sized
settings, failing on any cell error.
"""
from __future__ import annotations

import json
import pathlib

from notebooks import helpers

REPO = helpers.REPO
NOTEBOOKS = REPO / "notebooks"
# Where the Colab links point (the public repository).
GITHUB = "rlvr-jax/rlvr_jax"
SKIP = ("__init__", "common")


# family -> (title, what it is, configs, claims, full_run): configs run at ":cpu", except that a
# family with full_run=True runs them as written unless RLVR_NOTEBOOK_SMOKE is set (CI).
FAMILIES = {
    "quickstart": (
        "Quickstart: GRPO on a tiny model in minutes on a CPU",
        "A character-level model is warm-started by imitating a careless teacher on 2-digit "
        "addition and subtraction, then trained with GRPO against an exact-match verifier. The full "
        "run takes about 4-5 minutes on 2 CPU cores and lifts held-out greedy accuracy by 14-20 "
        "points (README ledger).",
        ["quickstart"], [], True),
    "grpo_family": (
        "The GRPO family: GRPO, Dr. GRPO, DAPO, RLOO, REINFORCE++, GSPO, CISPO",
        "The baseline objectives every later paper builds on, the two tiny-scale claim regimes, and "
        "a real-checkpoint config. Claims: RL sharpens pass@1 and narrows pass@k (Limit of RLVR), "
        "clip-higher (DAPO), GRPO's length bias (Dr. GRPO).",
        ["grpo", "dr_grpo", "dapo", "rloo", "reinforce_pp", "gspo", "cispo",
         "grpo_qwen2p5_0p5b_gsm8k", "claims_arith", "claims_scratchpad"],
        ["rl_sharpens_narrows", "dapo_clip_higher", "dr_grpo_length_bias"], False),
    "label_free": (
        "Label-free rewards: TTRL, Co-Reward, Intuitor, TraPO, RLCCF, ETTRL, KnowRL, SSR-Zero",
        "Rewards computed without gold answers: majority votes, cross-view agreement, "
        "self-certainty, semi-supervised selection, consensus and self-judgement.",
        ["ttrl", "co_reward", "intuitor", "trapo", "rlccf", "ettrl", "knowrl", "ssr_zero"],
        ["ttrl_majority_vote", "co_reward_cross_view", "trapo_semi_supervised",
         "intuitor_self_certainty"], False),
    "entropy_exploration": (
        "Entropy and exploration: 80/20 forking tokens, Clip-Cov / KL-Cov, DISPO, ACE, Lp-Reg, "
        "ProGRPO, DPH-RL, EAD, RAPO",
        "Policy losses, advantages and sampling schedules that keep exploration alive (token "
        "entropy, pass@k at large k).",
        ["forking_tokens", "entropy_mechanism", "dispo", "ace", "lp_reg", "progrpo", "dph_rl",
         "ead", "rapo"],
        ["forking_tokens_80_20", "diversity_preserving_losses", "dispo_entropy_knobs",
         "ead_annealed_temperature", "rapo_forward_kl_passk"], False),
    "multi_turn_self_play": (
        "Multi-turn episodes and self-play: two-turn self-correction, tic-tac-toe self-play",
        "The engine's multi-turn and two-seat episodes (SCoRe's and SPIRAL's settings); the papers "
        "themselves are not reproduced yet (README ledger).",
        ["two_turn_selfcorrect", "selfplay_tictactoe"], [], False),
}


def config_names() -> list[str]:
  return sorted(p.stem for p in (REPO / "configs").glob("*.py") if p.stem not in SKIP)


def measured_claims() -> list[str]:
  return sorted(p.parent.name for p in helpers.CLAIMS.glob("*/summary.json"))


def _cell(kind: str, text: str) -> dict:
  cell = {"cell_type": kind, "metadata": {}, "source": text.strip("\n").splitlines(keepends=True)}
  if kind == "code":
    cell.update(execution_count=None, outputs=[])
  return cell


def colab_url(family: str) -> str:
  return f"https://colab.research.google.com/github/{GITHUB}/blob/main/notebooks/{family}.ipynb"


INSTALL = f"""
# Colab only (CI and a local Jupyter started in the checkout skip this cell): fetch and install.
import sys
if "google.colab" in sys.modules:
    !git clone -q https://github.com/{GITHUB}.git /content/rlvr_jax
    %cd /content/rlvr_jax
    !pip install -q -e ".[plots,notebooks]"
"""

SETUP = """
import os, pathlib, sys
root = pathlib.Path.cwd()
if not (root / "configs").is_dir():
    root = root.parent  # started in notebooks/
os.chdir(root)
sys.path.insert(0, str(root))

import jax
# Compiled programs persist across sessions (CI points this at the test suite's cache).
jax.config.update("jax_compilation_cache_dir", os.environ.get(
    "JAX_COMPILATION_CACHE_DIR", os.path.expanduser("~/.cache/rlvr_jax/jit")))
from notebooks import helpers
print("JAX", jax.__version__, "on", jax.default_backend())
"""


def build(family: str) -> dict:
  title, blurb, names, claims, full_run = FAMILIES[family]
  listing = helpers.markdown_table(
      ["config", "reproduction card"],
      [[f"`configs/{n}.py`", helpers.card_title(n)] for n in names])
  cells = [
      _cell("markdown", f"""
# {title}

[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(family)})

{blurb}

{listing}

Each config's docstring is its reproduction card (paper, real model, data, hyperparameters,
command, hardware, expected and measured result). The README ledger has every measured result.
"""),
      _cell("code", INSTALL),
      _cell("code", SETUP),
  ]
  if full_run:
    cells += [
        _cell("markdown", """
## The run

The full run below is what the README's first line runs. CI executes this notebook with
`RLVR_NOTEBOOK_SMOKE=1`, which switches to the config's `:cpu` variant (two RL steps).
"""),
        _cell("code", f"""
ARG = "cpu" if helpers.smoke() else None
RUNS = helpers.run_configs({names!r}, ARG, notebook={family!r})
"""),
    ]
  else:
    cells += [
        _cell("markdown", """
## CPU-sized runs

Each config's `:cpu` variant: the paper's algorithm settings on a tiny random model and a short
arithmetic task, two RL steps. This checks the whole pipeline of every method in a few seconds each;
it is not the paper's result (the model is untrained, so rewards are mostly zero). The claims below
are the measured results at tiny scale.
"""),
        _cell("code", f"RUNS = helpers.run_configs({names!r}, 'cpu', notebook={family!r})"),
    ]
  cells += [
      _cell("code", "helpers.show_runs(RUNS)"),
      _cell("code", "# Held-out pass@k before and after RL (runs whose config evaluates).\n"
                    "helpers.show_passk(RUNS)"),
  ]
  for claim in claims:
    summary = helpers.claim_summary(claim)
    cells += [
        _cell("markdown", f"## Claim `{claim}`\n\n{summary['sentence']}\n"),
        _cell("code", f"helpers.show_claim({claim!r})"),
    ]
  cells.append(_cell("markdown", """
## Next

- A paper-scale run: the command in the config's card (`python -m experiments.run --config
  configs/<name>.py --workdir ...`), on a GPU or TPU with local checkpoint and data paths.
- A claim with more seeds: `python -m experiments.claims --claim <name> --seeds 5`.
- Adding a method: `docs/adding_a_method.md`.
"""))
  for i, cell in enumerate(cells):
    cell["id"] = f"{family}-{i:02d}"  # nbformat 4.5 cell ids, stable across regenerations
  return {"cells": cells,
          "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                      "name": "python3"},
                       "language_info": {"name": "python"},
                       "colab": {"provenance": []}},
          "nbformat": 4, "nbformat_minor": 5}


def render(family: str) -> str:
  return json.dumps(build(family), indent=1, sort_keys=True) + "\n"


def main() -> None:
  for family in FAMILIES:
    path = NOTEBOOKS / f"{family}.ipynb"
    path.write_text(render(family))
    print(f"wrote {path}")


if __name__ == "__main__":
  main()
