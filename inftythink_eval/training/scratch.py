"""Models built from nothing: a char-level tokenizer and a tiny Llama, saved as a normal transformers folder.

Owns: ``char_tokenizer`` (a ``tokenizers`` BPE with no merges, so one token
per character; specials ``<pad>``, ``<eos>``, ``<unk>``; its chat template renders
the native round-1 prompt (``formats.inftythink.native_chat_template``), or a
compact chat of ours for InftyThink+ rows) and ``tiny_model``
(a randomly initialised ``LlamaForCausalLM`` from a dict of LlamaConfig
fields).  Both load back with ``AutoTokenizer``/``AutoModelForCausalLM``.

Does not know: training, data, the synthetic task (the caller passes the characters).
"""

from __future__ import annotations

from inftythink_eval.formats import plus
from inftythink_eval.formats.inftythink import native_chat_template

SPECIALS = ("<pad>", "<eos>", "<unk>")
PRINTABLE = "".join(chr(i) for i in range(32, 127)) + "\n"
_ARCH_DEFAULTS = {"hidden_size": 128, "intermediate_size": 384, "num_hidden_layers": 4,
                  "num_attention_heads": 4, "num_key_value_heads": 4, "max_position_embeddings": 384,
                  "rope_theta": 10000.0, "tie_word_embeddings": True}


# The InftyThink+ tiny model's own chat: short role markers (every character is a token of a
# 256-token window).  Ours, not a protocol string: InftyThink+ rows only need *a* chat template.
PLUS_USER, PLUS_ASSISTANT, PLUS_SYSTEM = "<|user|>", "<|assistant|>", "<|system|>"


def plus_chat_template() -> str:
    """A compact chat template for a model trained on InftyThink+ rows: ``<|user|>{q}<|assistant|>``.

    Every turn is rendered (a system turn as ``<|system|>{s}``); an assistant turn ends with the
    eos token, and the generation prompt opens the assistant turn, where the evaluator prefills
    ``<history>…</history>`` from the second iteration on.
    """
    return ("{% for m in messages %}"
            f"{{% if m['role'] == 'system' %}}{PLUS_SYSTEM}{{{{ m['content'] }}}}"
            f"{{% elif m['role'] == 'user' %}}{PLUS_USER}{{{{ m['content'] }}}}"
            f"{{% else %}}{PLUS_ASSISTANT}{{{{ m['content'] }}}}{{{{ eos_token }}}}{{% endif %}}"
            "{% endfor %}"
            f"{{% if add_generation_prompt %}}{PLUS_ASSISTANT}{{% endif %}}")


CHAT_TEMPLATES = {"native": native_chat_template, plus.NAME: plus_chat_template}


def char_tokenizer(chars: str = PRINTABLE, chat_template: str = "native"):
    """A fast tokenizer with one token per character of ``chars`` (duplicates ignored);
    ``chat_template``: ``native`` or ``inftythink_plus`` (alias ``plus``; see ``CHAT_TEMPLATES``)."""
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    if chars == "printable":
        chars = PRINTABLE
    unique = list(dict.fromkeys(chars))
    if not unique:
        raise ValueError("char_tokenizer needs at least one character")
    vocab = {tok: i for i, tok in enumerate([*SPECIALS, *unique])}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    core.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="<eos>",
                                        unk_token="<unk>", model_max_length=10**6)
    tokenizer.chat_template = CHAT_TEMPLATES[plus.format_name(chat_template)]()
    return tokenizer


def tiny_model(tokenizer, arch: dict | None = None, seed: int = 0):
    """A fresh LlamaForCausalLM sized by ``arch`` (LlamaConfig fields; ``chars`` and ``chat_template`` are ignored)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    fields = {**_ARCH_DEFAULTS, **{k: v for k, v in (arch or {}).items() if k not in ("chars", "chat_template")}}
    config = LlamaConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=None, **fields)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def parameter_count(model) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["SPECIALS", "PRINTABLE", "CHAT_TEMPLATES", "char_tokenizer", "tiny_model", "parameter_count"]
