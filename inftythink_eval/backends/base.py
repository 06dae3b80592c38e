"""The one small protocol every generation backend implements, and the backend registry.

Owns: the request/response value types (``SamplingParams``, ``Request``,
``Completion``), the errors (``RequestError`` costs one request,
``BackendError`` ends the run), the request-level ``Backend`` protocol
(``submit`` one request, get a future that resolves when *that* request
finishes, with its own timestamps) and the registry of one-file backends
(each declares its class, its options dataclass and its install hint).

Does not know: rounds, modes, templates, lm-eval.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import time
from concurrent.futures import Future
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
    """What a backend returns for one request, with that request's own timestamps (``time.time()``)."""

    text: str
    prompt_tokens: int
    output_tokens: int
    finish_reason: str  # "stop" (EOS or a stop string) or "length" (hit max_tokens)
    output_ids: Optional[tuple[int, ...]] = None
    extra: dict = field(default_factory=dict)
    submitted: Optional[float] = None
    """When the backend received the request."""
    first_token: Optional[float] = None
    """When its first output token was seen, where the engine reports it (None otherwise)."""
    finished: Optional[float] = None
    """When the request finished (not its batch)."""

    def __post_init__(self) -> None:
        if self.finish_reason not in ("stop", "length"):
            raise ValueError(f"finish_reason must be 'stop' or 'length', got {self.finish_reason!r}")

    def stamped(self, submitted: float, first_token: Optional[float] = None,
                finished: Optional[float] = None) -> "Completion":
        """A copy with this request's timestamps (``finished`` defaults to now)."""
        return dataclasses.replace(self, submitted=submitted, first_token=first_token,
                                   finished=time.time() if finished is None else finished)


class BackendError(RuntimeError):
    """A backend failed in a way the user must act on (server down, model missing, ...): the run ends."""


class RequestError(RuntimeError):
    """One request failed for good (a 400 from the server, every retry spent): it costs that sample only."""


@runtime_checkable
class Backend(Protocol):
    """A generation engine that serves requests one by one.

    ``submit`` hands one request to the engine and returns at once; the future
    resolves with that request's ``Completion`` the moment it finishes (its own
    ``submitted``/``first_token``/``finished`` set), or with ``RequestError``
    (that request failed) or another exception (the engine failed).  The engine
    batches whatever is in flight as it sees fit.  ``generate`` is the blocking
    convenience over ``submit`` for callers that want a whole list.
    ``fingerprint`` names everything that changes outputs (backend, weights,
    dtype, revision, device, ...): the call cache keys on it.
    """

    name: str
    model_id: str

    def submit(self, request: Request) -> "Future[Completion]": ...

    def generate(self, requests: Sequence[Request]) -> list[Completion]: ...

    @property
    def fingerprint(self) -> dict: ...

    def count_tokens(self, text: str) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True) -> str: ...

    def loglikelihood(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[float, bool]]: ...

    def close(self) -> None: ...


def gather(futures: Sequence["Future[Completion]"]) -> list[Completion]:
    """Wait for every future, in order; the first failure is raised."""
    return [f.result() for f in futures]


# --- registry of one-file backends -----------------------------------------
@dataclass(frozen=True)
class BackendSpec:
    """What a backend module declares about itself (``register_backend`` in that module)."""

    name: str
    target: str
    """"module:Class"; imported only when the backend is built."""
    options: type
    """Frozen dataclass of the backend's own model_args keys (one docstring per field)."""
    install: str
    """How to install what the backend needs (shown when an import fails)."""
    requires: tuple[str, ...] = ()
    """Top-level modules the backend imports (checked before any model is loaded)."""


_SPECS: dict[str, BackendSpec] = {}
_BUILTIN = ("hf", "vllm", "openai", "scripted")


def register_backend(name: str, target: str, options: type, install: str, requires: Sequence[str] = ()) -> None:
    """Register a backend: ``target`` is "module:Class", ``options`` its frozen options dataclass."""
    if not dataclasses.is_dataclass(options):
        raise TypeError(f"backend {name!r}: options must be a dataclass of its model_args keys")
    _SPECS[name] = BackendSpec(name, target, options, install, tuple(requires))


def _load_builtins() -> None:
    """Import the built-in backend modules (each is cheap to import: engines load lazily)."""
    for name in _BUILTIN:
        if name not in _SPECS:
            importlib.import_module(f"{__package__}.{name}")


def backend_spec(name: str) -> BackendSpec:
    _load_builtins()
    if name not in _SPECS:
        raise ValueError(f"unknown backend {name!r}; valid backends: {', '.join(backend_names())}")
    return _SPECS[name]


def backend_names() -> list[str]:
    _load_builtins()
    return sorted(_SPECS)


def backend_class(name: str) -> Callable[..., Backend]:
    """The backend class for ``name``; a clear error for unknown names and missing extras."""
    spec = backend_spec(name)
    missing = [m for m in spec.requires if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(f"backend {name!r} is not usable here: {', '.join(missing)} is not installed. "
                          f"Fix: {spec.install}")
    module_name, _, attr = spec.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(f"backend {name!r} is not usable here: {exc}. Fix: {spec.install}") from exc
    return getattr(module, attr)


def make_backend(name: str, **kwargs: Any) -> Backend:
    return backend_class(name)(**kwargs)
