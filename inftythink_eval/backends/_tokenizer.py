"""Token operations shared by backends that hold a transformers tokenizer (hf, vllm, openai).

Owns: count/encode/decode without special tokens, the one BOS rule for
prompts (``prompt_ids``) and chat-template rendering with a clear error when
the model has none.  Classes using it provide a
``tokenizer`` attribute (or property) and ``model_id``.

Does not know: engines, requests, rounds, lm-eval.
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

    def prompt_ids(self, prompt: str) -> list[int]:
        """Token ids of a prompt: the tokenizer's own special tokens (BOS for models that use one), except
        when the text already starts with the BOS token (a chat template wrote it): then none, so BOS is
        never doubled.  lm-eval's ``hf`` model follows the same rule."""
        bos = getattr(self.tokenizer, "bos_token", None)
        add = not (bos and prompt.startswith(bos))
        return self.tokenizer(prompt, add_special_tokens=add)["input_ids"]

    def starts_with_bos(self, prompt: str) -> bool:
        bos = getattr(self.tokenizer, "bos_token", None)
        return bool(bos) and prompt.startswith(bos)

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(f"model {self.model_id!r} has no chat template; run without --apply_chat_template, "
                             "or use a chat model")
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
