"""The SFT recipe's configuration: one frozen dataclass, loaded from YAML plus ``key=value`` overrides.

Owns: every knob of the recipe (``training.sft``), its defaults (the protocol's
where one exists: max length 16384, global batch 32, warmup ratio 0.03,
cosine decay to 0), and validation with errors that name the wrong key or
value and say what was expected.  ``key=value`` overrides are split by
``keyvalue.parse_pairs`` (the one parser); their values are read as YAML here.

Does not know: torch, TRL, data files' contents; the recipe does.  Format names
come from ``formats`` (``inftythink``, ``inftythink_plus``).
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from inftythink_eval.formats import inftythink, plus
from inftythink_eval.keyvalue import parse_pairs

FORMATS = ("vanilla", inftythink.NAME, plus.NAME)
TEMPLATES = ("native", "chat")
REPORTERS = ("none", "tensorboard", "wandb")
PRECISIONS = ("auto", "bf16", "fp32")
PACKED_LAYOUTS = ("auto", "flat", "rows")
SCRATCH_TEMPLATES = ("native", plus.NAME)  # scratch.chat_template; "plus" (before issue 20) is read as plus.NAME


class ConfigError(ValueError):
    """A training config that cannot run; the message says what to change."""


@dataclass(frozen=True)
class TrainConfig:
    """One SFT run.  Learning rate and epochs are our choice (the paper does not state them)."""

    model: str
    """Hub id or local folder of the base model, or ``scratch`` to build a new model from ``scratch``."""
    data: tuple[str, ...]
    """Builder output files (.jsonl or .parquet): released-schema rows (question, history,
    reasoning_process, summary, conclusion) or ``prompt``/``completion`` rows."""
    output_dir: str
    """Checkpoints, the final model and logs go here (resumable)."""
    format: str = "inftythink"
    """``vanilla``, ``inftythink`` or ``inftythink_plus``: which zoo eval mode the trained model gets."""
    template: Optional[str] = None
    """How rows become training text.  ``native``: the v1 strings ``User:{q}Assistant:`` (released-schema
    or prompt/completion rows, ``inftythink_eval.formats.inftythink``).  ``chat``: the rows' ``messages`` rendered
    by the base model's chat template (InftyThink+ cold-start rows, ``inftythink_eval.formats.plus``):
    loss on the last assistant turn only, and none on its ``<history>...</history>`` span.  Unset:
    ``chat`` for ``inftythink_plus``, ``native`` otherwise."""
    scratch: dict = field(default_factory=dict)
    """For ``model: scratch``: LlamaConfig fields (hidden_size, num_hidden_layers, ...) and ``chars``
    (the character vocabulary of a char-level tokenizer), optionally ``chat_template``: ``native``
    (default: renders ``User:{q}Assistant:``) or ``inftythink_plus`` (alias ``plus``: a compact chat
    template for InftyThink+ rows)."""
    max_length: int = 16384
    """Packed sequence length in tokens (protocol: 16384); longer samples are truncated."""
    global_batch_size: int = 32
    """Packed sequences per optimizer step across all processes (protocol: 32), reached by gradient accumulation."""
    per_device_batch_size: int = 1
    """Packed sequences per device per forward pass; must divide global_batch_size / world size."""
    learning_rate: float = 1e-5
    num_epochs: float = 3.0
    max_steps: int = -1
    """Stop after this many optimizer steps (-1: run num_epochs)."""
    warmup_ratio: float = 0.03
    lr_scheduler: str = "cosine"
    """Cosine decays to 0 at the last step (protocol)."""
    weight_decay: float = 0.0
    precision: str = "auto"
    """``auto`` (bf16 where the device supports it, else fp32), ``bf16`` or ``fp32``."""
    gradient_checkpointing: bool = True
    packing: bool = True
    """Best-fit packing, padding-free, position ids reset per sample (no attention across samples)."""
    packed_layout: str = "auto"
    """How packed rows reach the model: ``flat`` (every row of the batch in one sequence: right for
    varlen kernels such as flash attention), ``rows`` (each packed row stays a batch row with
    reset position ids: right for sdpa/eager, whose cost is quadratic in the sequence, e.g. on
    CPU), or ``auto`` (flat for flash attention, else rows)."""
    attn_implementation: Optional[str] = None
    """None: the model's default (sdpa); ``flash_attention_2`` on GPUs that have it."""
    seed: int = 42
    logging_steps: int = 10
    save_steps: int = 500
    save_total_limit: int = 2
    report_to: str = "none"
    """``none``, ``tensorboard`` or ``wandb``."""
    resume: str = "auto"
    """``auto`` (latest checkpoint in output_dir, if any), ``never``, or a checkpoint folder."""
    dataloader_workers: int = 0

    def __post_init__(self) -> None:
        _check(self.format in FORMATS, "format", self.format, f"one of {FORMATS}")
        if self.template is None:
            object.__setattr__(self, "template", "chat" if self.format == plus.NAME else "native")
        _check(self.template in TEMPLATES, "template", self.template, f"one of {TEMPLATES}")
        _check(self.format != plus.NAME or self.template == "chat", "template", self.template,
               f"chat for format {plus.NAME} (its rows are chats; the native v1 strings cannot express them)")
        _check(self.report_to in REPORTERS, "report_to", self.report_to, f"one of {REPORTERS}")
        _check(self.precision in PRECISIONS, "precision", self.precision, f"one of {PRECISIONS}")
        _check(self.packed_layout in PACKED_LAYOUTS, "packed_layout", self.packed_layout, f"one of {PACKED_LAYOUTS}")
        _check(self.lr_scheduler in ("cosine", "linear", "constant_with_warmup"), "lr_scheduler",
               self.lr_scheduler, "cosine (protocol), linear or constant_with_warmup")
        for name in ("max_length", "global_batch_size", "per_device_batch_size", "logging_steps", "save_steps"):
            _check(getattr(self, name) >= 1, name, getattr(self, name), "an integer >= 1")
        _check(self.global_batch_size % self.per_device_batch_size == 0, "global_batch_size",
               self.global_batch_size, f"a multiple of per_device_batch_size={self.per_device_batch_size}")
        _check(0 <= self.warmup_ratio < 1, "warmup_ratio", self.warmup_ratio, "a fraction in [0, 1)")
        _check(self.learning_rate > 0, "learning_rate", self.learning_rate, "a positive float")
        _check(bool(self.data), "data", self.data, "at least one .jsonl or .parquet file")
        if isinstance(self.scratch.get("chat_template"), str):
            object.__setattr__(self, "scratch", {**self.scratch,
                                                 "chat_template": plus.format_name(self.scratch["chat_template"])})
        if self.model == "scratch":
            _check(bool(self.scratch.get("chars")), "scratch.chars", self.scratch.get("chars"),
                   "the characters of the tokenizer's vocabulary (model: scratch builds a char-level tokenizer)")
            _check(self.scratch.get("chat_template", "native") in SCRATCH_TEMPLATES, "scratch.chat_template",
                   self.scratch.get("chat_template"), f"one of {SCRATCH_TEMPLATES}")

    def grad_accumulation(self, world_size: int) -> int:
        """Accumulation steps so that per_device x world x accumulation == global_batch_size."""
        per_step = self.per_device_batch_size * world_size
        if self.global_batch_size % per_step:
            raise ConfigError(f"global_batch_size={self.global_batch_size} is not divisible by per_device_batch_size "
                              f"x processes = {per_step}; change per_device_batch_size or the process count")
        return self.global_batch_size // per_step


