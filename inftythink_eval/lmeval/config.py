"""``model_args`` parsed in exactly one place into a frozen, validated ``EvalConfig``.

Owns: the list of accepted keys (each field below, with its docstring; every
mode's declared parameters; each backend's declared options and pass-through
arguments), reading lm-eval's ``key=value`` text (``keyvalue.parse_pairs``:
a key given twice or an item without ``=`` is an error) and lm-eval's
already-typed values, lm-eval's ``--device``/``--batch_size`` where
model_args is silent, ``pretrained=zoo:<name>`` (the card's defaults under
the explicit keys, in the same single parse), type coercion, cross-field
checks, and the errors that name the valid choices and the fix, all raised
before any model is loaded or any token generated.

Does not know: how backends or modes use the values, or any backend or mode
by name: each declares what it needs (``backends.base.BackendSpec``,
``modes.Param``).
"""

from __future__ import annotations

import dataclasses
import logging
import typing
from dataclasses import dataclass, field
from typing import Any, Optional

from inftythink_eval.backends.base import BackendSpec, backend_names, backend_spec, default_backend
from inftythink_eval.checkpoints.cards import PREFIX as ZOO_PREFIX, get_card, resolve
from inftythink_eval.keyvalue import parse_pairs
from inftythink_eval.modes import MODES, ModeParams, mode_param_specs

log = logging.getLogger(__name__)
DEFAULT_MODE = "vanilla"
EXAMPLE = "key=value,key=value (e.g. pretrained=zoo:smollm2-135m-instruct,mode=summarize)"


@dataclass(frozen=True)
class EvalConfig:
    """Everything ``--model_args`` can set for ``--model inftythink``."""

    pretrained: Optional[str] = None
    """Model: hub id, local folder, .gguf file or zoo:<name>. Required unless the backend declares it needs none."""
    backend: str = field(default_factory=default_backend)
    """Generation backend: a registered one (``inftythink eval --help-backend`` lists them); default: the one
    that declares itself the default."""
    mode: Optional[str] = None
    """A registered mode (``modes.MODES``; each mode's parameters are model_args keys too);
    default: the zoo card's mode, else vanilla (``parse`` fills it in)."""
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
    """summarize: the server URL when the summariser's backend takes one (its ``url_key``, e.g. base_url)."""
    # --- run ---
    schedule: str = "continuous"
    """continuous (samples advance independently) or rounds (round-synchronous, for comparisons)."""
    cache_dir: Optional[str] = None
    """Folder of the call cache; a rerun with the same folder resumes and recomputes nothing finished."""
    derive_budgets: bool = False
    """With cache_dir: a greedy or seeded call whose cache holds the same call at a larger token budget is not
    run; its first max_tokens tokens are the answer (``run/budgets.py``; ``inftythink sweep`` sets it for vanilla
    budgets). LAT of such a call is its B-th token's time where the backend records token times, else left out."""
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
    module declares (``backends/<name>.py``: e.g. dtype, device, batch_size, base_url, concurrency) and
    its declared pass-through engine arguments. ``inftythink eval --help-backend NAME`` lists them."""
    extra: dict = field(default_factory=dict)
    """Ignored lm-eval additions (max_batch_size)."""

    # ------------------------------------------------------------------------
    def mode_params(self) -> ModeParams:
        """Every mode parameter (defaults for those not given), validated by the modes' own checks."""
        return ModeParams(**self.mode_args)

    def model_path(self) -> Optional[str]:
        """``pretrained`` as backends load it: a zoo card's path or hub id (the test model is fetched once),
        else as given."""
        return resolve(self.pretrained)[0] if self.pretrained else None

    def url(self, backend: str, summarizer: bool = False) -> Optional[str]:
        """The server URL for ``backend`` when it declares one (its ``url_key``); the summariser's is
        ``summarizer_base_url`` when given, else the main one."""
        key = backend_spec(backend).url_key
        if key is None:
            return None
        return (self.summarizer_base_url if summarizer else None) or self.backend_args.get(key)

    def summarizer(self) -> Optional[str]:
        """The summariser's backend, when summaries use another backend or model than the main one."""
        if self.summarizer_backend or self.summarizer_pretrained:
            return self.summarizer_backend or self.backend
        return None


