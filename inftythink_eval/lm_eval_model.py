"""The lm-evaluation-harness model ``inftythink``: lm-eval requests in, engine traces out.

Owns: turning ``Instance``s into engine ``Sample``s (context, ``until``,
``max_gen_toks``, temperature, top_p, ``do_sample``, repeats, seeds), how
``--apply_chat_template`` and ``--system_instruction`` compose with round
prompts, returning ``SampleOutput`` strings that carry per-sample stats, and
writing the sidecar traces.

Chat templates: with ``--apply_chat_template`` lm-eval hands us the chat
(system + user messages) and each mode renders its own round prompts from it:
vanilla/summarize/delethink use the model's chat template; native
``inftythink`` always uses the protocol's ``User:``/``Assistant:`` strings
(the system instruction, if any, goes before the question).  Without the
flag the task's context string is used as is (lm-eval has already put any
system instruction in front of it).

Does not know: sampling internals (``engine``/``backends``), scoring (tasks).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any, Optional

from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

from . import __version__
from .backends.base import Backend, SamplingParams, make_backend
from .cache import CallCache
from .config import EvalConfig, parse
from .engine import Engine
from .modes import Sample
from .result import SampleOutput
from .sidecar import Sidecar, git_commit, hardware, lm_eval_output_dir, weights_fingerprint
from .zoo import resolve

log = logging.getLogger(__name__)
_CHAT_MARK = "\x00inftythink-chat\x00"


def open_backend(config: EvalConfig, backend: str, pretrained: Optional[str], base_url: Optional[str]) -> Backend:
    """Construct one backend from the validated config (errors before any generation)."""
    common = dict(pretrained=pretrained, model_id=pretrained)
    per_backend = {
        "hf": dict(dtype=config.dtype, device=config.device, batch_size=config.batch_size, revision=config.revision,
                   trust_remote_code=config.trust_remote_code, gguf_file=config.gguf_file,
                   prefix_cache=config.prefix_cache),
        "vllm": dict(dtype=config.dtype, tensor_parallel_size=config.tensor_parallel_size,
                     data_parallel_size=config.data_parallel_size, gpu_memory_utilization=config.gpu_memory_utilization,
                     max_model_len=config.max_model_len, revision=config.revision, seed=config.seed,
                     trust_remote_code=config.trust_remote_code),
        "openai": dict(base_url=base_url, concurrency=config.concurrency, timeout=config.timeout,
                       retries=config.http_retries, api_key_env=config.api_key_env, tokenizer=config.tokenizer),
        "scripted": dict(script=config.script, call_log=config.call_log, max_batch=config.batch_size,
                         delay=config.delay),
    }[backend]
    return make_backend(backend, **common, **per_backend)


def merge_cli_settings(model_args: dict, cli: dict) -> dict:
    """lm-eval's --device/--batch_size apply only where model_args is silent.

    ``--batch_size 1`` is lm-eval's default and is ignored (set batch_size=1 in
    model_args to force it); ``--device cuda`` on a machine without CUDA falls
    back to the CPU with a warning.
    """
    batch = cli.get("batch_size")
    if "batch_size" not in model_args and batch not in (None, 1, "1", "auto") and not str(batch).startswith("auto"):
        model_args["batch_size"] = batch
    device = cli.get("device")
    if "device" not in model_args and device:
        if str(device).startswith("cuda") and not _cuda_available():
            log.info("--device %s (lm-eval's default) but CUDA is not available: using the CPU", device)
            device = "cpu"
        model_args["device"] = device
    return model_args


def _cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


@register_model("inftythink")
class InftyThinkLM(LM):
    """Iterative (InftyThink-style) generation over a real engine; see ``config.EvalConfig`` for model_args."""

    @classmethod
    def create_from_arg_string(cls, arg_string: str, additional_config: Optional[dict] = None) -> "InftyThinkLM":
        from lm_eval.utils import simple_parse_args_string

        return cls.create_from_arg_obj(simple_parse_args_string(arg_string), additional_config)

    @classmethod
    def create_from_arg_obj(cls, arg_dict: dict, additional_config: Optional[dict] = None) -> "InftyThinkLM":
        return cls(**merge_cli_settings(dict(arg_dict), additional_config or {}))

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        config = parse(kwargs)
        path, card_defaults = resolve(config.pretrained) if config.pretrained else (None, {})
        mode = config.mode or card_defaults.get("mode", "vanilla")
        if card_defaults:
            overrides = {k: v for k, v in card_defaults.items() if k != "mode" and k not in kwargs}
            config = parse({**kwargs, **overrides, "mode": mode})
        self.config, self.mode_name = config, mode
        self.backend = open_backend(config, config.backend, path, config.base_url)
        summarizer = None
        if config.summarizer_backend or config.summarizer_pretrained:
            summarizer = open_backend(config, config.summarizer_backend or config.backend,
                                      config.summarizer_pretrained or path, config.summarizer_base_url or config.base_url)
        cache = CallCache(config.cache_dir) if config.cache_dir else None
        self.engine = Engine(self.backend, mode, config.mode_params(), summarizer=summarizer, cache=cache,
                             schedule=config.schedule, progress=config.progress)
        folder = lm_eval_output_dir(config.pretrained) if config.trace_dir is None else Path(config.trace_dir)
        self.sidecar = Sidecar(folder, self._provenance(path))

    def _provenance(self, path: Optional[str]) -> dict:
        c = self.config
        return {"inftythink_eval_version": __version__, "git_commit": git_commit(), "backend": c.backend,
                "pretrained": c.pretrained, "model_path": path,
                "weights": weights_fingerprint(path) if path else None, "revision": c.revision,
                "mode": self.mode_name, "mode_params": self.engine.mode.params, "dtype": c.dtype, "device": c.device,
                "batch_size": c.batch_size, "concurrency": c.concurrency, "schedule": c.schedule, "seed": c.seed,
                "hardware": hardware(), "config": c}

    # --- lm-eval API --------------------------------------------------------
    @property
    def tokenizer_name(self) -> str:
        return str(self.config.pretrained or "scripted").replace("/", "__")

    def chat_template(self, chat_template: bool | str = False) -> str:
        return ""

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        return _CHAT_MARK + json.dumps(chat_history, ensure_ascii=False)

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        seen: Counter = Counter()
        samples = []
        for request in requests:
            repeat = seen[id(request)]
            seen[id(request)] += 1
            samples.append(self._sample(request, repeat))
        traces = self.engine.run(samples)
        outputs, rows = [], []
        for request, sample, trace in zip(requests, samples, traces):
            totals = trace.totals()
            stats = {"tok": totals.tok, "lat": totals.lat, "rounds": totals.rounds, "peak_ctx": totals.peak_ctx,
                     "truncated": int(totals.truncated), "format_fail": totals.format_fail}
            outputs.append(SampleOutput(trace.final.answer, stats, trace_id=sample.id))
            row = trace.to_json()
            row.update(task=request.task_name, doc_id=request.doc_id, repeat=int(sample.id.rsplit("/", 1)[1]),
                       trace_id=sample.id, mode=self.mode_name)
            rows.append(row)
        self.sidecar.append(rows)
        return outputs

    def _sample(self, request, repeat: int) -> Sample:
        context, gen_kwargs = request.args[0], dict(request.args[1] or {})
        until = gen_kwargs.pop("until", None) or []
        until = [until] if isinstance(until, str) else list(until)
        max_tokens = int(gen_kwargs.pop("max_gen_toks", self.config.max_gen_toks))
        do_sample = gen_kwargs.pop("do_sample", None)
        temperature = float(gen_kwargs.pop("temperature", 0.0) or 0.0)
        if do_sample is False:
            temperature = 0.0
        top_p = float(gen_kwargs.pop("top_p", 1.0) or 1.0)
        if gen_kwargs:
            log.debug("inftythink ignores gen_kwargs %s", sorted(gen_kwargs))
        sample_id = f"{request.task_name}/{request.doc_id}/{repeat}"
        seed = int(hashlib.sha256(f"{self.config.seed}/{sample_id}".encode()).hexdigest()[:8], 16)
        params = SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p,
                                stop=tuple(s for s in until if s), seed=seed)
        system, question, chat = None, context, False
        if context.startswith(_CHAT_MARK):
            messages = json.loads(context[len(_CHAT_MARK):])
            system = "\n\n".join(m["content"] for m in messages if m["role"] == "system") or None
            question = "\n\n".join(m["content"] for m in messages if m["role"] != "system")
            chat = True
        return Sample(id=sample_id, question=question, params=params, system=system, chat=chat,
                      native=self.config.template == "native")

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        loglikelihood = getattr(self.backend, "loglikelihood", None)
        if loglikelihood is None:
            raise NotImplementedError(f"backend={self.config.backend} cannot score loglikelihood requests; "
                                      "use backend=hf or backend=vllm for multiple-choice-by-likelihood tasks")
        return loglikelihood([(r.args[0], r.args[1]) for r in requests])

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        loglikelihood = getattr(self.backend, "loglikelihood", None)
        if loglikelihood is None:
            raise NotImplementedError(f"backend={self.config.backend} cannot score loglikelihood requests")
        return [ll for ll, _ in loglikelihood([("", r.args[0]) for r in requests])]
