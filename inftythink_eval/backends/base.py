"""The one small protocol every generation backend implements, and the backend registry.

Owns: the request/response value types (``SamplingParams``, ``Request``,
``Completion``), the errors (``RequestError`` costs one request,
``BackendError`` ends the run), the request-level ``Backend`` protocol
(``submit`` one request, get a future that resolves when *that* request
finishes, with its own timestamps) and the registry of one-file backends:
every module of this package whose name does not start with ``_`` is
discovered (``discover``, pkgutil, no hand list) and registers itself with
its class, its options dataclass, its install hint and what the rest needs
to know (``BackendSpec``: needs a model? a URL? a run seed? pass-through
engine arguments? the default?).

Does not know: rounds, modes, templates, lm-eval.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import pkgutil
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Optional, Protocol, Sequence, runtime_checkable


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
    think_budget: Optional[int] = None
    """Generated tokens allowed inside thinking before the backend itself writes ``think_marks[1]`` and lets the
    model go on (one call; only backends that declare ``thinking_budget`` take it)."""
    think_marks: tuple[str, ...] = ()
    """With ``think_budget``: the text that opens thinking and the text forced to end it."""

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
        object.__setattr__(self, "think_marks", tuple(self.think_marks))
        if self.think_budget is not None:
            if not isinstance(self.think_budget, int) or self.think_budget < 0:
                raise ValueError(f"think_budget must be an integer >= 0, got {self.think_budget!r}")
            if len(self.think_marks) != 2 or not all(m.strip() for m in self.think_marks):
                raise ValueError(f"think_budget needs think_marks=(opening text, forced end text), both non-blank; "
                                 f"got {self.think_marks!r}")

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
    started: Optional[float] = None
    """When the engine gave it a slot (its prefill began), where the engine reports it (None otherwise)."""
    first_token: Optional[float] = None
    """When its first output token was seen, where the engine reports it (None otherwise)."""
    finished: Optional[float] = None
    """When the request finished (not its batch)."""
    token_times: Optional[tuple[float, ...]] = None
    """When each output token was produced (``time.time()``), from the engine's own step or token stamps, where
    it reports them (None otherwise): the LAT of a shorter budget derived from this call (``run.budgets``)."""

    def __post_init__(self) -> None:
        if self.finish_reason not in ("stop", "length"):
            raise ValueError(f"finish_reason must be 'stop' or 'length', got {self.finish_reason!r}")

    def stamped(self, submitted: float, first_token: Optional[float] = None, finished: Optional[float] = None,
                token_times: Optional[Sequence[float]] = None, started: Optional[float] = None) -> "Completion":
        """A copy with this request's timestamps (``finished`` defaults to now; ``token_times`` are kept only
        when there is one per output token)."""
        times = tuple(token_times[:self.output_tokens]) if token_times else None
        return dataclasses.replace(self, submitted=submitted, first_token=first_token, started=started,
                                   finished=time.time() if finished is None else finished,
                                   token_times=times if times and len(times) == self.output_tokens else None)


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
    # optional: ``kv_bytes_per_token`` (int or None), bytes of KV cache per token of context (``backends._kv``)

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
    """What a backend module declares about itself (``register_backend`` at its top level).

    Everything the rest of the package needs to know about a backend is here, so that nothing outside
    ``backends/`` branches on a backend's name and a new backend is one new module.
    """

    name: str
    target: str
    """"module:Class"; imported only when the backend is built."""
    options: type
    """Frozen dataclass of the backend's own model_args keys (one docstring per field)."""
    install: str
    """How to install what the backend needs (shown when an import fails)."""
    requires: tuple[str, ...] = ()
    """Top-level modules the backend imports (checked before any model is loaded)."""
    summary: str = ""
    """One line: what the engine is (``--help-backend`` and the README's table show it)."""
    needs_pretrained: bool = True
    """model_args must name a model (``pretrained=``); a backend that replays given outputs does not."""
    url_key: Optional[str] = None
    """The options key that holds the server URL; when set it is required (``summarizer_base_url`` goes there
    for a summariser on this backend)."""
    takes_seed: bool = False
    """The constructor takes the run's ``seed=`` (an engine-level seed beside the per-request ones)."""
    extra_keys: Optional[Callable[[], Collection[str]]] = None
    """Pass-through keys beyond ``options``: a function listing every other name the engine accepts (called
    only when a key is not declared, so it may import the engine)."""
    extra_doc: str = ""
    """How help and docs describe the pass-through keys."""
    default: bool = False
    """The backend used when model_args names none (exactly one backend declares it)."""
    rank: int = 100
    """Place in listings (help, README), lowest first."""
    thinking_budget: bool = False
    """The engine enforces a thinking budget itself (``SamplingParams.think_budget``): the constructor takes
    ``think_marks=(opening, forced end)`` when a mode asks for it (mode budget, ``engine_budget=true``)."""

    def missing(self) -> list[str]:
        """The required modules that are not installed here."""
        return [m for m in self.requires if importlib.util.find_spec(m) is None]

    def keys(self) -> dict[str, dataclasses.Field]:
        """The model_args keys the options dataclass declares."""
        return {f.name: f for f in dataclasses.fields(self.options)}

    def accepts_extra(self, key: str) -> bool:
        """Whether ``key`` is one of the engine's own pass-through arguments (False when the engine is missing)."""
        return self.extra_keys is not None and not self.missing() and key in self.extra_keys()


_SPECS: dict[str, BackendSpec] = {}
_DISCOVERED: list[bool] = []


def register_backend(name: str, target: str, options: type, install: str, requires: Sequence[str] = (),
                     **declared: Any) -> None:
    """Register a backend: ``target`` is "module:Class", ``options`` its frozen options dataclass; ``declared``
    sets the other ``BackendSpec`` fields (summary, needs_pretrained, url_key, takes_seed, extra_keys, ...)."""
    if not dataclasses.is_dataclass(options):
        raise TypeError(f"backend {name!r}: options must be a dataclass of its model_args keys")
    fields = {f.name for f in dataclasses.fields(BackendSpec)} - {"name", "target", "options", "install", "requires"}
    unknown = sorted(set(declared) - fields)
    if unknown:
        raise TypeError(f"backend {name!r}: unknown declaration(s) {', '.join(unknown)}; "
                        f"expected some of {', '.join(sorted(fields))}")
    spec = BackendSpec(name, target, options, install, tuple(requires), **declared)
    if spec.url_key is not None and spec.url_key not in spec.keys():
        raise TypeError(f"backend {name!r}: url_key={spec.url_key!r} must be a field of {options.__name__}")
    _SPECS[name] = spec


def discover() -> list[str]:
    """Import every module of this package whose name does not start with ``_`` (pkgutil over the package's
    ``__path__``): each registers itself.  Importing one is cheap: engines (torch, vLLM, httpx) load only when
    a backend is built.  Returns the registered names."""
    for info in pkgutil.iter_modules(importlib.import_module(__package__).__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__package__}.{info.name}")
    _DISCOVERED[:] = [True]
    return sorted(_SPECS)


def _specs() -> dict[str, BackendSpec]:
    if not _DISCOVERED:
        discover()
    return _SPECS


def backend_spec(name: str) -> BackendSpec:
    specs = _specs()
    if name not in specs:
        raise ValueError(f"unknown backend {name!r}; valid backends: {', '.join(backend_names())}")
    return specs[name]


def backend_names(ranked: bool = False) -> list[str]:
    """The registered backends, by name (or in their declared ``rank`` order)."""
    specs = _specs()
    return sorted(specs, key=(lambda n: (specs[n].rank, n)) if ranked else None)


def default_backend() -> str:
    """The backend that declares ``default=True`` (used when model_args names none)."""
    defaults = [name for name, spec in sorted(_specs().items()) if spec.default]
    if len(defaults) != 1:
        raise RuntimeError(f"exactly one backend must declare default=True; found {defaults or 'none'}")
    return defaults[0]


def backend_class(name: str) -> Callable[..., Backend]:
    """The backend class for ``name``; a clear error for unknown names and missing extras."""
    spec = backend_spec(name)
    missing = spec.missing()
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
