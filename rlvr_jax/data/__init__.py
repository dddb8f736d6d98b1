"""Task sources, held-out splits, prompt templates and the grain prompt pipeline.

Public API::

    make_source(config) -> source              # SOURCES registry: reasoning_gym, mixture, jsonl,
                                               # parquet, arrow (save_to_disk), tfds, judge_pairs
    make_eval_source(train_config, ...) -> source   # held-out, no question overlap with training
    make_template(name, **options) -> fn       # TEMPLATES registry: plain, r1, chat
    make_prompt_iterator(source, *, batch_size, seed, shard_index, shard_count, num_epochs)
"""
from rlvr_jax.data.heldout import SEED_OFFSET, derive_eval_config, make_eval_source
from rlvr_jax.data.pipeline import make_eval_iterator, make_prompt_dataset, make_prompt_iterator
from rlvr_jax.data.rows import Conversation, gsm8k_answer, last_boxed, normalize_question
from rlvr_jax.data.sources import (SOURCES, LabelledSplitSource, ListSource, MixtureSource,
                                   ReasoningGymSource, SubsetSource, unlabelled_source,
                                   make_source)
from rlvr_jax.data.templates import (R1_ZERO_TEMPLATE, TEMPLATES, apply_template, make_template,
                                     render_prompt)

__all__ = [
    "unlabelled_source", "SEED_OFFSET", "SOURCES", "TEMPLATES", "R1_ZERO_TEMPLATE", "LabelledSplitSource", "SubsetSource",
    "ListSource", "MixtureSource", "Conversation",
    "ReasoningGymSource", "apply_template", "derive_eval_config", "gsm8k_answer", "last_boxed",
    "make_eval_iterator", "make_eval_source", "make_prompt_dataset", "make_prompt_iterator",
    "make_source", "make_template", "normalize_question", "render_prompt",
]
