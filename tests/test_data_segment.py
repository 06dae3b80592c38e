"""Segmenters: golden cases for each rule of ``official``, a property test for ``strict``, real traces."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from inftythink_eval.data.segment import (SegmentSpec, Segmented, official_pack, official_paragraphs,
                                          segment_batch, strict_ranges, token_counter)
from inftythink_eval.data.sources import Drop, Trace
from inftythink_eval.checkpoints.fetch import smollm2_folder

DATA = Path(os.environ.get("INFTYTHINK_DATA_DIR", "/work/shared/data"))
S1K = DATA / "reasoning_traces" / "s1k_head5.parquet"


def official(text: str, eta: int, **kw) -> Segmented:
    (result,) = segment_batch([Trace("u", "Q", text, "C")], SegmentSpec("official", eta, "words", **kw))
    return result


# --- official: one golden case per rule ----------------------------------------
def test_official_splits_on_blank_lines_and_drops_blank_paragraphs():
    assert official_paragraphs("A one.\n\nB two.\n\n\n\nC three.\n\n  \n\nD four.") == [
        "A one.", "B two.", "C three.", "D four."]
    # three newlines: the split leaves a "\n" at the start of the next paragraph (kept verbatim)
    assert official_paragraphs("A one.\n\n\nB two.") == ["A one.", "\nB two."]


def test_official_merges_paragraphs_that_do_not_start_upper_case():
    text = "Alpha here.\n\nbeta lower.\n\n$x=1$ math.\n\n2 digits.\n\n  Gamma indented.\n\n\\frac stays."
    assert official_paragraphs(text) == [
        "Alpha here.\n\nbeta lower.\n\n$x=1$ math.\n\n2 digits.", "  Gamma indented.\n\n\\frac stays."]


def test_official_never_merges_the_first_paragraph_and_non_latin_merges_everything():
    assert official_paragraphs("lower first.\n\nUpper second.") == ["lower first.", "Upper second."]
    assert official_paragraphs("Start.\n\n这是中文。\n\n更多。") == ["Start.\n\n这是中文。\n\n更多。"]


def test_official_keeps_the_paragraph_that_crosses_eta():
    # lengths in words: 3, 3, 3 with eta 5: 3+3 = 6 > 5 closes the span WITH the crossing paragraph
    assert token_counter("words").count(["A b c.", "D e f.", "G h i."]) == [3, 3, 3]
    result = official("A b c.\n\nD e f.\n\nG h i.", eta=5)
    assert result.spans == ("A b c.\n\nD e f.", "G h i.")
    assert result.span_tokens == (6, 3)
    assert max(result.span_tokens) > 5  # official spans can exceed eta


def test_official_closes_only_when_the_sum_exceeds_eta_not_when_it_equals_it():
    assert official_pack([2, 3, 1], eta=5) == [(0, 3)]  # 2+3 = 5 is not > 5, 6 is
    assert official_pack([5, 1], eta=5) == [(0, 2)]
    assert official_pack([6, 1], eta=5) == [(0, 1), (1, 2)]


def test_official_oversized_paragraph_alone_when_it_opens_a_span_else_it_closes_the_span():
    assert official_pack([9, 1, 1], eta=4) == [(0, 1), (1, 3)]      # opens a span: alone
    assert official_pack([1, 9, 1], eta=4) == [(0, 2), (2, 3)]      # arrives later: closes with it
    result = official("A.\n\nB " + "w " * 20 + "end.\n\nC.", eta=4)
    assert len(result.spans) == 2 and result.spans[0].startswith("A.\n\nB w")


def test_official_counts_paragraphs_without_the_joiners_between_them():
    """A span's count is the sum of its paragraphs' counts: the "\\n\\n" joining them is not counted.  The
    SmolLM2 tokenizer gives the joiner tokens of its own; the words tokenizer folds it into the next word, so
    it could not tell."""
    folder = str(smollm2_folder())
    counter = token_counter(folder)
    (result,) = segment_batch([Trace("u", "Q", "A b c.\n\nD e f.", "C")], SegmentSpec("official", 100, folder))
    paragraphs = counter.count(["A b c.", "D e f."])
    assert result.spans == ("A b c.\n\nD e f.",) and result.span_tokens == (sum(paragraphs),)
    assert counter.count(list(result.spans))[0] > sum(paragraphs), "the joiner has tokens of its own"
    # a lower-case paragraph merges into the previous one: one paragraph, counted as a whole (4 words)
    result = official("A b.\n\nc d.", eta=100)
    assert result.spans == ("A b.\n\nc d.",) and result.span_tokens == (4,)
    assert token_counter("words").count(list(result.spans)) == [4]


def test_official_optional_paragraph_limit_drops_and_empty_trace_drops():
    assert official("A " + "w " * 30, eta=10, max_paragraph_tokens=30) == Drop("paragraph_too_long", "u")
    assert official("A " + "w " * 30, eta=10).spans  # off by default: kept
    assert official("\n\n  \n\n", eta=10) == Drop("empty_trace", "u")


# --- strict ----------------------------------------------------------------------
def _check_strict(text: str, eta: int, tokenizer: str) -> list[tuple[int, int, int]]:
    counter = token_counter(tokenizer)
    ranges = strict_ranges(text, eta, counter)
    pos = 0
    for start, end, n in ranges:
        assert start >= pos and text[pos:start].strip() == ""      # only whitespace between spans
        assert text[start:end].strip()
        assert n == counter.count([text[start:end]])[0] <= eta     # every span at most eta tokens
        pos = end
    assert text[pos:].strip() == ""
    return ranges


paragraph = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF, blacklist_categories=("Cs",)),
                    min_size=0, max_size=60)
texts = st.lists(st.tuples(paragraph, st.sampled_from(["\n\n", "\n", ". ", " ", "\n\n\n", "! "])),
                 min_size=1, max_size=12).map(lambda parts: "".join(p + j for p, j in parts))


@settings(max_examples=150, deadline=None)
@given(text=texts, eta=st.integers(min_value=1, max_value=12))
def test_strict_spans_fit_eta_and_join_back_words(text, eta):
    ranges = _check_strict(text, eta, "words")
    seg = segment_batch([Trace("u", "Q", text, "")], SegmentSpec("strict", eta, "words"))[0]
    if isinstance(seg, Segmented):
        rebuilt = text[:seg.offsets[0][0]] + "".join(s + j for s, j in zip(seg.spans, seg.joiners + [""]))
        assert rebuilt + text[seg.offsets[-1][1]:] == text
        assert [(s, e) for s, e, _ in ranges] == list(seg.offsets)
    else:
        assert not text.strip()


@settings(max_examples=60, deadline=None)
@given(text=texts, eta=st.integers(min_value=2, max_value=24))
def test_strict_spans_fit_eta_with_a_real_tokenizer(text, eta):
    _check_strict(text, eta, str(smollm2_folder()))


def test_strict_splits_oversized_paragraph_at_sentences_then_tokens():
    text = "Alpha beta gamma. Delta epsilon zeta eta theta iota kappa lambda.\n\nNext."
    ranges = _check_strict(text, 4, "words")
    spans = [text[s:e] for s, e, _ in ranges]
    assert spans[0] == "Alpha beta gamma."                      # a sentence boundary first
    assert spans[-1] == "Next."
    assert "".join(spans[1:-1]).replace(" ", "") == "Deltaepsilonzetaetathetaiotakappalambda."


def test_strict_on_real_s1k_traces_with_the_smollm2_tokenizer():
    rows = pq.read_table(S1K).to_pylist()
    traces = [Trace(str(i), r["question"], r["gemini_thinking_trajectory"], r["gemini_attempt"])
              for i, r in enumerate(rows)]
    spec = SegmentSpec("strict", 256, str(smollm2_folder()))
    counter = token_counter(spec.tokenizer)
    for seg in segment_batch(traces, spec):
        assert len(seg.spans) > 5
        assert max(counter.count(list(seg.spans))) <= 256
        joined = seg.spans[0] + "".join(j + s for j, s in zip(seg.joiners, seg.spans[1:]))
        assert joined == seg.trace.trace.strip()
    official_segs = segment_batch(traces, SegmentSpec("official", 256, spec.tokenizer))
    assert all(max(s.span_tokens) > 256 for s in official_segs)  # official crosses eta on real text


def test_two_worker_processes_give_the_same_spans_in_the_same_order():
    from inftythink_eval.data.segment import segment_blocks

    rows = pq.read_table(S1K).to_pylist()
    traces = [Trace(str(i), r["question"], r["gemini_thinking_trajectory"], "") for i, r in enumerate(rows)] * 2
    blocks = [traces[i:i + 3] for i in range(0, len(traces), 3)]
    spec = SegmentSpec("strict", 512, str(smollm2_folder()))
    one = [r for _, rs in segment_blocks(blocks, spec, workers=1) for r in rs]
    two = [(b, r) for b, r in segment_blocks(iter(blocks), spec, workers=2)]
    assert [b for b, _ in two] == blocks
    assert [r for _, rs in two for r in rs] == one and len(one) == 10
