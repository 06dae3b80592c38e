"""``inftythink data``: ``build`` a dataset, ``merge`` the reports of a sharded build.

Owns: the command-line flags and their translation into one ``BuildConfig``
(validated there); printing the report table; exit codes (0 ok, 2 bad input).

Does not know: how any stage works.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from inftythink_eval.data.config import (DEFAULT_ETAS, DEFAULT_TOKENIZER, FORMAT_ALIASES, FORMATS,
                                         PLUS_SUMMARY_DEFAULTS, PRESETS, SEGMENTERS, BuildConfig, Columns,
                                         SummaryConfig, parse_shard)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    b = sub.add_parser("build", help="long reasoning traces -> InftyThink instances (Parquet) + vanilla SFT set")
    b.add_argument("--source", required=True, help="local .jsonl/.json/.parquet file or folder, or a hub dataset id")
    b.add_argument("--out", required=True, help="output folder")
    b.add_argument("--format", choices=FORMATS + tuple(FORMAT_ALIASES), default="inftythink",
                   help="inftythink: v1 instances (User:/Assistant: strings); inftythink_plus: InftyThink+ cold-start "
                        "chats (history in the assistant turn, chained summaries with the recipe's two prompts); "
                        "plus: an alias of inftythink_plus")
    b.add_argument("--eta", type=int, help="segment budget in tokens (default: "
                   + ", ".join(f"{k} {v}" for k, v in DEFAULT_ETAS.items()) + "; v1 paper: 2048/4096/6144)")
    b.add_argument("--segmenter", choices=SEGMENTERS, default="official",
                   help="official: the released rule (spans may exceed eta); strict: every span <= eta")
    b.add_argument("--summarizer", default="none",
                   help="backend spec (hf:pretrained=DIR,batch_size=8 | vllm:... | openai:... | scripted:script=F), "
                        "python:module:function, or none (segment and report only). On hf, add prefix_cache=2 for "
                        "traces with many spans: each cumulative prompt then computes only its new span")
    b.add_argument("--tokenizer", default=DEFAULT_TOKENIZER, help="hub id or local folder; 'words' = whitespace words")
    b.add_argument("--preset", choices=sorted(PRESETS), help="column preset (overrides the column flags)")
    b.add_argument("--question-column", default="problem")
    b.add_argument("--solution-column", default="solution", help="a <think>\\n...\\n</think>answer column")
    b.add_argument("--trace-column", help="a bare trace column (instead of --solution-column)")
    b.add_argument("--conclusion-column", help="with --trace-column: the answer/conclusion column")
    b.add_argument("--id-column", help="row id column (default: a hash of question and solution)")
    b.add_argument("--correct-column", help="list-of-bool column that filters list-valued solutions")
    b.add_argument("--hub-config", help="hub dataset config name")
    b.add_argument("--split", default="train")
    b.add_argument("--shard", default="0/1", help="i/N: handle rows with index %% N == i (merge with `data merge`)")
    b.add_argument("--limit", type=int, help="read at most this many source rows")
    b.add_argument("--workers", type=int, default=1, help="segmentation processes")
    b.add_argument("--block-rows", type=int, default=256, help="rows segmented and summarised together")
    b.add_argument("--rows-per-file", type=int, default=50_000, help="instances per Parquet file")
    b.add_argument("--max-paragraph-tokens", type=int, help="official: drop traces with a paragraph this long")
    b.add_argument("--no-vanilla", action="store_true", help="do not write the unsegmented SFT set")
    b.add_argument("--no-progress", action="store_true")
    s, p = SummaryConfig(), PLUS_SUMMARY_DEFAULTS
    both = lambda name: f"default: inftythink {getattr(s, name)}, inftythink_plus {p[name]}"  # noqa: E731
    b.add_argument("--summary-temperature", type=float, help=both("temperature"))
    b.add_argument("--summary-top-p", type=float, help=both("top_p"))
    b.add_argument("--summary-max-tokens", type=int, help=both("max_tokens"))
    b.add_argument("--summary-n", type=int, help="tries per summary; the first that finished by stopping is kept, "
                   "none finished: the trace is dropped and counted (" + both("n") + ")")
    b.add_argument("--summary-seed", type=int)
    b.add_argument("--summary-instruction", help="inftythink: the summary request (default: the protocol's)")
    b.add_argument("--no-summarize-last", action="store_true",
                   help="inftythink: do not summarise the final span (inftythink_plus never does)")
    b.add_argument("--no-chat-template", action="store_true", help="plain 'role: content' summary prompts")
    m = sub.add_parser("merge", help="merge stats-part-*.json of a sharded build into stats.json")
    m.add_argument("out", help="the build's output folder (all shards written into it)")


def config_from_args(args: argparse.Namespace) -> BuildConfig:
    """One validated ``BuildConfig`` from parsed flags."""
    if args.preset:
        columns = PRESETS[args.preset]
    else:
        columns = Columns(question=args.question_column, solution=None if args.trace_column else args.solution_column,
                          trace=args.trace_column, conclusion=args.conclusion_column, uid=args.id_column,
                          correct=args.correct_column)
    summary = SummaryConfig.for_format(
        args.format, instruction=args.summary_instruction, temperature=args.summary_temperature,
        top_p=args.summary_top_p, max_tokens=args.summary_max_tokens, n=args.summary_n, seed=args.summary_seed,
        summarize_last=False if args.no_summarize_last else None, chat_template=False if args.no_chat_template else None)
    return BuildConfig(source=args.source, out=args.out, format=args.format, summarizer=args.summarizer, eta=args.eta,
                       segmenter=args.segmenter, tokenizer=args.tokenizer, columns=columns, summary=summary,
                       hub_config=args.hub_config, split=args.split, shard=parse_shard(args.shard),
                       limit=args.limit, workers=args.workers, block_rows=args.block_rows,
                       rows_per_file=args.rows_per_file, max_paragraph_tokens=args.max_paragraph_tokens,
                       vanilla=not args.no_vanilla, progress=not args.no_progress)


def run(args: argparse.Namespace) -> int:
    from inftythink_eval.data.stats import merge_reports, table

    try:
        if args.action == "merge":
            print(table(merge_reports(Path(args.out))), end="")
            return 0
        from inftythink_eval.data.build import build

        report = build(config_from_args(args))
    except (ValueError, FileNotFoundError, ImportError) as exc:  # SourceError is a ValueError
        print(f"inftythink data {args.action}: error: {exc}", file=sys.stderr)
        return 2
    print(table(report), end="")
    return 0
