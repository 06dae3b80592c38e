"""Frozen, validated configuration of one dataset build.

Owns: every knob of ``inftythink data build`` and ``build(...)`` with its
default and docstring, validated once here (the edge); nothing downstream
re-checks user input.  Two output formats: ``inftythink`` (v1) and
``inftythink_plus`` (InftyThink+ cold-start rows; ``plus``, its name before
issue 20, is read as ``inftythink_plus`` here, so old commands keep working);
each brings its own defaults (eta, summary sampling, tries), filled in here
when the caller leaves them unset.

Does not know: how sources are read, how spans are cut, how summaries are
generated.  Defaults come from ../shared/PROTOCOL.md ("Data construction")
and ../shared/PROTOCOL_PLUS.md ("Data") through the format modules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

from inftythink_eval.formats import inftythink, plus
from inftythink_eval.formats.inftythink import DEFAULT_ETA, SUMMARY_INSTRUCTION
from inftythink_eval.formats.plus import (DEFAULT_PLUS_ETA, SUMMARY_MAX_RETRIES, SUMMARY_MAX_TOKENS,
                                          SUMMARY_TEMPERATURE, SUMMARY_TOP_P, format_name)

DEFAULT_TOKENIZER = "Qwen/Qwen2.5-Math-7B"  # the paper's segmentation tokenizer (hub id)
SEGMENTERS = ("official", "strict")
FORMATS = (inftythink.NAME, plus.NAME)
FORMAT_ALIASES = {plus.OLD_NAME: plus.NAME}  # the documented alias, read by ``format_name`` (--format plus)
DEFAULT_ETAS = {inftythink.NAME: DEFAULT_ETA, plus.NAME: DEFAULT_PLUS_ETA}
# InftyThink+ summaries (inftythink_runner.py): T=0.5, top_p 0.95, at most 1024 tokens, one try plus up to
# 64 regenerations of a summary that did not finish, no summary of the final span.
PLUS_SUMMARY_DEFAULTS = {"temperature": SUMMARY_TEMPERATURE, "top_p": SUMMARY_TOP_P, "max_tokens": SUMMARY_MAX_TOKENS,
                         "n": 1 + SUMMARY_MAX_RETRIES, "summarize_last": False}


@dataclass(frozen=True)
class Columns:
    """Which source columns hold what.  Either ``solution`` (a ``<think>`` solution)
    or ``trace`` (+ optional ``conclusion``) must be set."""

    question: str = "problem"
    """Column with the question text."""
    solution: Optional[str] = "solution"
    """Column with an OpenR1-style ``<think>\\n...\\n</think>conclusion`` solution.  It may hold a
    string, a list of strings (e.g. OpenR1's ``generations``: one trace each) or a chat
    (list of {role, content}: the last assistant turn is used, e.g. OpenR1's ``messages``)."""
    trace: Optional[str] = None
    """Column with a bare reasoning trace (no ``<think>`` tags), used instead of ``solution``."""
    conclusion: Optional[str] = None
    """With ``trace``: the column with the conclusion (final answer text); empty when unset."""
    uid: Optional[str] = None
    """Column with a row id; unset: a hash of question and solution."""
    correct: Optional[str] = None
    """Optional list-of-bool column (e.g. OpenR1's ``correctness_math_verify``): with a list-valued
    ``solution`` column, only generations marked True are kept."""

    def __post_init__(self) -> None:
        if not self.question:
            raise ValueError("columns: question must name the column holding the question")
        if bool(self.solution) == bool(self.trace):
            raise ValueError("columns: set exactly one of solution= (a <think> solution column) "
                             "or trace= (a bare trace column, with conclusion= for the answer)")
        if self.conclusion and not self.trace:
            raise ValueError("columns: conclusion= only goes with trace=; a solution column carries its own conclusion")


PRESETS = {
    # open-r1/OpenR1-Math-220k: the assistant turn of `messages` is `<think>\n...\n</think>answer`.
    "openr1": Columns(question="problem", solution="messages", uid="uuid"),
    # every verified generation of OpenR1-Math as its own trace.
    "openr1-generations": Columns(question="problem", solution="generations", uid="uuid",
                                  correct="correctness_math_verify"),
    # s1K-style rows: bare Gemini traces plus the attempt as conclusion.
    "s1k": Columns(question="question", solution=None, trace="gemini_thinking_trajectory",
                   conclusion="gemini_attempt"),
}


@dataclass(frozen=True)
class SummaryConfig:
    """How summaries are asked for (PROTOCOL.md step 3 defaults; ``for_format("inftythink_plus")``:
    PROTOCOL_PLUS.md's)."""

    format: str = "inftythink"
    """``inftythink``: one chat per span over spans 0..i then ``instruction`` (``formats.inftythink.summary_chat``:
    cumulative, all spans of a trace asked at once).  ``inftythink_plus`` (alias ``plus``): the InftyThink+
    chain (``formats.plus.summary_chat_plus``): the first span with the first-span prompt, each later span
    after the previous summary with the later-span prompt, so span i is asked once span i-1's summary
    exists; ``instruction`` is not used."""
    instruction: str = SUMMARY_INSTRUCTION
    """inftythink: the user turn appended after the spans."""
    temperature: float = 0.5
    top_p: float = 1.0
    max_tokens: int = 2048
    n: int = 4
    """Tries per summary; the first one that finished by stopping is kept (asked lazily, one
    try at a time, so a summary that finishes at try 1 costs one generation); when none finishes,
    the trace is dropped and counted (``summary_unfinished``).  inftythink_plus: 65 (one try and up to 64
    regenerations, as the cold-start runner)."""
    seed: int = 0
    """Choice k is sampled with seed ``seed + k``."""
    summarize_last: bool = True
    """Also summarise the last span (the protocol summarises every span; the last summary is stored
    in the ``summary`` column of the final instance but not used in its target)."""
    chat_template: bool = True
    """Render the summary chat with the backend's chat template (False: plain ``role: content`` lines)."""

    @classmethod
    def for_format(cls, fmt: str = "inftythink", **overrides) -> "SummaryConfig":
        """The defaults of ``fmt`` with ``overrides`` on top (a None override keeps the default)."""
        fmt = format_name(fmt)
        base = PLUS_SUMMARY_DEFAULTS if fmt == plus.NAME else {}
        return cls(format=fmt, **{**base, **{k: v for k, v in overrides.items() if v is not None}})

    def __post_init__(self) -> None:
        object.__setattr__(self, "format", format_name(self.format))
        if self.format not in FORMATS:
            raise ValueError(f"summary format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if not self.instruction.strip():
            raise ValueError("summary instruction must not be empty")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError(f"summary sampling: temperature >= 0 and top_p in (0, 1] expected, "
                             f"got temperature={self.temperature}, top_p={self.top_p}")
        if self.max_tokens < 1 or self.n < 1:
            raise ValueError(f"summary max_tokens and n must be >= 1, got {self.max_tokens} and {self.n}")


@dataclass(frozen=True)
class BuildConfig:
    """One build: source -> segments -> summaries -> instance shards in ``out``."""

    source: str
    """Local .jsonl/.json/.parquet file, a folder of them, or a hub dataset id."""
    out: str
    """Output folder (created): ``instances/``, ``vanilla/``, ``stats*.json``, ``cache/``."""
    format: str = "inftythink"
    """``inftythink``: v1 instances (native ``User:…Assistant:`` strings in ``messages``).
    ``inftythink_plus`` (alias ``plus``, read as ``inftythink_plus``): InftyThink+ cold-start rows:
    ``messages`` = [user question, assistant ``<history>…</history><think>…</think>`` + summary or
    conclusion] (``formats.plus``), the history span masked by the SFT recipe (``template: chat``);
    same columns; ``vanilla/`` rows are chats too."""
    summarizer: str = "none"
    """``hf:pretrained=DIR,batch_size=8`` / ``vllm:...`` / ``openai:...`` / ``scripted:script=F`` (a backend
    spec: name then comma-separated key=value), ``python:module:function``, or ``none`` (segment only)."""
    eta: Optional[int] = None
    """Segment budget in tokens; unset: the format's default (inftythink 4096, inftythink_plus 6000)."""
    segmenter: str = "official"
    tokenizer: str = DEFAULT_TOKENIZER
    """Hub id or local folder of a transformers tokenizer, or ``words`` (whitespace words: tests, synthetic tasks)."""
    columns: Columns = field(default_factory=Columns)
    summary: Optional[SummaryConfig] = None
    """Unset: ``SummaryConfig.for_format(format)``; when given, its ``format`` must match."""
    hub_config: Optional[str] = None
    """Dataset config name for hub sources."""
    split: str = "train"
    shard: tuple[int, int] = (0, 1)
    """(i, N): this process handles rows with index % N == i."""
    limit: Optional[int] = None
    """Stop after this many source rows (before sharding)."""
    workers: int = 1
    """Segmentation processes."""
    block_rows: int = 256
    """Rows segmented and summarised together (a unit of batching, not of output)."""
    rows_per_file: int = 50_000
    """Instances per output Parquet file."""
    max_paragraph_tokens: Optional[int] = None
    """official only: drop a trace with a paragraph of at least this many tokens (InftyThink+'s
    script asserts paragraphs < eta + 500); unset: keep every trace."""
    vanilla: bool = True
    """Also write the unsegmented SFT set (``vanilla/``)."""
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "format", format_name(self.format))
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)} (or the alias plus), got {self.format!r}")
        if self.eta is None:
            object.__setattr__(self, "eta", DEFAULT_ETAS[self.format])
        if self.summary is None:
            object.__setattr__(self, "summary", SummaryConfig.for_format(self.format))
        if self.summary.format != self.format:
            raise ValueError(f"summary format {self.summary.format!r} does not match the build format "
                             f"{self.format!r}; build it with SummaryConfig.for_format({self.format!r}, ...)")
        if self.eta < 1:
            raise ValueError(f"eta must be a positive token count, got {self.eta}")
        if self.segmenter not in SEGMENTERS:
            raise ValueError(f"segmenter must be one of {', '.join(SEGMENTERS)}, got {self.segmenter!r}")
        i, n = self.shard
        if not (n >= 1 and 0 <= i < n):
            raise ValueError(f"shard must be i/N with 0 <= i < N, got {i}/{n}")
        for name in ("workers", "block_rows", "rows_per_file"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.limit is not None and self.limit < 0:
            raise ValueError(f"limit must be >= 0, got {self.limit}")
        if not self.summarizer:
            raise ValueError("summarizer must be a backend spec, python:module:function or none")


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/N"`` -> (i, N), with a clear error."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match:
        raise ValueError(f"--shard expects i/N (e.g. 0/4), got {text!r}")
    return int(match.group(1)), int(match.group(2))
