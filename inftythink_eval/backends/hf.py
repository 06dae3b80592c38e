"""``hf``: transformers in-process backend (the CPU default).

Owns: loading a model by hub id, local folder or GGUF file; an engine thread that serves submitted requests with
finish-aware batching: up to ``batch_size`` waiting requests go into one left-padded ``generate`` call, and a
per-row watcher hands each request back, with its own timestamps, the moment *it* stops (EOS, its stop strings,
its ``max_tokens``). Later requests wait for the next batch; one not full waits a moment for more (``_gather``).

``continuous=on|auto`` serves every request it can serve exactly through transformers' own continuous batching
instead (``_hf_paged``): a request joins the running batch at the next decoding step. It takes greedy requests
that fit its KV cache; sampled ones (its sampler has no per-request seed), and all of them where the model
cannot use it (``on`` then refuses to start), stay on the batched path. ``stats()`` counts which path served how
many and why.

Sampling is per row: greedy and sampled requests (any temperature, top_p, top_k, min_p) share a batch; each
sampled row draws from its own ``torch.Generator`` seeded with the request's seed, so its tokens depend on its
seed, not on its batch (up to padding's floating-point differences).

``prefix_cache=N`` (off by default) keeps the KV caches of the last N sequences and generates one request at a
time, reusing the longest cached token prefix (transformers' cache re-use): the dataset builder's cumulative
summaries (prompt i+1 extends prompt i) go from quadratic to linear prefill.

Does not know: rounds, modes, lm-eval.
"""

from __future__ import annotations

import inspect
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from inftythink_eval.backends import _hf_paged
from inftythink_eval.backends._kv import kv_bytes_per_token
from inftythink_eval.backends._prefix import PrefixStore
from inftythink_eval.backends._serving import Pending, RequestQueue
from inftythink_eval.backends._tokenizer import TokenizerOps
from inftythink_eval.backends.base import BackendError, Completion, Request, SamplingParams, gather, register_backend


