"""``openai``: any OpenAI-compatible server (vLLM serve, SGLang, llama.cpp server, TGI, transformers serve).

Owns: ``/v1/completions`` requests from one asyncio loop on a background
thread (``httpx.AsyncClient``): up to ``concurrency`` requests in flight
without a thread each; streaming (first-token time, and a read timeout per
chunk, so a 32k-token generation never times out as a whole) with a plain
JSON answer accepted too; ``max_tokens`` clamped to the server's context
(``max_model_len`` from ``/v1/models`` where the server says) minus the
prompt; retries with exponential backoff on connection errors, 429 and 5xx,
malformed or cut-short bodies; stop strings enforced client-side too (some
servers leave them in); a local tokenizer for chat templates and token
slicing.

A request the server refuses (a 4xx such as "context length exceeded") or
whose every retry is spent on 5xx, 429, timeouts or broken answers raises
``RequestError``: it costs that sample, recorded with the reason, and the
run goes on.  When the server cannot be reached at all through every retry
(connection refused: it is down), ``BackendError`` stops the run with a
clear error, every finished call kept in the cache, rather than marking
every later sample failed.  Past one machine, point ``base_url``
at a router (``vllm-router``, ``sglang-router``) or at ``vllm serve
--data-parallel-size N``: this backend sees one URL.

Does not know: rounds, modes, lm-eval.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Optional, Sequence

from inftythink_eval.backends._tokenizer import TokenizerOps
from inftythink_eval.backends.base import BackendError, Completion, Request, RequestError, gather, register_backend

log = logging.getLogger(__name__)
_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


@dataclass(frozen=True)
class OpenAIOptions:
    """model_args keys of ``backend=openai``."""

    base_url: Optional[str] = None
    """Server URL, e.g. http://127.0.0.1:8000/v1 (a router's URL works the same)."""
    model: Optional[str] = None
    """Model name the server knows (default: pretrained, else the first model /v1/models lists)."""
    concurrency: int = 64
    """Most requests in flight."""
    timeout: float = 600.0
    """Seconds to wait for the next streamed chunk (or the whole answer when the server does not stream)."""
    http_retries: int = 4
    """Retries per request, with exponential backoff (connection errors, 429, 5xx, broken bodies)."""
    backoff: float = 0.5
    """Seconds before the first retry (doubled each time)."""
    stream: bool = True
    """Ask for a streamed answer (first-token time; no whole-request timeout)."""
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable that holds the API key (the key itself never goes in model_args)."""
    tokenizer: Optional[str] = None
    """Tokenizer (hub id or folder) for chat templates, token slicing and the max_tokens clamp (default: pretrained)."""
    max_model_len: Optional[int] = None
    """The server's context length, when /v1/models does not say it."""

    def __post_init__(self) -> None:
        for key in ("concurrency", "timeout"):
            if getattr(self, key) <= 0:
                raise ValueError(f"model_args {key} must be > 0, got {getattr(self, key)}")
        if self.http_retries < 0:
            raise ValueError(f"model_args http_retries must be >= 0, got {self.http_retries}")


register_backend("openai", f"{__name__}:OpenAIBackend", OpenAIOptions, requires=("httpx",),
                 install="pip install 'inftythink-eval[api]'", url_key="base_url", rank=20,
                 summary="any OpenAI-compatible server (vLLM serve, SGLang, llama.cpp server, TGI, `transformers "
                 "serve`), or a router in front of several; one asyncio loop, `max_tokens` clamped to the server's "
                 "context")


class OpenAIBackend(TokenizerOps):
    name = "openai"

    def __init__(self, base_url: str, pretrained: Optional[str] = None, model: Optional[str] = None,
                 model_id: Optional[str] = None, concurrency: int = 64, timeout: float = 600.0,
                 http_retries: int = 4, retries: Optional[int] = None, backoff: float = 0.5, stream: bool = True,
                 api_key_env: str = "OPENAI_API_KEY", tokenizer: Optional[str] = None,
                 max_model_len: Optional[int] = None, **_: object) -> None:
        import httpx

        if not base_url:
            raise ValueError("openai backend needs base_url=http://HOST:PORT/v1")
        self.base_url = base_url.rstrip("/")
        self.model = model or pretrained or model_id or "default"
        self.model_id = f"{self.base_url}#{self.model}"
        self.concurrency = int(concurrency)
        self.retries = int(http_retries if retries is None else retries)
        self.backoff, self.stream, self.timeout = float(backoff), bool(stream), float(timeout)
        self._headers = {"Authorization": f"Bearer {os.environ[api_key_env]}"} if os.environ.get(api_key_env) else {}
        self._tokenizer_name = tokenizer or pretrained
        self._tokenizer = None
        if self._tokenizer_name:  # loaded now, not inside the event loop
            try:
                self.tokenizer
            except (OSError, ValueError) as exc:
                log.warning("openai backend: no local tokenizer from %r (%s); token counts come from the server's "
                            "usage and max_tokens is not clamped. Pass tokenizer=<hub id or folder> to fix",
                            self._tokenizer_name, exc)
                self._tokenizer_name = None
        self._context: Optional[int] = int(max_model_len) if max_model_len else None
        self._context_checked = bool(max_model_len)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="openai-client", daemon=True)
        self._thread.start()
        self._client = self._call(self._open_client(httpx))
        self.stats = {"retries": 0, "failed": 0, "clamped": 0}
        self.extensions = True

    async def _open_client(self, httpx):
        self._slots = asyncio.Semaphore(self.concurrency)
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        return httpx.AsyncClient(timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
                                 headers=self._headers, limits=limits)

    def _call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    @property
    def fingerprint(self) -> dict:
        """The served model and the tokenizer, not the address: a resume against a restarted server on another
        port, or the same model behind a router, reuses finished calls (another model name never does)."""
        return {"backend": "openai", "model": self.model, "tokenizer": self._tokenizer_name}

    # --- generation ---------------------------------------------------------
    def submit(self, request: Request) -> "Future[Completion]":
        return asyncio.run_coroutine_threadsafe(self._one(request), self._loop)

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        return gather([self.submit(r) for r in requests])

    async def _one(self, request: Request) -> Completion:
        submitted = time.time()
        p = request.params
        body = {"model": self.model, "prompt": request.prompt, "max_tokens": await self._budget(request),
                "temperature": p.temperature, "top_p": p.top_p}
        if self.extensions:  # vLLM/SGLang fields; dropped (with a warning) for a server that refuses them
            body.update(skip_special_tokens=False, add_special_tokens=not (self._tokenizer_name and self.starts_with_bos(request.prompt)),
                        **({"top_k": p.top_k} if p.top_k else {}),
                        **({"min_p": p.min_p} if p.min_p else {}))
        if p.stop:
            body["stop"] = list(p.stop)
        if p.seed is not None:
            body["seed"] = p.seed
        async with self._slots:
            data, first_token = await self._post_with_retries("/completions", body)
        return self._completion(request, data).stamped(submitted, first_token)

    async def _budget(self, request: Request) -> int:
        """``max_tokens``, clamped to the server's context minus the prompt where both are known."""
        wanted = request.params.max_tokens
        context = await self._server_context()
        if context is None or self._tokenizer_name is None:
            return wanted
        room = context - self.count_tokens(request.prompt)
        if room < 1:
            raise RequestError(f"openai backend: the prompt ({context - room} tokens) fills the server's context "
                               f"of {context} tokens; nothing can be generated")
        if room < wanted:
            self.stats["clamped"] += 1
        return min(wanted, room)

    async def _server_context(self) -> Optional[int]:
        if not self._context_checked:
            self._context_checked = True
            try:
                response = await self._client.get(self.base_url + "/models", timeout=10)
                for entry in response.json().get("data", []):
                    if entry.get("id") == self.model or len(response.json()["data"]) == 1:
                        self._context = entry.get("max_model_len") or self._context
            except Exception as exc:  # noqa: BLE001 - the clamp is a courtesy; the server still checks
                log.info("openai backend: %s/models gave no context length (%s)", self.base_url, exc)
        return self._context

    async def _post_with_retries(self, path: str, body: dict) -> tuple[dict, Optional[float]]:
        url, last, unreachable = self.base_url + path, None, False
        for attempt in range(self.retries + 1):
            try:
                return await self._post(url, body)
            except _Unsupported as exc:
                if not _EXTENSIONS & set(body):
                    raise RequestError(f"openai backend: {url} refused the request: {exc}") from None
                if self.extensions:
                    self.extensions = False
                    log.warning("openai backend: the server refuses vLLM's extra fields (%s); sending plain OpenAI "
                                "requests from now on: top_k/min_p are not applied and special tokens are skipped", exc)
                body = {k: v for k, v in body.items() if k not in _EXTENSIONS}
                continue
            except _Retry as exc:
                last, unreachable = str(exc), exc.unreachable
            except RequestError:
                self.stats["failed"] += 1
                raise
            if attempt < self.retries:
                self.stats["retries"] += 1
                delay = self.backoff * (2 ** attempt) * (1 + random.random() / 4)
                log.warning("openai backend: %s failed (%s); retry %d/%d in %.1fs", url, last, attempt + 1,
                            self.retries, delay)
                await asyncio.sleep(delay)
        self.stats["failed"] += 1
        if unreachable:   # the server is gone: every later request would fail too, so the run stops here
            raise BackendError(f"openai backend: {url} failed after {self.retries + 1} attempts ({last}). "
                               "Is the server running and reachable? Check base_url, or raise http_retries/timeout")
        raise RequestError(f"openai backend: {url} failed after {self.retries + 1} attempts ({last}); this "
                           "sample is recorded as failed and the run goes on")

    async def _post(self, url: str, body: dict) -> tuple[dict, Optional[float]]:
        """One attempt: the answer and the first-token time; ``_Retry`` for what a retry may fix."""
        import httpx

        try:
            async with self._client.stream("POST", url, json={**body, "stream": self.stream,
                                                                    **({"stream_options": {"include_usage": True}}
                                                                       if self.stream else {})}) as response:
                if response.status_code >= 400:
                    text = (await response.aread()).decode("utf-8", "replace")[:300]
                    if response.status_code in _RETRY_STATUS:
                        raise _Retry(f"HTTP {response.status_code}: {text}")
                    if response.status_code in (400, 422) and ("nexpected field" in text or "xtra" in text):
                        raise _Unsupported(f"HTTP {response.status_code}: {text}")
                    raise RequestError(f"openai backend: {url} answered HTTP {response.status_code}: {text}")
                if "text/event-stream" in response.headers.get("content-type", ""):
                    return await _read_stream(response)
                return json.loads(await response.aread()), None
        except httpx.ConnectError as exc:  # nothing listens there (refused, unreachable)
            raise _Retry(f"{type(exc).__name__}: {exc}", unreachable=True) from exc
        except httpx.TransportError as exc:  # connection reset mid-answer, timeout, body cut short
            raise _Retry(f"{type(exc).__name__}: {exc}") from exc
        except (ValueError, KeyError) as exc:  # malformed JSON
            raise _Retry(f"malformed answer: {exc}") from exc

    def _completion(self, request: Request, data: dict) -> Completion:
        p = request.params
        try:
            choice = data["choices"][0]
        except (KeyError, IndexError, TypeError):
            raise RequestError(f"openai backend: an answer without choices: {str(data)[:200]}") from None
        text = choice.get("text") or ""
        cut = min((text.find(s) for s in p.stop if s and s in text), default=-1)
        if cut != -1:
            text = text[:cut]
        usage = data.get("usage") or {}
        output_tokens = usage.get("completion_tokens")
        if output_tokens is None or cut != -1:
            output_tokens = self.count_tokens(text) if self._tokenizer_name else len(text.split())
        prompt_tokens = usage.get("prompt_tokens")
        if prompt_tokens is None:
            prompt_tokens = self.count_tokens(request.prompt) if self._tokenizer_name else 0
        finish = "length" if choice.get("finish_reason") == "length" and cut == -1 else "stop"
        return Completion(text=text, prompt_tokens=int(prompt_tokens), output_tokens=int(output_tokens),
                          finish_reason=finish)

    # --- tokenizer (token operations come from TokenizerOps) -----------------
    @property
    def tokenizer(self):
        if self._tokenizer is None:
            if not self._tokenizer_name:
                raise ValueError("openai backend needs tokenizer=<hub id or folder> for chat templates and token slicing")
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self._tokenizer_name)
        return self._tokenizer

    def loglikelihood(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[float, bool]]:
        """Prompt logprobs via ``echo`` + ``max_tokens: 0`` (vLLM-style servers); a clear error elsewhere."""
        return self._call(self._loglikelihood(pairs))

    async def _loglikelihood(self, pairs):
        results = []
        for context, continuation in pairs:
            body = {"model": self.model, "prompt": context + continuation, "max_tokens": 0, "echo": True,
                    "logprobs": 1, "temperature": 0}
            self.stream, stream = False, self.stream
            try:
                data, _ = await self._post_with_retries("/completions", body)
            finally:
                self.stream = stream
            lp = (data["choices"][0].get("logprobs") or {})
            offsets, token_lps, tops = lp.get("text_offset"), lp.get("token_logprobs"), lp.get("top_logprobs")
            if not offsets or token_lps is None:
                raise NotImplementedError(f"the server at {self.base_url} returns no prompt logprobs; "
                                          "loglikelihood needs a vLLM-compatible server (echo + logprobs)")
            idx = [i for i, off in enumerate(offsets) if off >= len(context)]
            total = sum(token_lps[i] for i in idx)
            greedy = all(tops and tops[i] and max(tops[i].values()) <= token_lps[i] + 1e-6 for i in idx)
            results.append((float(total), bool(greedy)))
        return results

    def close(self) -> None:
        try:
            self._call(self._shutdown())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)

    async def _shutdown(self) -> None:
        """Cancel what is still in flight (a stopped run), then close the client: no task left pending."""
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await self._client.aclose()


_EXTENSIONS = {"skip_special_tokens", "add_special_tokens", "top_k", "min_p"}


class _Retry(Exception):
    """An attempt failed in a way a retry may fix; ``unreachable``: the server could not be reached at all."""

    def __init__(self, message: str, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


class _Unsupported(Exception):
    """The server refused fields it does not know."""


async def _read_stream(response) -> tuple[dict, Optional[float]]:
    """Assemble a streamed completion (server-sent events) into one answer; the first-token time too."""
    text, finish, usage, first = [], None, None, None
    done = False
    async for line in response.aiter_lines():
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            done = True
            break
        event = json.loads(payload)
        usage = event.get("usage") or usage
        for choice in event.get("choices") or []:
            if choice.get("text"):
                first = first or time.time()
                text.append(choice["text"])
            finish = choice.get("finish_reason") or finish
    if not done and finish is None:
        raise _Retry("the stream ended before the answer did")
    return {"choices": [{"text": "".join(text), "finish_reason": finish}], "usage": usage}, first
