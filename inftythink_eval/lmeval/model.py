"""The lm-evaluation-harness model ``inftythink``: lm-eval requests in, engine traces out.

Owns: turning ``Instance``s into engine ``Sample``s (context, ``until``,
``max_gen_toks``, temperature, top_p, ``do_sample``, repeats, seeds), how
``--apply_chat_template`` and ``--system_instruction`` compose with round
prompts, returning ``SampleOutput`` strings that carry per-sample stats, and
writing the sidecar traces.

Chat templates: with ``--apply_chat_template`` lm-eval asks us to render the
chat (system, few-shot turns, the question, an assistant ``gen_prefix``); we
render it with the main backend's chat template (or the protocol's strings under
``template=native``), return that prompt (what ``--log_samples`` shows) and keep
the messages, so each mode renders its own round prompts from them:
vanilla/summarize/delethink keep the system message and the few-shot turns as
messages, replace the last user turn with the round's text and append the
``gen_prefix``; native ``inftythink`` always uses the protocol's
``User:``/``Assistant:`` strings (system instruction and few-shot turns go
before the question, no ``gen_prefix``).  Without the flag the task's context
string is used as is (lm-eval has already put the system instruction, the
few-shot examples and the ``gen_prefix`` into it).

Does not know: sampling internals (``engine``/``backends``), scoring (tasks).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

from inftythink_eval.backends.base import Backend, SamplingParams, backend_names, backend_spec, make_backend
from inftythink_eval.engine.loop import Engine
from inftythink_eval.formats.inftythink import chat_messages, native_prompt, with_system
from inftythink_eval.lmeval.config import EvalConfig, from_args, from_text
from inftythink_eval.lmeval.sidecar import Sidecar, git_commit, hardware, lm_eval_output_dir, weights_fingerprint
from inftythink_eval.modes import Sample, engine_thinking
from inftythink_eval.run.cache import CallCache
from inftythink_eval.run.output import SampleOutput

log = logging.getLogger(__name__)


def _version() -> str:
    """This package's version, from its installed metadata."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("inftythink-eval")
    except PackageNotFoundError:
        return "unknown (not installed)"


# gen_kwargs lm-eval tasks use that this model understands; any other key is reported once, then ignored.
KNOWN_GEN_KWARGS = ("until", "max_gen_toks", "do_sample", "temperature", "top_p", "top_k", "min_p")


@dataclass(frozen=True)
class Chat:
    """A chat lm-eval asked us to render: its system text, the turns before the question, the question, the prefix."""

    system: str | None
    history: tuple
    question: str
    gen_prefix: str

    @classmethod
    def from_messages(cls, messages: list[dict], add_generation_prompt: bool = True) -> "Chat":
        turns = [dict(role=m["role"], content=m["content"]) for m in messages]
        prefix = ""
        if not add_generation_prompt and turns and turns[-1]["role"] == "assistant":
            prefix = turns.pop()["content"]  # lm-eval's gen_prefix: the open assistant turn
        system = "\n\n".join(m["content"] for m in turns if m["role"] == "system") or None
        turns = [m for m in turns if m["role"] != "system"]
        if not turns or turns[-1]["role"] != "user":
            raise ValueError(f"a chat to render must end with a user turn (then an optional assistant prefix); "
                             f"got roles {[m['role'] for m in messages]}")
        return cls(system, tuple(turns[:-1]), turns[-1]["content"], prefix)

    def flat_question(self) -> str:
        """Few-shot turns and the question as one text (the native protocol has one user turn)."""
        return "\n\n".join([m["content"] for m in self.history] + [self.question])


def open_backend(config: EvalConfig, backend: str, pretrained: Optional[str], url: Optional[str],
                 think_marks: Optional[tuple[str, str]] = None) -> Backend:
    """Construct one backend from the validated config (errors before any generation): the keys its options
    declare, its declared pass-through engine arguments, its URL and the run seed where it declares them, and
    the thinking markers when the mode asks the engine to keep a thinking budget (refused where it cannot)."""
    spec = backend_spec(backend)
    kwargs = {k: v for k, v in config.backend_args.items() if k in spec.keys() or _passes_through(spec, k)}
    if think_marks is not None:
        if not spec.thinking_budget:
            able = [n for n in backend_names() if backend_spec(n).thinking_budget]
            raise ValueError(f"mode={config.mode} with engine_budget=true needs a backend that keeps a thinking budget "
                             f"itself ({', '.join(able)}); backend={backend} has none. Leave engine_budget out for "
                             "the two-call rule, which works on every backend")
        kwargs["think_marks"] = think_marks
    if spec.url_key:
        kwargs[spec.url_key] = url
    if spec.takes_seed:
        kwargs.setdefault("seed", config.seed)
    return make_backend(backend, pretrained=pretrained, model_id=pretrained, **kwargs)


def _passes_through(spec, key: str) -> bool:
    """A key no backend declares, which this backend takes as one of its engine's own arguments."""
    declared = {k for name in backend_names() for k in backend_spec(name).keys()}
    return key not in declared and spec.accepts_extra(key)


def backend_options(config: EvalConfig, backend: str) -> dict:
    """Every option of ``backend`` as this run uses it (defaults filled in), for the run's provenance."""
    spec = backend_spec(backend)
    own = spec.keys()
    chosen = {k: v for k, v in config.backend_args.items() if k in own}
    return {**dataclasses.asdict(spec.options(**chosen)),
            **{k: v for k, v in config.backend_args.items() if k not in own and _passes_through(spec, k)}}


@register_model("inftythink")
class InftyThinkLM(LM):
    """Iterative (InftyThink-style) generation over a real engine; see ``config.EvalConfig`` for model_args."""

    @classmethod
    def create_from_arg_string(cls, arg_string: str, additional_config: Optional[dict] = None) -> "InftyThinkLM":
        """``--model_args`` text, parsed once by ``config.from_text`` (a key given twice is an error)."""
        return cls(config=from_text(arg_string, additional_config))

    @classmethod
    def create_from_arg_obj(cls, arg_dict: dict, additional_config: Optional[dict] = None) -> "InftyThinkLM":
        """model_args already split (lm-eval's CLI, or a dict from Python), parsed once by ``config.from_args``."""
        return cls(config=from_args(arg_dict, additional_config))

    def __init__(self, config: Optional[EvalConfig] = None, **model_args: Any) -> None:
        """Takes the validated ``EvalConfig``; keyword model_args (``InftyThinkLM(pretrained=...)``) are parsed
        by the same ``config.from_args``."""
        super().__init__()
        if not isinstance(config, EvalConfig):
            config = from_args(model_args if config is None else {"config": config, **model_args})
        elif model_args:
            raise TypeError(f"InftyThinkLM takes an EvalConfig or model_args keywords, not both "
                            f"(got config and {', '.join(sorted(model_args))})")
        path = config.model_path()
        self.config, self.mode_name = config, config.mode
        marks = engine_thinking(config.mode, config.mode_params())
        self.backend = open_backend(config, config.backend, path, config.url(config.backend), think_marks=marks)
        summarizer, name = None, config.summarizer()
        if name:
            summarizer = open_backend(config, name, config.summarizer_pretrained or path,
                                      config.url(name, summarizer=True))
        cache = CallCache(config.cache_dir) if config.cache_dir else None
        self.engine = Engine(self.backend, config.mode, config.mode_params(), summarizer=summarizer, cache=cache,
                             schedule=config.schedule, progress=config.progress,
                             derive_budgets=config.derive_budgets)
        folder = lm_eval_output_dir(config.pretrained) if config.trace_dir is None else Path(config.trace_dir)
        self.sidecar = Sidecar(folder, self._provenance(path))
        self._chats: dict[str, Chat] = {}  # rendered first prompt -> the chat it came from
        self._warned_keys: set[str] = set()

    def _provenance(self, path: Optional[str]) -> dict:
        c = self.config
        options = backend_options(c, c.backend)
        return {"inftythink_eval_version": _version(), "git_commit": git_commit(), "backend": c.backend,
                "pretrained": c.pretrained, "model_path": path,
                "weights": weights_fingerprint(path) if path else None, "revision": c.backend_args.get("revision"),
                "mode": self.mode_name, "mode_params": self.engine.mode.params,
                "dtype": options.get("dtype"), "device": getattr(self.backend, "device", None),
                "batch_size": options.get("batch_size"), "concurrency": options.get("concurrency"),
                "backend_args": options, "fingerprint": getattr(self.backend, "fingerprint", None),
                "schedule": c.schedule, "seed": c.seed,
                "hardware": hardware(), "config": c}

    # --- lm-eval API --------------------------------------------------------
    @property
    def tokenizer_name(self) -> str:
        return str(self.config.pretrained or self.config.backend).replace("/", "__")

    def chat_template(self, chat_template: bool | str = False) -> str:
        """The main backend's chat template (lm-eval records it and its hash); the protocol under template=native."""
        if self.config.template == "native":
            return native_prompt("{question}")
        template = getattr(getattr(self.backend, "tokenizer", None), "chat_template", None)
        if isinstance(template, dict):  # several named templates
            name = chat_template if isinstance(chat_template, str) else "default"
            template = template.get(name) or next(iter(template.values()), "")
        return template or ""

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """Render the chat as the first round prompt; remember its messages for the rounds that follow."""
        chat = Chat.from_messages(chat_history, add_generation_prompt)
        if self.config.template == "native":
            rendered = native_prompt(with_system(chat.system, chat.flat_question()))
        else:
            messages = chat_messages(chat.question, chat.system, chat.history)
            try:
                rendered = self.backend.apply_chat_template(messages) + chat.gen_prefix
            except ValueError as exc:
                raise ValueError(f"--apply_chat_template: the model {self.config.pretrained} has no usable chat "
                                 f"template ({exc}); run without --apply_chat_template, or use template=native "
                                 "for checkpoints trained on the User:/Assistant: protocol") from exc
        self._chats[rendered] = chat
        return rendered

    def set_cache_hook(self, cache_hook) -> None:
        """lm-eval's ``--use_cache`` wraps the model in ``CachingLM``, which calls this with its database.

        That cache keys a response by the request's prompt and gen_kwargs only: not the mode, its parameters,
        the backend or the model. A later run with another mode (or model) and the same file would be served
        these responses, with the TOK/LAT they had, and no trace. So it is refused; ``cache_dir`` is the cache
        that is keyed by all of that and resumes a killed run.
        """
        if getattr(cache_hook, "dbdict", None) is not None:
            raise ValueError("--use_cache is not supported by --model inftythink: lm-eval's response cache is keyed "
                             "by the prompt only (not mode, mode parameters, backend or model), so another mode's "
                             "outputs and stats would be reused. Drop --use_cache and add cache_dir=DIR to "
                             "--model_args: every finished call is kept, keyed by model, backend, prompt, "
                             "sampling and seed, and a rerun recomputes nothing that finished.")
        super().set_cache_hook(cache_hook)

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        seen: Counter = Counter()
        samples = []
        for request in requests:
            repeat = seen[id(request)]
            seen[id(request)] += 1
            samples.append(self._sample(request, repeat))
        try:
            traces = self.engine.run(samples)
        except (KeyboardInterrupt, Exception) as exc:  # a stopped run: the finished samples' traces are written
            done = {t.sample_id: t for t in getattr(exc, "finished_traces", [])}
            if done:
                self.sidecar.append([self._row(r, s, done[s.id]) for r, s in zip(requests, samples) if s.id in done])
            self.sidecar.update(self._serving())
            raise
        outputs = []
        for sample, trace in zip(samples, traces):
            outputs.append(SampleOutput(trace.final.answer, trace.stats(), trace_id=sample.id))
        self.sidecar.append([self._row(r, s, t) for r, s, t in zip(requests, samples, traces)])
        self.sidecar.update(self._serving())
        failed = [t for t in traces if t.error is not None]
        if failed:
            log.warning("%d of %d samples failed for good (first: %s). They are left out of ACC, pass@k and maj@k "
                        "(a question with no answered sample counts as unsolved) and counted in the 'error' metric; "
                        "the sidecar traces hold each reason. Rerun with the same cache_dir to redo only them.",
                        len(failed), len(traces), failed[0].error)
        return outputs

    def _serving(self) -> dict:
        """The run file's account of how calls were served so far: per backend role, the backend's own counts
        (``hf``: which path served how many requests, and why), and the calls derived from a longer budget."""
        out: dict = {"derived_calls": self.engine.derived}
        for role, backend in self.engine.backends.items():
            stats = getattr(backend, "stats", None)
            if callable(stats) and (role == "main" or backend is not self.engine.backends["main"]):
                out.setdefault("serving", {})[role] = stats()
        return out

    def _row(self, request, sample: Sample, trace) -> dict:
        """One sidecar line: the trace with where it belongs."""
        row = trace.to_json()
        row.update(task=request.task_name, doc_id=request.doc_id, repeat=int(sample.id.rsplit("/", 1)[1]),
                   trace_id=sample.id, mode=self.mode_name)
        return row

    def _sample(self, request, repeat: int) -> Sample:
        context, gen_kwargs = request.args[0], dict(request.args[1] or {})
        sample_id = f"{request.task_name}/{request.doc_id}/{repeat}"
        seed = int(hashlib.sha256(f"{self.config.seed}/{sample_id}".encode()).hexdigest()[:8], 16)
        params = self._sampling_params(gen_kwargs, seed)
        native = self.config.template == "native"
        chat = self._chats.get(context)
        if chat is None:  # the task's text as is (no --apply_chat_template)
            return Sample(id=sample_id, question=context, params=params, native=native)
        if native:
            return Sample(id=sample_id, question=chat.flat_question(), params=params, system=chat.system,
                          chat=True, native=True)
        return Sample(id=sample_id, question=chat.question, params=params, system=chat.system, chat=True,
                          history=chat.history, gen_prefix=chat.gen_prefix)

    def _sampling_params(self, gen_kwargs: dict, seed: int) -> SamplingParams:
        """lm-eval's gen_kwargs as lm-eval's ``hf`` model reads them; unknown keys are reported once.

        ``do_sample=True`` without a temperature samples at temperature 1.0 (transformers' default);
        ``do_sample=False`` is greedy whatever the temperature; no ``do_sample`` follows the temperature.
        """
        until = gen_kwargs.pop("until", None) or []
        until = [until] if isinstance(until, str) else list(until)
        max_tokens = int(gen_kwargs.pop("max_gen_toks", self.config.max_gen_toks))
        do_sample = gen_kwargs.pop("do_sample", None)
        temperature = gen_kwargs.pop("temperature", None)
        temperature = float(temperature) if temperature is not None else (1.0 if do_sample else 0.0)
        if do_sample is False:
            temperature = 0.0
        top_p = float(gen_kwargs.pop("top_p", None) or 1.0)
        top_k = int(gen_kwargs.pop("top_k", None) or 0)
        min_p = float(gen_kwargs.pop("min_p", None) or 0.0)
        unknown = sorted(set(gen_kwargs) - self._warned_keys)
        if unknown:
            self._warned_keys.update(unknown)
            log.warning("model inftythink ignores gen_kwargs %s (it understands %s)", unknown, ", ".join(KNOWN_GEN_KWARGS))
        return SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
                              min_p=min_p, stop=tuple(s for s in until if s), seed=seed)

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        loglikelihood = getattr(self.backend, "loglikelihood", None)
        if loglikelihood is None:
            raise NotImplementedError(f"backend={self.config.backend} cannot score loglikelihood requests; use a "
                                      "backend that computes prompt log-probabilities for multiple-choice-by-"
                                      "likelihood tasks (`inftythink eval --help-backend` lists them)")
        return loglikelihood([(r.args[0], r.args[1]) for r in requests])

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        loglikelihood = getattr(self.backend, "loglikelihood", None)
        if loglikelihood is None:
            raise NotImplementedError(f"backend={self.config.backend} cannot score loglikelihood requests")
        return [ll for ll, _ in loglikelihood([("", r.args[0]) for r in requests])]