_FIELDS = {f.name: f for f in dataclasses.fields(EvalConfig) if f.name not in ("extra", "mode_args", "backend_args")}
_MODE_PARAMS = {name: param for name, (param, _modes) in mode_param_specs().items()}
_IGNORED = {"max_batch_size"}


# --- the ways lm-eval hands model_args over ------------------------------------
def from_text(arg_string: Optional[str], cli: Optional[dict] = None) -> EvalConfig:
    """``--model_args`` text (lm-eval's ``create_from_arg_string``): split once with ``keyvalue.parse_pairs``,
    each value read as lm-eval reads it (true/false, none, numbers, quoted text kept as text)."""
    from lm_eval.utils import handle_arg_string

    pairs = parse_pairs(arg_string, "--model_args for --model inftythink", EXAMPLE)
    return from_args({k: handle_arg_string(v) for k, v in pairs.items()}, cli)


def from_args(args: dict[str, Any], cli: Optional[dict] = None) -> EvalConfig:
    """model_args already split (lm-eval's ``create_from_arg_obj``, or its CLI), plus its --device/--batch_size."""
    return parse(merge_cli_settings(dict(args), cli or {}))


def merge_cli_settings(model_args: dict, cli: dict) -> dict:
    """lm-eval's --device/--batch_size apply only where model_args is silent and the backend declares the key.

    ``--batch_size 1`` is lm-eval's default and is ignored (set batch_size=1 in
    model_args to force it); ``--device cuda`` on a machine without CUDA falls
    back to the CPU with a warning.
    """
    name = str(model_args.get("backend") or default_backend())
    accepted = backend_spec(name).keys() if name in backend_names() else {}
    batch = cli.get("batch_size")
    if "batch_size" in accepted and "batch_size" not in model_args and batch not in (None, 1, "1", "auto") \
            and not str(batch).startswith("auto"):
        model_args["batch_size"] = batch
    device = cli.get("device")
    if "device" in accepted and "device" not in model_args and device:
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


# --- the one parse ---------------------------------------------------------------
def valid_keys(backends: tuple[str, ...] = ()) -> list[str]:
    """The accepted model_args keys: the common ones, every mode's, and the named backends' own."""
    return sorted(set(_FIELDS) | set(_MODE_PARAMS) | {k for b in backends for k in backend_spec(b).keys()})


def parse(args: dict[str, Any]) -> EvalConfig:
    """Validate ``model_args`` (already split) into an ``EvalConfig``; ``pretrained=zoo:<name>`` brings the card's
    defaults (its mode and model_args) under the keys given here."""
    args = with_card_defaults(args)
    backend = _known_backend("backend", args.get("backend") or default_backend())
    summarizer = _known_backend("summarizer_backend", args.get("summarizer_backend") or backend)
    used = [backend_spec(name) for name in dict.fromkeys([backend, summarizer])]
    for spec in used:
        missing = spec.missing()
        if missing:
            raise ImportError(f"backend={spec.name} needs {', '.join(missing)}, which is not installed. "
                              f"Fix: {spec.install}")
    backend_args = _backend_args(args, used, set(_FIELDS) | set(_MODE_PARAMS) | _IGNORED)
    hints = typing.get_type_hints(EvalConfig)
    values = {k: _coerce(k, v, hints[k]) for k, v in args.items() if k in _FIELDS and v is not None}
    values.update(backend=backend, mode=values.get("mode") or DEFAULT_MODE)
    if backend_args.get("batch_size") == "auto":
        backend_args.pop("batch_size")
    mode_args = {k: _coerce(k, v, _MODE_PARAMS[k].type) for k, v in args.items() if k in _MODE_PARAMS and v is not None}
    config = EvalConfig(**values, mode_args=mode_args, backend_args=backend_args,
                        extra={k: args[k] for k in _IGNORED & set(args)})
    _check(config)
    return config


