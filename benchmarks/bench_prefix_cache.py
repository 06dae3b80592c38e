"""Cumulative summaries on the hf backend with and without ``prefix_cache``: seconds, prompt tokens computed.

Usage (defaults: the first s1K trace, official segmentation at eta 256, its first 8 spans, SmolLM2)::

    INFTYTHINK_DATA_DIR=../shared/data python benchmarks/bench_prefix_cache.py
    python benchmarks/bench_prefix_cache.py --trace 4 --spans 16 --max-tokens 40

Builds the builder's real summary prompts (``formats.inftythink.summary_chat`` over spans 0..i, the
backend's chat template) and asks for each summary once, greedy, first with the plain batched
backend and then with ``prefix_cache=2`` (one request at a time, each prompt computing only what
the previous one did not).  Prints one line per setting and the speed-up; checks that both give
the same summaries (greedy), so the cache changes cost, not output.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pyarrow.parquet as pq

from inftythink_eval.backends.base import Request, SamplingParams, make_backend
from inftythink_eval.data.config import PRESETS
from inftythink_eval.data.segment import official_pack, official_paragraphs
from inftythink_eval.checkpoints.fetch import smollm2_folder
from inftythink_eval.formats.inftythink import summary_chat

INSTRUCTION = "Summarize your last response in one short sentence that starts with '*'."


def prompts_for(backend, trace_index: int, eta: int, spans: int) -> list[str]:
    data = Path(os.environ.get("INFTYTHINK_DATA_DIR", "../shared/data")) / "reasoning_traces" / "s1k_head5.parquet"
    row = pq.read_table(data).to_pylist()[trace_index]
    columns = PRESETS["s1k"]
    paragraphs = official_paragraphs(row[columns.trace])
    ranges = official_pack([backend.count_tokens(p) for p in paragraphs], eta)[:spans]
    texts = ["\n\n".join(paragraphs[a:b]) for a, b in ranges]
    return [backend.apply_chat_template(summary_chat(row[columns.question], texts[:i + 1], INSTRUCTION))
            for i in range(len(texts))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", type=int, default=0, help="row of s1k_head5.parquet (0-4)")
    ap.add_argument("--eta", type=int, default=256)
    ap.add_argument("--spans", type=int, default=8, help="first N spans of the trace")
    ap.add_argument("--max-tokens", type=int, default=40)
    ap.add_argument("--model", default=None, help="hf model folder (default: SmolLM2-135M-Instruct)")
    args = ap.parse_args()
    model = args.model or str(smollm2_folder())
    params = SamplingParams(max_tokens=args.max_tokens)
    texts, seconds = {}, {}
    for cache in (0, 2):
        backend = make_backend("hf", pretrained=model, batch_size=8, prefix_cache=cache)
        prompts = prompts_for(backend, args.trace, args.eta, args.spans)
        total = sum(backend.count_tokens(p) for p in prompts)
        started = time.perf_counter()
        outs = backend.generate([Request(p, params) for p in prompts])
        seconds[cache] = time.perf_counter() - started
        texts[cache] = [o.text for o in outs]
        computed = backend.prefixes.computed_tokens if cache else total
        print(f"prefix_cache={cache}: {len(prompts)} summaries, {seconds[cache]:.1f} s, prompt tokens {total:,}, "
              f"computed {computed:,}, output tokens {sum(o.output_tokens for o in outs):,}", flush=True)
        backend.close()
    print(f"speed-up {seconds[0] / seconds[2]:.2f}x; same summaries: {texts[0] == texts[2]}")


if __name__ == "__main__":
    main()
