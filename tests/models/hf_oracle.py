"""Tiny random Hugging Face models (the test oracle) for the three supported families.

Weights are re-drawn at unit scale (1/sqrt(fan_in) matrices, norms 1 +- 0.3, biases 0.3) so that
logits are O(1): with HF's 0.02 init every logit is ~0 and a parity check would prove nothing.
"""
import numpy as np
import torch
import transformers

torch.set_num_threads(1)
transformers.utils.logging.disable_progress_bar()
transformers.utils.logging.set_verbosity_error()

VOCAB = 256
_COMMON = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=2)
# One config per family: llama (llama3 RoPE scaling that bites below 128 positions, tied),
# qwen2 (q/k/v biases, untied), qwen3 (q/k norm, explicit head_dim != hidden/heads, tied).
LLAMA3_ROPE = dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                   original_max_position_embeddings=64, rope_theta=10000.0)
FAMILIES = ("llama", "qwen2", "qwen3")


def hf_config(family: str):
  if family == "llama":
    return transformers.LlamaConfig(**_COMMON, rope_parameters=dict(LLAMA3_ROPE), rms_norm_eps=1e-5,
                                    tie_word_embeddings=True)
  if family == "qwen2":
    return transformers.Qwen2Config(**_COMMON, tie_word_embeddings=False, rope_parameters=dict(
        rope_type="default", rope_theta=1e6))
  if family == "qwen3":
    return transformers.Qwen3Config(**_COMMON, head_dim=24, tie_word_embeddings=True)
  raise KeyError(family)


def make_hf_model(family: str, seed: int = 0):
  torch.manual_seed(seed)
  model = transformers.AutoModelForCausalLM.from_config(hf_config(family)).eval()
  with torch.no_grad():
    for name, p in model.named_parameters():
      if "norm" in name:
        p.copy_(1 + 0.3 * torch.randn_like(p))
      elif name.endswith("bias"):
        p.copy_(0.3 * torch.randn_like(p))
      else:
        p.copy_(torch.randn_like(p) / np.sqrt(p.shape[-1]))
  return model


def hf_logits(model, tokens, attention_mask=None, position_ids=None) -> np.ndarray:
  kw = {}
  if attention_mask is not None:
    kw["attention_mask"] = torch.tensor(np.asarray(attention_mask), dtype=torch.long)
  if position_ids is not None:
    kw["position_ids"] = torch.tensor(np.asarray(position_ids), dtype=torch.long)
  with torch.no_grad():
    return model(torch.tensor(np.asarray(tokens), dtype=torch.long), **kw).logits.float().numpy()
