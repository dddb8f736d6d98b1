"""Decoder models (Llama 3.x, Qwen2/2.5, Qwen3), Hugging Face import/export and tokenizers.

Public API: ``ModelConfig`` (presets and HF config conversion), ``Transformer`` (the NNX decoder:
forward, ``hidden_states`` / ``unembed_weight`` for fused log-probs, KV-cache ``init_cache`` /
``decode``), ``logical_axes``, ``load_hf`` / ``save_hf`` / ``checkpoint_dtype`` and ``Tokenizer``.
See the module docstrings of config.py, transformer.py, hf.py and tokenizer.py for the exact
contracts.
"""
from rlvr_jax.models.config import ModelConfig
from rlvr_jax.models.hf import checkpoint_dtype, generation_defaults, load_hf, save_hf
from rlvr_jax.models.hub import resolve_model_path
from rlvr_jax.models.tokenizer import Tokenizer, char_level, train_bpe, train_sentencepiece
from rlvr_jax.models.transformer import Transformer, logical_axes, positions_from_mask

__all__ = ["ModelConfig", "resolve_model_path",
           "Transformer", "logical_axes", "load_hf", "save_hf", "generation_defaults",
           "checkpoint_dtype", "Tokenizer", "char_level", "train_bpe", "train_sentencepiece",
           "positions_from_mask"]
