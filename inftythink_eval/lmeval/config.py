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

from inftythink_eval.backends.base import backend_names, backend_spec
from inftythink_eval.modes import MODES, ModeParams, mode_param_specs



@dataclass(frozen=True)
class EvalConfig:
    """Everything ``--model_args`` can set for ``--model inftythink``."""

    pretrained: Optional[str] = None
    """Model: hub id, local folder, .gguf file or zoo:<name>. Required except for backend=scripted."""
    backend: str = "hf"
    """Generation backend: a registered one (hf, vllm, openai, scripted; see ``backends``)."""
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
    # --- run ---
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
    # --- backend ---
    backend_args: dict = field(default_factory=dict)
    """The backend's own keys given in model_args, coerced and checked against the options the backend
    module declares (``backends/<name>.py``: e.g. hf's dtype, device, batch_size; openai's base_url,
    concurrency; vllm's engine arguments). ``inftythink eval --help-backend NAME`` lists them."""
    extra: dict = field(default_factory=dict)
    """Ignored lm-eval additions (max_batch_size)."""

    # ------------------------------------------------------------------------
    def mode_params(self) -> ModeParams:
        """Every mode parameter (defaults for those not given), validated by the modes' own checks."""
        return ModeParams(**self.mode_args)


_FIELDS = {f.name: f for f in dataclasses.fields(EvalConfig) if f.name not in ("extra", "mode_args", "backend_args")}
_MODE_PARAMS = {name: param for name, (param, _modes) in mode_param_specs().items()}
_IGNORED = {"max_batch_size"}


def valid_keys(backends: tuple[str, ...] = ()) -> list[str]:
    """The accepted model_args keys: the common ones, every mode's, and the named backends' own."""
    return sorted(set(_FIELDS) | set(_MODE_PARAMS) | {k for b in backends for k in backend_keys(b)})


def backend_keys(name: str) -> dict[str, dataclasses.Field]:
    """The model_args keys backend ``name`` declares (its options dataclass)."""
    return {f.name: f for f in dataclasses.fields(backend_spec(name).options)}


def _backend_args(args: dict[str, Any], backends: list[str], taken: set[str]) -> dict:
    """Coerce the keys the named backends declare; vLLM's own engine arguments pass through as given
    (vLLM checks them); anything else is an error that lists the valid keys."""
    declared: dict[str, Any] = {}
    for name in backends:
        hints = typing.get_type_hints(backend_spec(name).options)
        declared.update({k: hints[k] for k in backend_keys(name)})
    values, unknown = {}, []
    for key, value in args.items():
        if key in taken or value is None:
            continue
        if key in declared:
            values[key] = _coerce(key, value, declared[key])
        elif "vllm" in backends and _vllm_engine_arg(key):
            values[key] = _literal(value)
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f"unknown model_args key(s) {', '.join(sorted(unknown))} for --model inftythink with "
                         f"backend={'/'.join(backends)}; valid keys: {', '.join(valid_keys(tuple(backends)))}")
    for name in backends:  # each options dataclass checks its own values
        keys = backend_keys(name)
        backend_spec(name).options(**{k: v for k, v in values.items() if k in keys and v != "auto"})
    return values


def _vllm_engine_arg(key: str) -> bool:
    if importlib.util.find_spec("vllm") is None:
        return False
    from inftythink_eval.backends.vllm import engine_arg_names

    return key in engine_arg_names()


def _literal(value: Any) -> Any:
    """A pass-through value as lm-eval reads model_args text: true/false, ints, floats, None, else as given."""
    from lm_eval.utils import handle_arg_string

    return handle_arg_string(value) if isinstance(value, str) else value


def parse(args: dict[str, Any]) -> EvalConfig:
    """Validate ``model_args`` (already split by lm-eval) into an ``EvalConfig``."""
    backend = str(args.get("backend") or "hf")
    if backend not in backend_names():
        raise ValueError(f"model_args backend={backend!r}: valid backends are {', '.join(backend_names())}")
    summarizer = str(args.get("summarizer_backend") or backend)
    if summarizer not in backend_names():
        raise ValueError(f"model_args summarizer_backend={summarizer!r}: valid backends are {', '.join(backend_names())}")
    backend_args = _backend_args(args, list(dict.fromkeys([backend, summarizer])),
                                 set(_FIELDS) | set(_MODE_PARAMS) | _IGNORED)
    hints = typing.get_type_hints(EvalConfig)
    values = {k: _coerce(k, v, hints[k]) for k, v in args.items() if k in _FIELDS and v is not None}
    if backend_args.get("batch_size") == "auto":
        backend_args.pop("batch_size")
    mode_args = {k: _coerce(k, v, _MODE_PARAMS[k].type) for k, v in args.items() if k in _MODE_PARAMS and v is not None}
    config = EvalConfig(**values, mode_args=mode_args, backend_args=backend_args, extra={k: args[k] for k in _IGNORED & set(args)})
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
    if config.backend == "openai" and not config.backend_args.get("base_url"):
        raise ValueError("backend=openai needs base_url=http://HOST:PORT/v1 (any OpenAI-compatible server)")
    for name in {config.backend, config.summarizer_backend or config.backend}:
        spec = backend_spec(name)
        missing = [m for m in spec.requires if importlib.util.find_spec(m) is None]
        if missing:
            raise ImportError(f"backend={name} needs {', '.join(missing)}, which is not installed. Fix: {spec.install}")
    if config.max_gen_toks < 1:
        raise ValueError(f"model_args max_gen_toks must be >= 1, got {config.max_gen_toks}")
    config.mode_params()  # validates the mode parameters
