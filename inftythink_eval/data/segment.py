"""Cutting a reasoning trace into spans of about ``eta`` tokens.

Owns: the two segmentation rules, token counting with any tokenizer (hub id,
local folder, or ``words``), batched counting, and fanning blocks of traces
out to several processes.

``official`` reproduces the released rule (PROTOCOL.md "Data construction"
step 2; the same rule is in ZJU-REAL/InftyThink-Plus ``cold-start/segmentation.py``),
quirks included:

1. the trace is split on ``"\\n\\n"`` and whitespace-only paragraphs are
   dropped (so three or more newlines in a row collapse to one ``"\\n\\n"``
   joiner and spans do not always join back into the trace byte for byte);
2. a paragraph whose first non-space character is not upper-case (lower-case,
   a digit, ``$``, ``\\``, any non-Latin script) is appended to the previous
   paragraph with ``"\\n\\n"``; the first paragraph is never merged;
3. tokens are counted per merged paragraph (the ``"\\n\\n"`` joiners are not
   counted) without special tokens;
4. paragraphs are added to the current span until its running sum EXCEEDS
   ``eta``; the paragraph that crossed is KEPT in that span, so spans can be
   longer than ``eta``;
5. a paragraph longer than ``eta`` that opens a span is a span on its own; one
   that arrives after other paragraphs closes their span (rule 4);
6. ``max_paragraph_tokens`` (off by default) drops traces with a paragraph of
   at least that many tokens, like InftyThink+'s ``assert length < eta + 500``.

``strict`` keeps every span at most ``eta`` tokens, counted on the span's own
text: it packs the same merged paragraphs greedily without crossing, and
splits a unit that is alone too long at blank lines, then lines, then
sentence ends, and last at token boundaries.  Its spans are slices of the
trace; everything between them is whitespace, so they join back into the
trace exactly (``Segmented.joiners``).

Does not know: sources, summaries, output files.
"""

from __future__ import annotations

import os
import re
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Iterable, Iterator, Optional, Sequence, Union

from inftythink_eval.backends._words import word_tokens
from inftythink_eval.data.sources import Drop, Trace

WORDS = "words"


@dataclass(frozen=True)
class SegmentSpec:
    """What a worker process needs to segment (picklable)."""

    segmenter: str
    eta: int
    tokenizer: str
    max_paragraph_tokens: Optional[int] = None


@dataclass(frozen=True)
class Segmented:
    """A trace and its spans (``offsets`` are char ranges of ``trace.trace``; official: None)."""

    trace: Trace
    spans: tuple[str, ...]
    span_tokens: tuple[int, ...]
    offsets: Optional[tuple[tuple[int, int], ...]] = None

    @property
    def joiners(self) -> list[str]:
        """Text between consecutive spans (strict: whitespace; official: always ``"\\n\\n"``)."""
        if self.offsets is None:
            return ["\n\n"] * (len(self.spans) - 1)
        text = self.trace.trace
        return [text[a[1]:b[0]] for a, b in zip(self.offsets, self.offsets[1:])]


