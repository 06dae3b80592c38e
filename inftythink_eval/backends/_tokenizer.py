"""Token operations shared by backends that hold a transformers tokenizer (hf, vllm, openai).

Owns: count/encode/decode without special tokens and chat-template rendering
with a clear error when the model has none.  Classes using it provide a
``tokenizer`` attribute (or property) and ``model_id``.
"""

from __future__ import annotations

from typing import Sequence


class TokenizerOps:
    tokenizer: object
    model_id: str

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(f"model {self.model_id!r} has no chat template; run without --apply_chat_template, "
                             "or use a chat model")
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
