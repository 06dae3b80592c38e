"""``model_args`` parsed in exactly one place into a frozen, validated ``EvalConfig``.

Owns: the list of accepted keys (each field below, with its docstring), type
coercion from lm-eval's ``key=value`` strings, cross-field checks, and the
errors that name the valid choices and the fix, all raised before any model
is loaded or any token generated.

Does not know: how backends or modes use the values.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import typing
from dataclasses import dataclass, field
from typing import Any, Optional

from .backends.base import backend_names
from .modes import MODES, ModeParams, mode_param_specs

_BACKEND_MODULES = {"hf": ("transformers", "torch"), "vllm": ("vllm",), "openai": ("httpx",), "scripted": ()}
_BACKEND_FIX = {"vllm": "pip install 'inftythink-eval[vllm]'", "openai": "pip install 'inftythink-eval[api]'",
                "hf": "pip install torch==2.13.0 transformers  (torch first, so no CUDA build is pulled)"}


@dataclass(frozen=True)
class EvalConfig:
    """Everything ``--model_args`` can set for ``--model inftythink``."""

    pretrained: Optional[str] = None
    """Model: hub id, local folder, .gguf file or zoo:<name>. Required except for backend=scripted."""
    backend: str = "hf"
    """Generation backend: hf, vllm, openai or scripted."""
    mode: Optional[str] = None
    """A registered mode (``modes.MODES``; each mode's parameters are model_args keys too);
    default: the zoo card's mode, else vanilla."""
    template: str = "auto"
    """Round prompts: auto (the model's chat template with --apply_chat_template, the task text as is without)
    or native (the protocol's User:{q}Assistant: in every mode, for checkpoints trained on it)."""
    mode_args: dict = field(default_factory=dict)
    """Mode parameters given in model_args, coerced and checked. The keys are those the registered modes
    declare (``modes.mode_param_specs()``: max_rounds, round_tokens, eta, chunk, ...); the docs list them."""
    # --- summariser ---
    summarizer_backend: Optional[str] = None
    """summarize: another backend for summaries (default: the main model)."""
    summarizer_pretrained: Optional[str] = None
    """summarize: the summariser model (default: the main model)."""
    summarizer_base_url: Optional[str] = None
    """summarize: base URL when the summariser is an openai backend."""
    # --- engine ---
    dtype: str = "auto"
    """hf/vllm: auto, float32, bfloat16 or float16."""
    device: str = "cpu"
    """hf: torch device (cpu, cuda, cuda:0, ...)."""
    batch_size: int = 8
    """hf/scripted: most requests per generate call."""
    concurrency: int = 8
    """openai: most requests in flight."""
    schedule: str = "continuous"
    """continuous (samples advance independently) or rounds (round-synchronous, for comparisons)."""
    cache_dir: Optional[str] = None
    """Folder of the call cache; a rerun with the same folder resumes and recomputes nothing finished."""
    seed: int = 1234
    """Base seed; each sample, repeat and call derives its own."""
    max_gen_toks: int = 32768
    """Token budget when a task gives no max_gen_toks."""
    trace_dir: Optional[str] = None
    """Where the sidecar traces go (default: lm-eval's --output_path folder)."""
    progress: bool = True
    """Show a progress bar."""
    revision: Optional[str] = None
    """hf/vllm: model revision."""
    trust_remote_code: bool = False
    """hf/vllm: trust remote code."""
    gguf_file: Optional[str] = None
    """hf: GGUF file name inside the pretrained folder."""
    prefix_cache: int = 0
    """hf: keep the KV caches of the last N sequences and compute only the unshared part of each
    prompt (one request at a time; pays off when prompts extend earlier ones). 0: off."""
    # --- openai ---
    base_url: Optional[str] = None
    """openai: server URL, e.g. http://127.0.0.1:8000/v1."""
    api_key_env: str = "OPENAI_API_KEY"
    """openai: environment variable that holds the API key (the key itself never goes in model_args)."""
    timeout: float = 600.0
    """openai: seconds per request."""
    http_retries: int = 4
    """openai: retries per request, with exponential backoff."""
    tokenizer: Optional[str] = None
    """openai/vllm: tokenizer (hub id or folder) for token slicing (delethink) and loglikelihood."""
    # --- vllm ---
    tensor_parallel_size: int = 1
    """vllm: tensor parallel size."""
    data_parallel_size: int = 1
    """vllm: data parallel size."""
    gpu_memory_utilization: float = 0.9
    """vllm: fraction of GPU memory."""
    max_model_len: Optional[int] = None
    """vllm: context length."""
    # --- scripted ---
    script: Optional[str] = None
    """scripted: rules file (JSON or JSON lines)."""
    call_log: Optional[str] = None
    """scripted: file that gets one JSON line per backend call."""
    delay: float = 0.0
    """scripted: seconds each call sleeps (to imitate a slow engine in tests)."""
    extra: dict = field(default_factory=dict)
    """Ignored lm-eval additions (max_batch_size)."""

    # ------------------------------------------------------------------------
    def mode_params(self) -> ModeParams:
        """Every mode parameter (defaults for those not given), validated by the modes' own checks."""
        return ModeParams(**self.mode_args)


_FIELDS = {f.name: f for f in dataclasses.fields(EvalConfig) if f.name not in ("extra", "mode_args")}
_MODE_PARAMS = {name: param for name, (param, _modes) in mode_param_specs().items()}
_IGNORED = {"max_batch_size"}


def valid_keys() -> list[str]:
    return sorted(set(_FIELDS) | set(_MODE_PARAMS))


def parse(args: dict[str, Any]) -> EvalConfig:
    """Validate ``model_args`` (already split by lm-eval) into an ``EvalConfig``."""
    unknown = sorted(set(args) - set(_FIELDS) - set(_MODE_PARAMS) - _IGNORED)
    if unknown:
        raise ValueError(f"unknown model_args key(s) {', '.join(unknown)} for --model inftythink; "
                         f"valid keys: {', '.join(valid_keys())}")
    hints = typing.get_type_hints(EvalConfig)
    values = {k: _coerce(k, v, hints[k]) for k, v in args.items() if k in _FIELDS and v is not None}
    if values.get("batch_size") == "auto":
        values.pop("batch_size")
    mode_args = {k: _coerce(k, v, _MODE_PARAMS[k].type) for k, v in args.items() if k in _MODE_PARAMS and v is not None}
    config = EvalConfig(**values, mode_args=mode_args, extra={k: args[k] for k in _IGNORED & set(args)})
    _check(config)
    return config


def _coerce(key: str, value: Any, hint: Any) -> Any:
    target = next((t for t in typing.get_args(hint) if t is not type(None)), hint)
    if key == "batch_size" and str(value) == "auto":
        return "auto"
    try:
        if target is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "1", "yes"):
                return True
            if str(value).lower() in ("false", "0", "no"):
                return False
            raise ValueError
        if target is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if target is float:
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        kind = getattr(target, "__name__", str(target))
        raise ValueError(f"model_args {key}={value!r}: expected {kind}") from None


