"""The one small protocol every generation backend implements.

Owns: the request/response value types (``SamplingParams``, ``Request``,
``Completion``), the ``Backend`` protocol and the backend registry.

Does not know: rounds, modes, templates, lm-eval.  A backend turns prompt
strings into completions and reports token counts and the finish reason.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol, Sequence, runtime_checkable


@dataclass(frozen=True)
class SamplingParams:
    """Sampling parameters of one request (validated on construction)."""

    max_tokens: int
    """Upper bound on generated tokens for this request."""
    temperature: float = 0.0
    """0 means greedy."""
    top_p: float = 1.0
    """Nucleus sampling mass in (0, 1]."""
    top_k: int = 0
    """Keep only the k most likely tokens; 0 turns it off."""
    min_p: float = 0.0
    """Drop tokens whose probability is below min_p times the top token's; 0 turns it off."""
    stop: tuple[str, ...] = ()
    """Stop strings; the output is cut before the first one (not included)."""
    seed: Optional[int] = None
    """Per-request seed; with temperature > 0 it makes sampling repeatable where the backend allows."""

    def __post_init__(self) -> None:
        if not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise ValueError(f"max_tokens must be an integer >= 1, got {self.max_tokens!r}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature!r}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if not isinstance(self.top_k, int) or self.top_k < 0:
            raise ValueError(f"top_k must be an integer >= 0 (0 turns it off), got {self.top_k!r}")
        if not 0 <= self.min_p <= 1:
            raise ValueError(f"min_p must be in [0, 1] (0 turns it off), got {self.min_p!r}")
        object.__setattr__(self, "stop", tuple(self.stop))

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass(frozen=True)
class Request:
    """One generation call: a fully rendered prompt string and its sampling parameters."""

    prompt: str
    params: SamplingParams


@dataclass(frozen=True)
class Completion:
    """What a backend returns for one request."""

    text: str
    prompt_tokens: int
    output_tokens: int
    finish_reason: str  # "stop" (EOS or a stop string) or "length" (hit max_tokens)
    output_ids: Optional[tuple[int, ...]] = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.finish_reason not in ("stop", "length"):
            raise ValueError(f"finish_reason must be 'stop' or 'length', got {self.finish_reason!r}")


class BackendError(RuntimeError):
    """A backend failed in a way the user must act on (server down, model missing, ...)."""


@runtime_checkable
class Backend(Protocol):
    """A generation engine.

    ``generate`` takes a batch and returns one completion per request, in order.
    ``max_batch`` is how many requests one call may carry; ``concurrency`` how
    many calls the scheduler may have in flight at once (1 for in-process
    engines; >1 for servers).
    """

    name: str
    model_id: str
    max_batch: int
    concurrency: int

    def generate(self, requests: Sequence[Request]) -> list[Completion]: ...

    def count_tokens(self, text: str) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True) -> str: ...

    def loglikelihood(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[float, bool]]: ...

    def close(self) -> None: ...


# --- registry ---------------------------------------------------------------
_BACKENDS: dict[str, str] = {
    "hf": "inftythink_eval.backends.hf:HFBackend",
    "vllm": "inftythink_eval.backends.vllm:VLLMBackend",
    "openai": "inftythink_eval.backends.openai:OpenAIBackend",
    "scripted": "inftythink_eval.backends.scripted:ScriptedBackend",
}
_INSTALL_HINT = {
    "hf": "pip install 'inftythink-eval' (transformers and torch are core dependencies)",
    "vllm": "pip install 'inftythink-eval[vllm]' (needs a vLLM build for your hardware)",
    "openai": "pip install 'inftythink-eval[api]'",
    "scripted": "nothing: it is built in",
}


def backend_names() -> list[str]:
    return sorted(_BACKENDS)


def register_backend(name: str, target: str) -> None:
    """Register ``name`` -> ``"module:Class"`` (lazy import)."""
    _BACKENDS[name] = target


def backend_class(name: str) -> Callable[..., Backend]:
    """The backend class for ``name``; a clear error for unknown names and missing extras."""
    if name not in _BACKENDS:
        raise ValueError(f"unknown backend {name!r}; valid backends: {', '.join(backend_names())}")
    module_name, _, attr = _BACKENDS[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(
            f"backend {name!r} is not usable here: {exc}. Fix: {_INSTALL_HINT.get(name, 'install its extra')}"
        ) from exc
    return getattr(module, attr)


def make_backend(name: str, **kwargs: Any) -> Backend:
    return backend_class(name)(**kwargs)