@dataclass(frozen=True)
class HFOptions:
    """model_args keys of ``backend=hf``."""

    dtype: str = "auto"
    """auto, float32, bfloat16 or float16."""
    device: Optional[str] = None
    """torch device (cpu, cuda, cuda:0, ...); default cuda when available, else cpu."""
    batch_size: int = 8
    """Most requests in one generate call."""
    revision: Optional[str] = None
    """Model revision (branch, tag or commit) on the hub."""
    trust_remote_code: bool = False
    """Run the model repository's own code."""
    gguf_file: Optional[str] = None
    """GGUF file name inside the pretrained folder."""
    prefix_cache: int = 0
    """Keep the KV caches of the last N sequences and compute only the unshared part of each prompt
    (one request at a time; pays off when prompts extend earlier ones). 0: off."""
    continuous: str = "off"
    """on: greedy requests join the running batch at the next step (transformers' continuous batching; an
    error where the model cannot use it); auto: the same where it can, else the batched path; off: batched."""
    continuous_cache: int = 0
    """KV cache of continuous batching, in tokens (a request whose prompt plus max_tokens does not fit goes
    through the batched path). 0: batch_size x 4096."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"model_args batch_size must be >= 1, got {self.batch_size}")
        if self.prefix_cache < 0:
            raise ValueError(f"model_args prefix_cache must be >= 0 (cached sequences; 0 turns it off), "
                             f"got {self.prefix_cache}")
        if self.continuous not in ("on", "auto", "off"):
            raise ValueError(f"model_args continuous must be on, auto or off, got {self.continuous!r}")
        if self.continuous_cache < 0:
            raise ValueError(f"model_args continuous_cache must be >= 0 (tokens), got {self.continuous_cache}")
        if self.continuous == "on" and self.prefix_cache:
            raise ValueError("model_args continuous=on and prefix_cache exclude each other (the prefix cache serves "
                             "one request at a time); use continuous=auto, or prefix_cache=0")


register_backend("hf", f"{__name__}:HFBackend", HFOptions, requires=("torch", "transformers"),
                 install="pip install torch==2.13.0 transformers  (torch first, so no CUDA build is pulled)",
                 default=True, rank=0, summary="transformers in process: finish-aware batching (each row leaves the "
                 "batch when it stops), per-row seeded sampling; continuous=on: greedy requests join the running "
                 "batch (transformers' continuous batching)")


class HFBackend(TokenizerOps):
    name = "hf"

    def __init__(self, pretrained: str, dtype: str = "auto", device: Optional[str] = None, batch_size: int = 8,
                 revision: Optional[str] = None, trust_remote_code: bool = False,
                 gguf_file: Optional[str] = None, prefix_cache: int = 0, continuous: str = "off",
                 continuous_cache: int = 0, **_: object) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        HFOptions(batch_size=int(batch_size), prefix_cache=int(prefix_cache), continuous=continuous,
                  continuous_cache=int(continuous_cache))   # the same checks as model_args get
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model_id, self.max_batch = str(pretrained), int(batch_size)
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
        self._fingerprint = {"backend": "hf", "model": self.model_id, "revision": revision, "gguf_file": gguf_file,
                             "dtype": str(self.model.dtype), "device": str(device)}
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._eos_ids = _eos_ids(self.model, self.tokenizer)
        self.kv_bytes_per_token = kv_bytes_per_token(self.model.config, self.model.dtype.itemsize)
        self._lock = threading.Lock()
        self.prefixes = PrefixStore(int(prefix_cache))
        # transformers 5.x renamed generate's past_key_values to cache (the old name warns until v6)
        forward_args = inspect.signature(type(self.model).forward).parameters
        self._cache_arg = "cache" if "cache" in forward_args else "past_key_values"
        self._queue = RequestQueue(self._serve, "hf-engine")
        self.batches: list[int] = []  # size of every generate call (for tests and benchmarks)
        self.paths = _hf_paged.Router(self, continuous, int(continuous_cache), self.prefixes.capacity)

    @property
    def fingerprint(self) -> dict:
        return dict(self._fingerprint)

    @property
    def reuses_prefixes(self) -> bool:
        """True with ``prefix_cache`` on: callers should send prompts that extend each other in order."""
        return self.prefixes.capacity > 0

    # --- generation ---------------------------------------------------------
    def submit(self, request: Request) -> "Future[Completion]":
        """Continuous batching where it serves the request exactly (``continuous``), else the batched path."""
        return self.paths.submit(request, self._queue.submit)

    def stats(self) -> dict:
        """Which path served how many requests, and why the batched path served the others."""
        return self.paths.stats()

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        return gather([self.submit(r) for r in requests])

    def _serve(self, queue: RequestQueue) -> None:
        """The engine thread: one batch of whatever is waiting at a time."""
        while not queue.closed:
            batch = queue.take(1 if self.prefixes.capacity else self.max_batch)
            if not batch:
                continue
            batch += self._gather(queue, len(batch))
            for item in batch:   # this batch's prefill begins now: every row has its slot
                item.started = time.time()
            try:
                if self.prefixes.capacity:
                    batch[0].resolve(self._generate_reusing(batch[0]))
                else:
                    self._generate_batch(batch)
            except Exception as exc:  # noqa: BLE001 - this batch fails; the engine thread goes on
                for item in batch:
                    item.fail(exc)
            finally:
                queue.release(batch)

    def _gather(self, queue: RequestQueue, have: int) -> list[Pending]:
        """More requests for a batch that is not full, while they keep arriving (each within 10 ms, 50 ms at
        most): a batch that just finished hands its rows back one by one, and their samples' next calls
        arrive a moment later.  Without this wait the next batch would start with the first one or two."""
        more: list[Pending] = []
        deadline = time.time() + 0.05
        while not self.prefixes.capacity and have + len(more) < self.max_batch and time.time() < deadline:
            got = queue.take(self.max_batch - have - len(more), wait=0.01)
            if not got:
                break
            more += got
        return more

    def _generate_batch(self, batch: list[Pending]) -> None:
        import torch
        from transformers import LogitsProcessorList, StoppingCriteriaList

        ids = [self.prompt_ids(item.request.prompt) for item in batch]
        enc = self.tokenizer.pad({"input_ids": ids}, padding=True, return_tensors="pt").to(self.device)
        rows = _Rows(self, batch, enc["attention_mask"].sum(dim=1).tolist(), enc["input_ids"].shape[1])
        self.batches.append(len(batch))
        with self._lock, torch.inference_mode():
            out = self.model.generate(**enc, max_new_tokens=max(i.request.params.max_tokens for i in batch),
                                      do_sample=False, temperature=None, top_p=None, top_k=None,
                                      pad_token_id=self.tokenizer.pad_token_id, eos_token_id=sorted(self._eos_ids),
                                      logits_processor=LogitsProcessorList([_RowSampler(batch, self.device)]),
                                      stopping_criteria=StoppingCriteriaList([rows]))
        rows.finish_all(out)

    def _gen_kwargs(self, params: SamplingParams) -> dict:
        """generate() arguments for one request on the prefix-cache path (one row)."""
        from transformers import LogitsProcessorList

        gen_kwargs = dict(max_new_tokens=params.max_tokens, do_sample=False, temperature=None, top_p=None,
                          top_k=None, pad_token_id=self.tokenizer.pad_token_id, eos_token_id=sorted(self._eos_ids))
        if not params.greedy:
            gen_kwargs["logits_processor"] = LogitsProcessorList([_RowSampler([params], self.device)])
        if params.stop:
            gen_kwargs.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
        return gen_kwargs

    def _generate_reusing(self, item: Pending) -> Completion:
        """One request, computing only the part of the prompt that no cached sequence shares."""
        import torch
        from transformers import DynamicCache

        prompt, params = item.request.prompt, item.request.params
        ids = self.prompt_ids(prompt)
        with self._lock, torch.inference_mode():
            cache = self.prefixes.take(ids) or DynamicCache(config=self.model.config)
            input_ids = torch.tensor([ids], device=self.device)
            out = self.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                      **{self._cache_arg: cache}, **self._gen_kwargs(params))
            full = out[0].tolist()
            self.prefixes.put(full[:cache.get_seq_length()], cache)
        return self._completion(full[len(ids):], len(ids), params)

    def text_of(self, ids: Sequence[int]) -> str:
        """The text of generated ids as a completion has it (EOS dropped; no stop-string cut)."""
        return self.tokenizer.decode([t for t in ids if t not in self._eos_ids], skip_special_tokens=False)

    def _completion(self, ids: list[int], prompt_tokens: int, params: SamplingParams) -> Completion:
        """The completion of one row from its new token ids (cut at EOS or the first stop string)."""
        end = next((i + 1 for i, t in enumerate(ids) if t in self._eos_ids), None)
        ids = ids[:end] if end else ids
        text = self.tokenizer.decode([t for t in ids if t not in self._eos_ids], skip_special_tokens=False)
        cut = min((text.find(s) for s in params.stop if s and s in text), default=-1)
        if cut != -1:
            text = text[:cut]
            ids = _ids_through(self.tokenizer, ids, cut, self._eos_ids)
        finish = "stop" if end is not None or cut != -1 else ("length" if len(ids) >= params.max_tokens else "stop")
        return Completion(text=text, prompt_tokens=int(prompt_tokens), output_tokens=len(ids),
                          finish_reason=finish, output_ids=tuple(ids))

    # --- scoring (token operations come from TokenizerOps) --------------------
    def loglikelihood(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[float, bool]]:
        """Sum of log-probabilities of each continuation given its context, and whether it is greedy.

        With an empty context the continuation is scored after the tokenizer's BOS (or EOS) token, so
        its first token is scored too (lm-eval's rule for rolling loglikelihood)."""
        import torch

        results = []
        for context, continuation in pairs:
            ctx, cont = self.encode(context), self.encode(continuation)
            if not ctx:
                start = self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else self.tokenizer.eos_token_id
                ctx = [start]
            ids = torch.tensor([ctx + cont], device=self.device)
            with self._lock, torch.inference_mode():
                logits = self.model(ids).logits.log_softmax(-1)[0]
            span = logits[len(ctx) - 1:len(ctx) + len(cont) - 1]
            target = torch.tensor(cont, device=self.device)
            results.append((float(span.gather(1, target[:, None]).sum()),
                            bool((span.argmax(-1) == target).all())))
        return results

    def close(self) -> None:
        self.paths.close()
        self._queue.close()
        self.model = None


class _Rows:
    """The per-row watcher of one batch (a transformers ``StoppingCriteria``).

    After every decoding step it checks each live row for EOS, its own stop
    strings and its own ``max_tokens``; a row that stops is marked finished
    for ``generate`` and its request is resolved at once.
    """

    def __init__(self, backend: HFBackend, batch: list[Pending], prompt_lens: list[int], width: int) -> None:
        self.backend, self.batch, self.prompt_lens, self.width = backend, batch, prompt_lens, width
        self.live = [True] * len(batch)

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        now = time.time()
        if self.backend._queue.closed:   # close(): end the batch at this step (its requests have failed)
            return torch.ones(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        new_len = input_ids.shape[1] - self.width
        for row, item in enumerate(self.batch):
            if not self.live[row]:
                done[row] = True
                continue
            if item.first_token is None:
                item.first_token = now
            item.token_times.append(now)   # this step made one token for every live row
            params = item.request.params
            last = int(input_ids[row, -1])
            if last in self.backend._eos_ids or new_len >= params.max_tokens or self._hit_stop(input_ids[row], params):
                self._resolve(row, input_ids[row, self.width:].tolist())
                done[row] = True
        return done

    def _hit_stop(self, ids, params: SamplingParams) -> bool:
        return _hf_paged.stop_in_tail(self.backend.tokenizer, ids[self.width:], params.stop)

    def _resolve(self, row: int, ids: list[int]) -> None:
        self.live[row] = False
        item = self.batch[row]
        item.resolve(self.backend._completion(ids, self.prompt_lens[row], item.request.params))

    def finish_all(self, out) -> None:
        """Rows still live when generate returns (all of them reached the batch's end)."""
        for row in range(len(self.batch)):
            if self.live[row]:
                self._resolve(row, out[row, self.width:].tolist())


class _RowSampler:
    """Per-row sampling as a logits processor: each sampled row draws its next token with its own
    ``torch.Generator`` (seeded with its request's seed) after temperature, top_k, top_p and min_p,
    and the scores are set so that greedy selection picks that token.  Greedy rows are untouched."""

    def __init__(self, rows: Sequence, device) -> None:
        import torch

        self.params = [r.request.params if isinstance(r, Pending) else r for r in rows]
        self.generators = []
        for p in self.params:
            g = None
            if not p.greedy:
                g = torch.Generator(device=device)
                g.manual_seed(p.seed if p.seed is not None else torch.seed())
            self.generators.append(g)

    def __call__(self, input_ids, scores):
        import torch

        for row, (p, g) in enumerate(zip(self.params, self.generators)):
            if g is None:
                continue
            probs = _filtered_probs(scores[row].float() / p.temperature, p)
            token = torch.multinomial(probs, 1, generator=g)
            scores[row].fill_(-float("inf"))
            scores[row, token] = 0.0
        return scores


def _filtered_probs(logits, p: SamplingParams):
    """Probabilities after top_k, top_p (nucleus) and min_p filtering (each off at its neutral value)."""
    import torch

    if p.top_k:
        kth = torch.topk(logits, min(p.top_k, logits.shape[-1])).values[-1]
        logits = logits.masked_fill(logits < kth, -float("inf"))
    probs = torch.softmax(logits, dim=-1)
    if p.min_p:
        probs = probs.masked_fill(probs < p.min_p * probs.max(), 0.0)
    if p.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        drop = sorted_probs.cumsum(-1) - sorted_probs > p.top_p   # keep the smallest prefix reaching top_p
        probs = probs.scatter(0, order, sorted_probs.masked_fill(drop, 0.0))
    return probs / probs.sum()


def _ids_through(tokenizer, ids: list[int], cut: int, eos_ids: set) -> list[int]:
    """The shortest prefix of ``ids`` whose text reaches past character ``cut`` (the token that completed
    the stop string is generated and counted; what the batch produced after it is not)."""
    lo, hi = 1, len(ids)
    while lo < hi:  # decoded length grows with the prefix: bisect for the first prefix past the cut
        mid = (lo + hi) // 2
        if len(tokenizer.decode([t for t in ids[:mid] if t not in eos_ids], skip_special_tokens=False)) > cut:
            hi = mid
        else:
            lo = mid + 1
    return ids[:lo]


def _eos_ids(model, tokenizer) -> set[int]:
    ids = model.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids
