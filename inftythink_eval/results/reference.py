"""The paper's reported numbers: reference rows, never measured here.

Owns: ``ReportedRow`` and loading ``reference.json`` (beside this module) (the rows
of the InftyThink paper, arXiv 2503.06692, as collected in the project's
PROTOCOL.md, and of the InftyThink+ paper, arXiv 2602.06960, as collected in
PROTOCOL_PLUS.md, each with its citation and a ``verified`` flag), plus
``parse_protocol_table`` and ``parse_plus_protocol``, which read the same rows out
of those files so a test can prove the JSON copy matches its source.

Does not know: measured records, the store, rendering.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

REFERENCE_FILE = Path(__file__).with_name("reference.json")
PAPER = "InftyThink (Yan et al., arXiv 2503.06692, ICLR 2026)"
# The papers' tables, column by column, as registered benchmark names (scoring.families; a test checks them):
# these are the layouts of PROTOCOL.md and PROTOCOL_PLUS.md, not a list of benchmarks.
PAPER_COLUMNS = ("math500", "aime24", "gpqa_diamond")


@dataclass(frozen=True)
class ReportedRow:
    """One reported (model, method, benchmark) number from the paper; ``tok`` in tokens, ``tps`` in tokens/s."""

    model: str
    method: str
    benchmark: str
    acc: Optional[float]       # 0..1 (None: the source gives no accuracy)
    tok: Optional[float]       # mean generated tokens per sample
    tps: Optional[float]       # tokens per second as reported
    lat: Optional[float]       # seconds per sample as reported
    eta: Optional[int]         # segment budget (ablation rows)
    citation: str              # where the number is printed
    verified: bool             # False: from secondary notes (camera-ready v5)
    kind: str = "reported"     # always "reported": not measured here
    paper: str = "InftyThink"  # which paper printed it: "InftyThink" or "InftyThink+"


def load(path: Path = REFERENCE_FILE) -> list[ReportedRow]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return [ReportedRow(**row) for row in data["rows"]]


def parse_protocol_table(text: str, citation: str) -> list[ReportedRow]:
    """Rows of the 'Acc % / Tok K / TPS K/s' table in PROTOCOL.md's 'Reported numbers' section."""
    rows = []
    cell = re.compile(r"([\d.]+) / ([\d.]+) / ([\d.]+)")
    for line in text.splitlines():
        parts = [p.strip() for p in line.strip().strip("|").split("|")]
        if len(parts) != 5 or not all(cell.fullmatch(p) for p in parts[2:]):
            continue
        model, method = parts[0], parts[1]
        for bench, value in zip(PAPER_COLUMNS, parts[2:]):
            acc, tok, tps = (float(x) for x in cell.fullmatch(value).groups())
            rows.append(ReportedRow(model=model, method=method, benchmark=bench, acc=round(acc / 100, 6),
                                    tok=round(tok * 1000, 3), tps=round(tps * 1000, 3), lat=None, eta=None,
                                    citation=citation, verified=True))
    return rows


PLUS_COLUMNS = ("math500", "aime24", "aime25", "gpqa_diamond")
PLUS_CITATION = ("InftyThink+ paper (arXiv 2602.06960) main results, 32 samples at T=0.7 (project page "
                 "main-result.png); copied in PROTOCOL_PLUS.md 'Reported'")
_PLUS_METHODS = {"Vanilla SFT": "vanilla SFT", "Vanilla SFT+RL": "vanilla SFT+RL", "InftyThink+ SFT": "InftyThink+ SFT",
                 "InftyThink+ RL task (-T)": "InftyThink+ RL-T", "InftyThink+ RL task+eff (-TE)": "InftyThink+ RL-TE",
                 "vanilla SFT": "vanilla SFT", "vanilla RL": "vanilla SFT+RL", "InftyThink+ RL-T": "InftyThink+ RL-T",
                 "InftyThink+ RL-TE": "InftyThink+ RL-TE"}


def parse_plus_protocol(text: str, citation: str = PLUS_CITATION) -> list[ReportedRow]:
    """Rows of PROTOCOL_PLUS.md's 'Reported' table (R1-Distill-Qwen-1.5B) and its Qwen3-4B-Base lines (ACC/TOK k/LAT s)."""
    num = r"(\d+(?:\.\d+)?)"
    cell = rf"{num} ?/ ?{num} ?/ ?{num}"
    rows = []

    def add(model: str, method: str, cells: list) -> None:
        for bench, (acc, tok, lat) in zip(PLUS_COLUMNS, cells):
            rows.append(ReportedRow(model=model, method=_PLUS_METHODS[method], benchmark=bench, acc=round(float(acc) / 100, 6),
                                    tok=round(float(tok) * 1000, 3), tps=None, lat=float(lat), eta=6000 if "+" in method else None,
                                    citation=citation, verified=True, paper="InftyThink+"))

    for line in text.splitlines():
        parts = [p.strip() for p in line.strip().strip("|").split("|")]
        if line.lstrip().startswith("|") and len(parts) == 5 and parts[0] in _PLUS_METHODS:
            add("DeepSeek-R1-Distill-Qwen-1.5B", parts[0], [re.fullmatch(cell, p).groups() for p in parts[1:]])
    qwen3, bare = text[text.find("Base Qwen3-4B-Base"):], cell.replace("(\\d", "(?:\\d")
    for method, cells in re.findall(rf"(vanilla SFT|vanilla RL|InftyThink\+ SFT|InftyThink\+ RL-TE?) ((?:{bare},? ?){{4}})", qwen3):
        add("Qwen3-4B-Base", method, re.findall(cell, cells))
    return rows