def with_card_defaults(args: dict[str, Any]) -> dict[str, Any]:
    """``pretrained=zoo:<name>``: the card's mode and model_args, each unless given (a given mode=None counts
    as not given); an unknown card is an error that lists the zoo."""
    pretrained = args.get("pretrained")
    if not isinstance(pretrained, str) or not pretrained.startswith(ZOO_PREFIX):
        return dict(args)
    card = get_card(pretrained)
    merged = {**card.eval_args, **args}
    if merged.get("mode") is None:
        merged["mode"] = card.eval_mode
    return merged


def _known_backend(key: str, name: Any) -> str:
    if str(name) not in backend_names():
        raise ValueError(f"model_args {key}={name!r}: valid backends are {', '.join(backend_names())}")
    return str(name)


def _backend_args(args: dict[str, Any], used: list[BackendSpec], taken: set[str]) -> dict:
    """Coerce the keys the used backends declare; a backend's declared pass-through arguments go as given
    (read as lm-eval reads text; the engine checks them); anything else is an error listing the valid keys."""
    declared: dict[str, Any] = {}
    for spec in used:
        hints = typing.get_type_hints(spec.options)
        declared.update({k: hints[k] for k in spec.keys()})
    values, unknown = {}, []
    for key, value in args.items():
        if key in taken or value is None:
            continue
        if key in declared:
            values[key] = _coerce(key, value, declared[key])
        elif any(spec.accepts_extra(key) for spec in used):
            values[key] = _literal(value)
        else:
            unknown.append(key)
    if unknown:
        names = "/".join(spec.name for spec in used)
        raise ValueError(f"unknown model_args key(s) {', '.join(sorted(unknown))} for --model inftythink with "
                         f"backend={names}; valid keys: {', '.join(valid_keys(tuple(s.name for s in used)))}"
                         f"{''.join(f'; and {s.extra_doc}' for s in used if s.extra_keys)}"
                         f" (see `inftythink eval --help-backend {used[0].name}`)")
    for spec in used:  # each options dataclass checks its own values
        keys = spec.keys()
        spec.options(**{k: v for k, v in values.items() if k in keys and v != "auto"})
    return values


def _literal(value: Any) -> Any:
    """A pass-through value as lm-eval reads model_args text: true/false, none, ints, floats, else as given."""
    from lm_eval.utils import handle_arg_string

    return handle_arg_string(value) if isinstance(value, str) else value


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
    if config.mode not in MODES:
        raise ValueError(f"model_args mode={config.mode!r}: valid modes are {', '.join(MODES)}")
    if config.template not in ("auto", "native"):
        raise ValueError(f"model_args template={config.template!r}: valid values are auto, native")
    if config.schedule not in ("continuous", "rounds"):
        raise ValueError(f"model_args schedule={config.schedule!r}: valid values are continuous, rounds")
    main = backend_spec(config.backend)
    if config.pretrained is None and main.needs_pretrained:
        raise ValueError("model_args needs pretrained=<hub id | local folder | .gguf file | zoo:<name>> "
                         f"for backend={config.backend} (try pretrained=zoo:smollm2-135m-instruct)")
    if main.url_key and not config.url(config.backend):
        raise ValueError(f"backend={config.backend} needs {main.url_key}=http://HOST:PORT/v1 (the server's URL)")
    summarizer = config.summarizer()
    if summarizer and summarizer != config.backend:
        spec = backend_spec(summarizer)
        if spec.url_key and not config.url(summarizer, summarizer=True):
            raise ValueError(f"summarizer_backend={summarizer} needs summarizer_base_url=http://HOST:PORT/v1 "
                             f"(or {spec.url_key}=)")
    if config.derive_budgets and not config.cache_dir:
        raise ValueError("model_args derive_budgets=true needs cache_dir=DIR: shorter budgets are derived from the "
                         "longer generations that folder holds")
    if config.max_gen_toks < 1:
        raise ValueError(f"model_args max_gen_toks must be >= 1, got {config.max_gen_toks}")
    config.mode_params()  # validates the mode parameters