def _check(ok: bool, key: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"training config: {key}={value!r} is invalid; expected {expected}")


def _coerce(name: str, raw: Any) -> Any:
    """A value (from YAML or a ``key=value`` string) in its field's type; a clear error if it cannot be."""
    kind = {f.name: f.type for f in dataclasses.fields(TrainConfig)}[name]
    try:
        if kind == "float" and not isinstance(raw, bool):
            return float(raw)
        if kind == "int" and not isinstance(raw, bool):
            if isinstance(raw, float) and not raw.is_integer():
                raise ValueError(raw)
            return int(raw)
        if kind == "bool":
            value = yaml.safe_load(raw) if isinstance(raw, str) else raw
            if not isinstance(value, bool):
                raise ValueError(raw)
            return value
    except (TypeError, ValueError):
        raise ConfigError(f"training config: {name}={raw!r} is not a valid {kind}") from None
    if kind in ("str", "Optional[str]"):
        return None if raw is None or raw == "null" else str(raw)
    return yaml.safe_load(raw) if isinstance(raw, str) and kind not in ("str",) else raw


def from_dict(data: dict, source: str = "<dict>") -> TrainConfig:
    """Build and validate; an unknown key is an error that suggests the closest known one."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    for key in data:
        if key not in known:
            near = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise ConfigError(f"{source}: unknown key {key!r}{hint} Known keys: {', '.join(sorted(known))}")
    missing = [k for k in ("model", "data", "output_dir") if k not in data]
    if missing:
        raise ConfigError(f"{source}: missing required key(s) {', '.join(missing)}")
    data = {k: (v if k in ("data", "scratch") else _coerce(k, v)) for k, v in data.items()}
    data["data"] = tuple([data["data"]] if isinstance(data["data"], str) else data["data"])
    try:
        return TrainConfig(**data)
    except TypeError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def load(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Load a YAML config, apply ``key=value`` overrides (``scratch.hidden_size=64`` reaches into dicts)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no training config at {path}; pick one of training/configs/*.yaml")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values, got {type(data).__name__}")
    try:
        pairs = parse_pairs(overrides, "override", "key=value, e.g. learning_rate=2e-5 or scratch.hidden_size=64")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    for key, raw in pairs.items():
        item = f"{key}={raw}"
        head, _, sub = key.partition(".")
        if head not in {f.name for f in dataclasses.fields(TrainConfig)}:
            from_dict({head: None}, f"override {item!r}")  # raises with the suggestion
        if sub:
            data[head] = {**(data.get(head) or {}), sub: yaml.safe_load(raw)}
        else:
            data[head] = yaml.safe_load(raw) if head == "data" else raw
    return from_dict(data, str(path))


def to_dict(cfg: TrainConfig) -> dict:
    out = dataclasses.asdict(cfg)
    out["data"] = list(cfg.data)
    return out