# --- tokenizers -------------------------------------------------------------
class TokenCounter:
    """Counts tokens of many texts at once and finds token boundaries in one text."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        if spec == WORDS:
            self._tok = None
            return
        from transformers import AutoTokenizer

        try:
            self._tok = AutoTokenizer.from_pretrained(spec)
        except Exception as exc:  # OSError, HTTP errors, ValueError for unknown folders
            raise ValueError(f"cannot load tokenizer {spec!r}: {exc}. Pass --tokenizer with a local tokenizer "
                             "folder (e.g. the SmolLM2 folder) or a reachable hub id; 'words' counts "
                             "whitespace words") from exc

    def count(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        if self._tok is None:
            return [len(word_tokens(t)) for t in texts]
        raw = getattr(self._tok, "_tokenizer", None)  # the Rust tokenizer: skips the Python conversion layer
        if raw is not None and hasattr(raw, "encode_batch_fast"):
            return [len(e.ids) for e in raw.encode_batch_fast(list(texts), add_special_tokens=False)]
        ids = self._tok(list(texts), add_special_tokens=False, return_attention_mask=False)["input_ids"]
        return [len(x) for x in ids]

    def token_ends(self, text: str) -> list[int]:
        """Char offset where each token of ``text`` ends."""
        if self._tok is None:
            ends, pos = [], 0
            for token in word_tokens(text):
                pos += len(token)
                ends.append(pos)
            return ends
        enc = self._tok(text, add_special_tokens=False, return_offsets_mapping=True)
        return [end for _, end in enc["offset_mapping"]]


@lru_cache(maxsize=4)
def token_counter(spec: str) -> TokenCounter:
    """One counter per tokenizer spec and process."""
    return TokenCounter(spec)


# --- official ---------------------------------------------------------------
def official_paragraphs(trace: str) -> list[str]:
    """Rules 1-2: blank-line paragraphs, non-upper-case starts merged into the previous one."""
    merged: list[str] = []
    for step in (s for s in trace.split("\n\n") if s.strip()):
        if merged and not step.lstrip()[0].isupper():
            merged[-1] += "\n\n" + step
        else:
            merged.append(step)
    return merged


def official_pack(lengths: Sequence[int], eta: int) -> list[tuple[int, int]]:
    """Rules 4-5: paragraph index ranges; a span closes once its sum exceeds eta, crosser included."""
    ranges, start, total = [], 0, 0
    for end, n in enumerate(lengths, start=1):
        total += n
        if total > eta:
            ranges.append((start, end))
            start, total = end, 0
    if start < len(lengths):
        ranges.append((start, len(lengths)))
    return ranges


def _batched_counts(groups: Sequence[Sequence[str]], counter: TokenCounter) -> list[list[int]]:
    """Token counts of groups of texts, counted in one tokenizer call."""
    flat = counter.count([text for group in groups for text in group])
    out, pos = [], 0
    for group in groups:
        out.append(flat[pos:pos + len(group)])
        pos += len(group)
    return out


def _counted(traces: Sequence[Trace], units_of: Callable[[str], list], text_of: Callable[[str, object], str],
             counter: TokenCounter) -> Iterator[tuple[Trace, list, list[int]]]:
    """(trace, its units, their token counts), counting the units of all traces in one tokenizer call."""
    units = [units_of(t.trace) for t in traces]
    counts = _batched_counts([[text_of(t.trace, u) for u in us] for t, us in zip(traces, units)], counter)
    yield from zip(traces, units, counts)


def _official_batch(traces: Sequence[Trace], spec: SegmentSpec, counter: TokenCounter) -> list:
    out: list = []
    for trace, paras, lengths in _counted(traces, official_paragraphs, lambda _, p: p, counter):
        if not paras:
            out.append(Drop("empty_trace", trace.uid))
        elif spec.max_paragraph_tokens is not None and max(lengths) >= spec.max_paragraph_tokens:
            out.append(Drop("paragraph_too_long", trace.uid))
        else:
            ranges = official_pack(lengths, spec.eta)
            out.append(Segmented(trace, tuple("\n\n".join(paras[s:e]) for s, e in ranges),
                                 tuple(sum(lengths[s:e]) for s, e in ranges)))
    return out


# --- strict -----------------------------------------------------------------
_LEVELS: list[Optional[re.Pattern]] = [None, re.compile(r"\n[ \t]*\n\s*"), re.compile(r"\n\s*"),
                                       re.compile(r"(?<=[.!?;:])\s+")]
TOKEN_LEVEL = len(_LEVELS)


class UnsplittableError(ValueError):
    """A single character needs more than eta tokens."""


def _atoms(text: str, lo: int, hi: int, level: int) -> list[tuple[int, int]]:
    """Non-blank char ranges of text[lo:hi] at a split level (level 0: official merged paragraphs)."""
    pattern = _LEVELS[level] or re.compile(r"\n\n")
    atoms, start = [], lo
    for m in pattern.finditer(text, lo, hi):
        atoms.append((start, m.start()))
        start = m.end()
    atoms.append((start, hi))
    atoms = [(s, e) for s, e in atoms if text[s:e].strip()]
    if level == 0:  # merge like the official rule so strict cuts where official would when it can
        merged: list[tuple[int, int]] = []
        for s, e in atoms:
            if merged and not text[s:e].lstrip()[0].isupper():
                merged[-1] = (merged[-1][0], e)
            else:
                merged.append((s, e))
        atoms = merged
    return [_trim(text, s, e) for s, e in atoms]


def _trim(text: str, s: int, e: int) -> tuple[int, int]:
    while s < e and text[s].isspace():
        s += 1
    while e > s and text[e - 1].isspace():
        e -= 1
    return s, e


def strict_ranges(text: str, eta: int, counter: TokenCounter, lo: int = 0, hi: Optional[int] = None,
                  level: int = 0, atoms: Optional[list] = None, counts: Optional[list[int]] = None,
                  gaps: Optional[list[int]] = None, verify: bool = True) -> list[tuple[int, int, int]]:
    """(start, end, tokens) of spans of text[lo:hi], each at most eta tokens of its own text.

    Units are packed by their counts plus the counts of the text between them; with ``verify``
    each packed span is re-counted on its own text and shrunk while it exceeds eta (BPE can merge
    across a joiner).  ``verify=False`` returns the estimates (the caller re-counts in a batch).
    ``atoms``/``counts``/``gaps`` (level-0 units, their counts, joiner counts) may be passed in.
    """
    hi = len(text) if hi is None else hi
    if level == TOKEN_LEVEL:
        return _token_split(text, lo, hi, eta, counter)
    if atoms is None or counts is None:
        atoms = _atoms(text, lo, hi, level)
        counts = counter.count([text[s:e] for s, e in atoms])
    if gaps is None:
        gaps = _gap_counts(counter.count(_gap_texts(text, atoms)))
    spans: list[tuple[int, int, int]] = []
    i = 0
    while i < len(atoms):
        if counts[i] > eta:
            spans += strict_ranges(text, eta, counter, atoms[i][0], atoms[i][1], level + 1)
            i += 1
            continue
        j, estimate = i + 1, counts[i]
        while j < len(atoms) and estimate + gaps[j - 1] + counts[j] <= eta:
            estimate, j = estimate + gaps[j - 1] + counts[j], j + 1
        exact = estimate if (j == i + 1 or not verify) else counter.count([text[atoms[i][0]:atoms[j - 1][1]]])[0]
        while exact > eta:  # the estimate was low (tokens merged across a joiner): back off
            j -= 1
            exact = counts[i] if j == i + 1 else counter.count([text[atoms[i][0]:atoms[j - 1][1]]])[0]
        spans.append((atoms[i][0], atoms[j - 1][1], exact))
        i = j
    return spans


def _gap_texts(text: str, atoms: list[tuple[int, int]]) -> list[str]:
    """Each joiner with one character of context on both sides (BPE splits "\n\n" differently in context)."""
    return [text[a[1] - 1:b[0] + 1] for a, b in zip(atoms, atoms[1:])]


def _gap_counts(context_counts: list[int]) -> list[int]:
    return [max(0, n - 2) for n in context_counts]


def _token_split(text: str, lo: int, hi: int, eta: int, counter: TokenCounter) -> list[tuple[int, int, int]]:
    spans = []
    while lo < hi:
        ends = counter.token_ends(text[lo:hi])
        k = min(eta, len(ends))
        while k > 0:
            end = lo + ends[k - 1]
            n = counter.count([text[lo:end]])[0]
            if n <= eta and end > lo:
                break
            k -= 1
        if k == 0:
            raise UnsplittableError(f"a single character at offset {lo} needs more than eta={eta} tokens")
        if text[lo:end].strip():
            spans.append((lo, end, n))
        lo = end
    return spans


def _strict_batch(traces: Sequence[Trace], spec: SegmentSpec, counter: TokenCounter) -> list:
    """Pack all traces on estimates, re-count every span in one batch, redo (verified) the rare misfits."""
    level0 = lambda text: _atoms(text, 0, len(text), 0)  # noqa: E731
    counted = list(_counted(traces, level0, lambda text, a: text[a[0]:a[1]], counter))
    all_gaps = [_gap_counts(g) for g in _batched_counts([_gap_texts(t.trace, atoms) for t, atoms, _ in counted],
                                                        counter)]
    plans: list = []
    for (trace, atoms, counts), gaps in zip(counted, all_gaps):
        try:
            plans.append((trace, strict_ranges(trace.trace, spec.eta, counter, atoms=atoms, counts=counts,
                                               gaps=gaps, verify=False)) if atoms else Drop("empty_trace", trace.uid))
        except UnsplittableError:
            plans.append(Drop("strict_unsplittable", trace.uid))
    live = [p for p in plans if not isinstance(p, Drop)]
    exact = iter(_batched_counts([[t.trace[s:e] for s, e, _ in ranges] for t, ranges in live], counter))
    out: list = []
    for plan in plans:
        if isinstance(plan, Drop):
            out.append(plan)
            continue
        trace, ranges = plan
        counts = next(exact)
        if max(counts) > spec.eta:
            ranges = strict_ranges(trace.trace, spec.eta, counter)
            counts = [n for _, _, n in ranges]
        out.append(Segmented(trace, tuple(trace.trace[s:e] for s, e, _ in ranges), tuple(counts),
                             tuple((s, e) for s, e, _ in ranges)))
    return out


# --- batches and processes --------------------------------------------------
def segment_batch(traces: Sequence[Trace], spec: SegmentSpec) -> list[Union[Segmented, Drop]]:
    """Segment a batch (one tokenizer call for all its paragraphs); empty traces become drops."""
    counter = token_counter(spec.tokenizer)
    batch = _official_batch if spec.segmenter == "official" else _strict_batch
    return batch(traces, spec, counter)


def _worker_init() -> None:
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:  # Linux: die with the parent, so a killed build leaves no orphan workers behind
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def segment_blocks(blocks: Iterable[list[Trace]], spec: SegmentSpec,
                   workers: int = 1) -> Iterator[tuple[list, list]]:
    """Yield (block, segmented traces of the block) in order, using ``workers`` processes.

    At most ``2 * workers`` blocks are in flight, so a streamed source is never read ahead
    further than that.
    """
    if workers <= 1:
        for block in blocks:
            yield block, segment_batch(block, spec)
        return
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(workers, initializer=_worker_init) as pool:
        pending: deque = deque()
        for block in blocks:
            pending.append((block, pool.apply_async(segment_batch, (block, spec))))
            if len(pending) >= 2 * workers:
                done, result = pending.popleft()
                yield done, result.get()
        while pending:
            done, result = pending.popleft()
            yield done, result.get()
