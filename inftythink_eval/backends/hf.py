"""``hf``: transformers in-process backend (the CPU default).

Owns: loading a model by hub id, local folder or GGUF file; batched
left-padded generation with per-sequence stop strings; token counts from
the model's own ids; the chat template; loglikelihood scoring.

Does not know: rounds, modes, lm-eval.  Requests in one call are grouped by
sampling parameters; a group with ``temperature > 0`` is seeded with the
first request's seed (transformers has no per-row seed).
"""

from __future__ import annotations

import threading
from itertools import groupby
from pathlib import Path
from typing import Optional, Sequence

from ._tokenizer import TokenizerOps
from .base import BackendError, Completion, Request, SamplingParams


class HFBackend(TokenizerOps):
    name = "hf"

    def __init__(self, pretrained: str, dtype: str = "auto", device: str = "cpu", batch_size: int = 8,
                 revision: Optional[str] = None, trust_remote_code: bool = False,
                 gguf_file: Optional[str] = None, **_: object) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_id, self.max_batch, self.concurrency = str(pretrained), int(batch_size), 1
        path = Path(pretrained)
        kwargs: dict = {"revision": revision, "trust_remote_code": trust_remote_code}
        source = str(pretrained)
        if path.suffix == ".gguf" and path.is_file():
            source, gguf_file = str(path.parent), path.name
        if gguf_file:
            kwargs["gguf_file"] = gguf_file
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
            torch_dtype = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16,
                           "float16": torch.float16}[dtype]
            self.model = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype, **kwargs)
        except KeyError:
            raise ValueError(f"dtype must be one of auto, float32, bfloat16, float16; got {dtype!r}") from None
        except OSError as exc:
            raise BackendError(f"hf backend: cannot load model {pretrained!r}: {exc}. Pass a hub id, a local "
                               "folder with config.json, a .gguf file, or zoo:<name> (see `inftythink zoo list`)") from exc
        self.model.to(device).eval()
        self.device = device
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._eos_ids = _eos_ids(self.model, self.tokenizer)
        self._lock = threading.Lock()

    # --- generation ---------------------------------------------------------
    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        results: dict[int, Completion] = {}
        order = sorted(range(len(requests)), key=lambda i: _group_key(requests[i].params))
        for _, members in groupby(order, key=lambda i: _group_key(requests[i].params)):
            members = list(members)
            for start in range(0, len(members), self.max_batch):
                chunk = members[start:start + self.max_batch]
                outs = self._generate_group([requests[i].prompt for i in chunk], requests[chunk[0]].params)
                results.update(zip(chunk, outs))
        return [results[i] for i in range(len(requests))]

    def _generate_group(self, prompts: list[str], params: SamplingParams) -> list[Completion]:
        import torch

        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        gen_kwargs = dict(max_new_tokens=params.max_tokens, do_sample=not params.greedy,
                          pad_token_id=self.tokenizer.pad_token_id, eos_token_id=sorted(self._eos_ids))
        if not params.greedy:
            gen_kwargs.update(temperature=params.temperature, top_p=params.top_p)
            if params.seed is not None:
                torch.manual_seed(params.seed)
        else:
            gen_kwargs.update(temperature=None, top_p=None, top_k=None)
        if params.stop:
            gen_kwargs.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
        with self._lock, torch.inference_mode():
            out = self.model.generate(**enc, **gen_kwargs)
        prompt_lens = enc["attention_mask"].sum(dim=1).tolist()
        new = out[:, enc["input_ids"].shape[1]:].tolist()
        return [self._completion(ids, n, params) for ids, n in zip(new, prompt_lens)]

    def _completion(self, ids: list[int], prompt_tokens: int, params: SamplingParams) -> Completion:
        end = next((i + 1 for i, t in enumerate(ids) if t in self._eos_ids), None)
        ids = ids[:end] if end else ids
        text = self.tokenizer.decode([t for t in ids if t not in self._eos_ids], skip_special_tokens=False)
        cut = min((text.find(s) for s in params.stop if s and s in text), default=-1)
        if cut != -1:
            text = text[:cut]
        finish = "stop" if end is not None or cut != -1 else ("length" if len(ids) >= params.max_tokens else "stop")
        return Completion(text=text, prompt_tokens=int(prompt_tokens), output_tokens=len(ids),
                          finish_reason=finish, output_ids=tuple(ids))

    # --- scoring (token operations come from TokenizerOps) --------------------
    def loglikelihood(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[float, bool]]:
        import torch

        results = []
        for context, continuation in pairs:
            ctx, cont = self.encode(context), self.encode(continuation)
            ids = torch.tensor([(ctx + cont) or [self.tokenizer.eos_token_id]], device=self.device)
            with self._lock, torch.inference_mode():
                logits = self.model(ids).logits.log_softmax(-1)[0]
            span = logits[len(ctx) - 1:len(ctx) + len(cont) - 1] if ctx else logits[:len(cont)]
            target = torch.tensor(cont, device=self.device)
            results.append((float(span.gather(1, target[:, None]).sum()),
                            bool((span.argmax(-1) == target).all())))
        return results

    def close(self) -> None:
        self.model = None


def _group_key(params: SamplingParams) -> tuple:
    return (params.max_tokens, params.temperature, params.top_p, params.stop, params.seed if not params.greedy else None)


def _eos_ids(model, tokenizer) -> set[int]:
    ids = model.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids
