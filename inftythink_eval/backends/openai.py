"""``openai``: any OpenAI-compatible server (vLLM serve, SGLang, llama.cpp server, TGI, transformers serve).

Owns: ``/v1/completions`` requests with bounded concurrency (the engine runs
``concurrency`` workers, one request each), timeouts, retries with
exponential backoff on connection errors, 429 and 5xx, token counts from
``usage``, stop strings enforced client-side too (some servers include the
stop string in the text), and a local tokenizer for chat templates and
token slicing.

Does not know: rounds, modes, lm-eval.  A server that stays down through
every retry ends the run with a ``BackendError`` naming the URL and the fix;
finished calls are kept by the engine's cache.
"""

from __future__ import annotations

import logging
import os
import random
import time
from typing import Optional, Sequence

from ._tokenizer import TokenizerOps
from .base import BackendError, Completion, Request

log = logging.getLogger(__name__)
_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class OpenAIBackend(TokenizerOps):
    name = "openai"

    def __init__(self, base_url: str, pretrained: Optional[str] = None, model_id: Optional[str] = None,
                 concurrency: int = 8, timeout: float = 600.0, retries: int = 4, backoff: float = 0.5,
                 api_key_env: str = "OPENAI_API_KEY", tokenizer: Optional[str] = None, **_: object) -> None:
        import httpx

        if not base_url:
            raise ValueError("openai backend needs base_url=http://HOST:PORT/v1")
        self.base_url = base_url.rstrip("/")
        self.model = pretrained or model_id or "default"
        self.model_id = f"{self.base_url}#{self.model}"
        self.max_batch, self.concurrency = 1, int(concurrency)
        self.retries, self.backoff = int(retries), float(backoff)
        headers = {"Authorization": f"Bearer {os.environ[api_key_env]}"} if os.environ.get(api_key_env) else {}
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        self._client = httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)), headers=headers,
                                    limits=limits)
        self._tokenizer_name = tokenizer or pretrained
        self._tokenizer = None

    # --- generation ---------------------------------------------------------
    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        return [self._one(r) for r in requests]

    def _one(self, request: Request) -> Completion:
        p = request.params
        body = {"model": self.model, "prompt": request.prompt, "max_tokens": p.max_tokens,
                "temperature": p.temperature, "top_p": p.top_p}
        if p.stop:
            body["stop"] = list(p.stop)
        if p.seed is not None:
            body["seed"] = p.seed
        data = self._post("/completions", body)
        choice = data["choices"][0]
        text = choice.get("text") or ""
        cut = min((text.find(s) for s in p.stop if s and s in text), default=-1)
        if cut != -1:
            text = text[:cut]
        usage = data.get("usage") or {}
        output_tokens = usage.get("completion_tokens")
        if output_tokens is None:
            output_tokens = self.count_tokens(text)
        prompt_tokens = usage.get("prompt_tokens")
        if prompt_tokens is None:
            prompt_tokens = self.count_tokens(request.prompt)
        finish = "length" if choice.get("finish_reason") == "length" else "stop"
        return Completion(text=text, prompt_tokens=int(prompt_tokens), output_tokens=int(output_tokens),
                          finish_reason=finish)

    def _post(self, path: str, body: dict) -> dict:
        import httpx

        url, last = self.base_url + path, None
        for attempt in range(self.retries + 1):
            try:
                response = self._client.post(url, json=body)
                if response.status_code < 400:
                    return response.json()
                last = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code not in _RETRY_STATUS:
                    raise BackendError(f"openai backend: {url} answered {last}")
            except (httpx.TransportError, ValueError) as exc:  # connection refused/reset, timeout, bad JSON
                last = f"{type(exc).__name__}: {exc}"
            if attempt < self.retries:
                delay = self.backoff * (2 ** attempt) * (1 + random.random() / 4)
                log.warning("openai backend: %s failed (%s); retry %d/%d in %.1fs", url, last, attempt + 1,
                            self.retries, delay)
                time.sleep(delay)
        raise BackendError(f"openai backend: {url} failed after {self.retries + 1} attempts ({last}). "
                           "Is the server running and reachable? Check base_url, or raise http_retries/timeout")

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
        results = []
        for context, continuation in pairs:
            data = self._post("/completions", {"model": self.model, "prompt": context + continuation,
                                               "max_tokens": 0, "echo": True, "logprobs": 1, "temperature": 0})
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
        self._client.close()
