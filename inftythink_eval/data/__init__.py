"""Dataset builder: long reasoning traces -> InftyThink training instances (issue 4), or InftyThink+
cold-start chats (``BuildConfig(format="inftythink_plus")``, issue 10; ``"plus"`` is read as it).

Public API::

    from inftythink_eval.data import BuildConfig, Columns, SummaryConfig, build
    report = build(BuildConfig(source="traces.jsonl", out="out/", eta=4096,
                               summarizer="hf:pretrained=/models/summ"))

Owns: nothing itself: ``sources`` reads, ``segment`` cuts, ``summarize`` asks,
``cache`` remembers, ``instances`` formats and writes, ``stats`` reports,
``build`` orders the stages, ``cli`` is ``inftythink data``.

Does not know: the formats' strings (``formats.inftythink`` and ``formats.plus`` own them), training, lm-eval.
"""

from inftythink_eval.data.build import build
from inftythink_eval.data.config import PRESETS, BuildConfig, Columns, SummaryConfig
from inftythink_eval.data.segment import official_pack, official_paragraphs, segment_batch
from inftythink_eval.data.sources import SourceError

__all__ = ["BuildConfig", "Columns", "PRESETS", "SourceError", "SummaryConfig", "build", "official_pack",
           "official_paragraphs", "segment_batch"]
