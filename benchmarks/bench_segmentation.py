"""Segmentation throughput: rows/s and tokens/s on synthetic ~5,000-token traces, one process vs several.

Usage (defaults: 10,000 traces, the SmolLM2 tokenizer, official, 1 and 2 processes)::

    python benchmarks/bench_segmentation.py
    python benchmarks/bench_segmentation.py --rows 2000 --segmenter strict --workers 1 2 --tokenizer DIR

Prints one line per setting.  Traces are built from a fixed seed: paragraphs of
sentences, some starting lower-case or with ``$`` (so the official merge rule
runs), at about 5,000 tokens each.  The text is generated before timing; the
timing includes sending blocks to worker processes (that is their real cost).
"""

from __future__ import annotations

import argparse
import random
import time

from inftythink_eval.data.segment import SegmentSpec, Segmented, segment_blocks, token_counter
from inftythink_eval.data.sources import Trace

WORDS = ("the of and to in is we that for it as with be by this are on so then number sum value case let "
         "check term factor prime square root equation solve compute function integer remainder modulo").split()


def synthetic_traces(rows: int, target_tokens: int, tokenizer: str, seed: int = 0) -> list[Trace]:
    """``rows`` traces of about ``target_tokens`` tokens each (calibrated on the first one)."""
    rng = random.Random(seed)
    pool = []
    for _ in range(400):
        words = [rng.choice(WORDS) for _ in range(rng.randint(6, 24))]
        pool.append(" ".join(words).capitalize() + rng.choice([".", ".", "?", ":"]))
    starts = ["", "", "", "", "so ", "$x = 1$ and ", "2. "]

    def paragraph() -> str:
        return rng.choice(starts) + " ".join(rng.choice(pool) for _ in range(rng.randint(1, 6)))

    sample = "\n\n".join(paragraph() for _ in range(200))
    per_paragraph = token_counter(tokenizer).count([sample])[0] / 200
    n_paragraphs = max(1, round(target_tokens / per_paragraph))
    return [Trace(str(i), f"Question {i}?", "\n\n".join(paragraph() for _ in range(n_paragraphs)), "42")
            for i in range(rows)]


def measure(traces: list[Trace], spec: SegmentSpec, workers: int, block_rows: int) -> tuple[float, int, int]:
    blocks = (traces[i:i + block_rows] for i in range(0, len(traces), block_rows))
    started = time.perf_counter()
    rows = tokens = spans = 0
    for block, results in segment_blocks(blocks, spec, workers):
        rows += len(block)
        for seg in results:
            if isinstance(seg, Segmented):
                tokens += sum(seg.span_tokens)
                spans += len(seg.spans)
    return time.perf_counter() - started, rows, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--tokens", type=int, default=5_000, help="approximate tokens per trace")
    parser.add_argument("--eta", type=int, default=4096)
    parser.add_argument("--segmenter", default="official", choices=("official", "strict"))
    parser.add_argument("--tokenizer", default=None, help="default: the cached SmolLM2 folder")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--block-rows", type=int, default=256)
    args = parser.parse_args()
    if args.tokenizer is None:
        from inftythink_eval.checkpoints.fetch import smollm2_folder

        args.tokenizer = str(smollm2_folder())
    traces = synthetic_traces(args.rows, args.tokens, args.tokenizer)
    chars = sum(len(t.trace) for t in traces)
    print(f"{len(traces)} traces, {chars / len(traces):,.0f} chars each, segmenter={args.segmenter}, eta={args.eta}, "
          f"tokenizer={args.tokenizer}")
    spec = SegmentSpec(args.segmenter, args.eta, args.tokenizer)
    for workers in args.workers:
        seconds, rows, tokens = measure(traces, spec, workers, args.block_rows)
        print(f"workers={workers}: {seconds:.1f} s, {rows / seconds:,.0f} rows/s, {tokens / seconds:,.0f} tokens/s, "
              f"{tokens / rows:,.0f} tokens/row")


if __name__ == "__main__":
    main()