def _check(config: EvalConfig) -> None:
    if config.backend not in backend_names():
        raise ValueError(f"model_args backend={config.backend!r}: valid backends are {', '.join(backend_names())}")
    if config.mode is not None and config.mode not in MODES:
        raise ValueError(f"model_args mode={config.mode!r}: valid modes are {', '.join(MODES)}")
    if config.template not in ("auto", "native"):
        raise ValueError(f"model_args template={config.template!r}: valid values are auto, native")
    if config.schedule not in ("continuous", "rounds"):
        raise ValueError(f"model_args schedule={config.schedule!r}: valid values are continuous, rounds")
    if config.pretrained is None and config.backend != "scripted":
        raise ValueError("model_args needs pretrained=<hub id | local folder | .gguf file | zoo:<name>> "
                         f"for backend={config.backend} (try pretrained=zoo:smollm2-135m-instruct)")
    if config.backend == "openai" and not config.base_url:
        raise ValueError("backend=openai needs base_url=http://HOST:PORT/v1 (any OpenAI-compatible server)")
    for name in {config.backend, config.summarizer_backend or config.backend}:
        missing = [m for m in _BACKEND_MODULES.get(name, ()) if importlib.util.find_spec(m) is None]
        if missing:
            raise ImportError(f"backend={name} needs {', '.join(missing)}, which is not installed. Fix: {_BACKEND_FIX[name]}")
    for key in ("batch_size", "concurrency", "max_gen_toks", "tensor_parallel_size", "data_parallel_size"):
        if getattr(config, key) < 1:
            raise ValueError(f"model_args {key} must be >= 1, got {getattr(config, key)}")
    if config.prefix_cache < 0:
        raise ValueError(f"model_args prefix_cache must be >= 0 (cached sequences; 0 turns it off), got {config.prefix_cache}")
    config.mode_params()  # validates the mode parameters
