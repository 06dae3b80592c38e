"""``hf``: transformers in-process backend (the CPU default).

Owns: loading a model by hub id, local folder or GGUF file; batched
left-padded generation with per-sequence stop strings; token counts from
the model's own ids; the chat template; loglikelihood scoring.

Does not know: rounds, modes, lm-eval.  Requests in one call are grouped by
sampling parameters; a group with ``temperature > 0`` is seeded with the
first request's seed (transformers has no per-row seed).

``prefix_cache=N`` (off by default) keeps the KV caches of the last N
sequences and generates one request at a time, reusing the longest cached
token prefix (transformers' documented cache re-use: ``generate`` with a
cache that already holds a prefix computes only the rest).  It turns the
dataset builder's cumulative summaries (prompt i+1 extends prompt i) from
quadratic into linear prefill.
"""

from __future__ import annotations

import inspect
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
                 gguf_file: Optional[str] = None, prefix_cache: int = 0, **_: object) -> None:
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
        if int(prefix_cache) < 0:
            raise ValueError(f"prefix_cache must be >= 0 (cached sequences; 0 turns it off), got {prefix_cache!r}")
        self.prefixes = PrefixStore(int(prefix_cache))
        # transformers 5.x renamed generate's past_key_values to cache (the old name warns until v6)
        forward_args = inspect.signature(type(self.model).forward).parameters
        self._cache_arg = "cache" if "cache" in forward_args else "past_key_values"

    @property
    def reuses_prefixes(self) -> bool:
        """True with ``prefix_cache`` on: callers should send prompts that extend each other in order."""
        return self.prefixes.capacity > 0

    # --- generation ---------------------------------------------------------
    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        results: dict[int, Completion] = {}
        order = sorted(range(len(requests)), key=lambda i: _group_key(requests[i].params))
        for _, members in groupby(order, key=lambda i: _group_key(requests[i].params)):
            members = list(members)
            for start in range(0, len(members), self.max_batch):
                chunk = members[start:start + self.max_batch]
                if self.prefixes.capacity:
                    outs = [self._generate_reusing(requests[i].prompt, requests[i].params) for i in chunk]
                else:
                    outs = self._generate_group([requests[i].prompt for i in chunk], requests[chunk[0]].params)
                results.update(zip(chunk, outs))
        return [results[i] for i in range(len(requests))]

    def _gen_kwargs(self, params: SamplingParams) -> dict:
        """generate() arguments for ``params``; seeds torch's generator for sampled requests."""
        import torch

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
        return gen_kwargs

    def _generate_group(self, prompts: list[str], params: SamplingParams) -> list[Completion]:
        import torch

        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        with self._lock, torch.inference_mode():
            out = self.model.generate(**enc, **self._gen_kwargs(params))
        prompt_lens = enc["attention_mask"].sum(dim=1).tolist()
        new = out[:, enc["input_ids"].shape[1]:].tolist()
        return [self._completion(ids, n, params) for ids, n in zip(new, prompt_lens)]

    def _generate_reusing(self, prompt: str, params: SamplingParams) -> Completion:
        """One request, computing only the part of the prompt that no cached sequence shares."""
        import torch
        from transformers import DynamicCache

        ids = self.encode(prompt)
        with self._lock, torch.inference_mode():
            cache = self.prefixes.take(ids) or DynamicCache(config=self.model.config)
            input_ids = torch.tensor([ids], device=self.device)
            out = self.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                      **{self._cache_arg: cache}, **self._gen_kwargs(params))
            full = out[0].tolist()
            self.prefixes.put(full[:cache.get_seq_length()], cache)
        return self._completion(full[len(ids):], len(ids), params)

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


class PrefixStore:
    """The KV caches of the last ``capacity`` sequences, handed out by longest shared token prefix.

    ``take`` removes the best entry and crops it to the shared prefix (at least one prompt token is
    left to compute, so generate has logits to start from); ``put`` keeps the result, most recent
    first.  An entry is used by one request at a time, so nothing is copied.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.entries: list[tuple[list[int], object]] = []
        self.reused_tokens = 0
        self.computed_tokens = 0

    def take(self, ids: list[int]):
        best, shared = None, 0
        for k, (seq, _) in enumerate(self.entries):
            n = _shared_prefix(seq, ids)
            if n > shared:
                best, shared = k, n
        shared = min(shared, len(ids) - 1)
        if best is None or shared < 1:
            self.computed_tokens += len(ids)
            return None
        seq, cache = self.entries.pop(best)
        if cache.get_seq_length() > shared:
            cache.crop(shared - cache.get_seq_length())   # negative: tokens to drop from the end
        self.reused_tokens += shared
        self.computed_tokens += len(ids) - shared
        return cache

    def put(self, seq: list[int], cache) -> None:
        self.entries.insert(0, (seq, cache))
        del self.entries[self.capacity:]


def _shared_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _group_key(params: SamplingParams) -> tuple:
    return (params.max_tokens, params.temperature, params.top_p, params.stop, params.seed if not params.greedy else None)


def _eos_ids(model, tokenizer) -> set[int]:
    ids = model.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids
