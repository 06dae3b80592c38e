"""Bytes of KV cache one token of context holds, from a model's configuration.

Owns: ``kv_bytes_per_token``: keys and values of every attention layer, ``2 x layers x KV heads x head
size x bytes per element`` (grouped-query attention counts its KV heads, not its query heads).  The backends
that know their model's configuration (``hf``, ``vllm``) report it, so a sample's KV footprint in tokens
(``run.trace``: kv_tokens) also reads in bytes.  None where the configuration does not say (a model with
its own cache layout: sliding windows, MLA, state-space layers are not modelled here).

Does not know: backends, engines, rounds.
"""

from __future__ import annotations

from typing import Any, Optional


def kv_bytes_per_token(config: Any, element_bytes: int) -> Optional[int]:
    """``2 * layers * kv_heads * head_dim * element_bytes`` for a transformers-style (text) config, or None."""
    config = getattr(config, "text_config", None) or config
    layers = getattr(config, "num_hidden_layers", None)
    heads = getattr(config, "num_attention_heads", None)
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    hidden = getattr(config, "hidden_size", None)
    head_dim = getattr(config, "head_dim", None) or (hidden // heads if hidden and heads else None)
    if getattr(config, "sliding_window", None) or getattr(config, "kv_lora_rank", None):
        return None  # a cache that is not one K and V row per token and layer
    if not all(isinstance(v, int) and v > 0 for v in (layers, kv_heads, head_dim, element_bytes)):
        return None
    return 2 * layers * kv_heads * head_dim * element_bytes
