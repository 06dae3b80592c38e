"""Running the real ``lm_eval`` CLI once for ``compare``, ``sweep`` and ``regress``.

Owns: building one ``lm_eval ... --output_path OUT --log_samples`` command
(model, model_args, tasks, limit, gen_kwargs, chat template, seeds),
running it as a subprocess with its output streamed to the terminal, and
turning a failure into an error that shows the command and its last lines.

Does not know: what the results mean (``ingest``), how runs are compared, how
``key=value`` text is split (``keyvalue``).
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from inftythink_eval.keyvalue import format_pairs, parse_pairs


class LmEvalFailed(RuntimeError):
    """``lm_eval`` exited non-zero."""


@dataclass(frozen=True)
class LmEvalRun:
    """One lm-eval invocation; fields map one to one to lm-eval flags."""

    model: str                    # --model (inftythink for every mode)
    model_args: str               # --model_args
    tasks: str                    # --tasks, comma-separated
    output_path: Path             # --output_path
    limit: Optional[float] = None       # --limit
    gen_kwargs: dict = field(default_factory=dict)  # --gen_kwargs
    include_path: Optional[str] = None  # --include_path
    apply_chat_template: bool = False   # --apply_chat_template
    system_instruction: Optional[str] = None  # --system_instruction
    num_fewshot: Optional[int] = None   # --num_fewshot
    seed: Optional[Sequence] = None     # --seed a,b,c,d
    extra: tuple = ()             # further lm_eval flags, passed through untouched

    def argv(self) -> list[str]:
        cmd = [sys.executable, "-m", "lm_eval", "--model", self.model, "--model_args", self.model_args,
               "--tasks", self.tasks, "--output_path", str(self.output_path), "--log_samples"]
        if self.limit is not None:
            cmd += ["--limit", _number(self.limit)]
        if self.gen_kwargs:
            cmd += ["--gen_kwargs", format_pairs(self.gen_kwargs)]
        if self.include_path:
            cmd += ["--include_path", self.include_path]
        if self.apply_chat_template:
            cmd += ["--apply_chat_template"]
        if self.system_instruction:
            cmd += ["--system_instruction", self.system_instruction]
        if self.num_fewshot:
            cmd += ["--num_fewshot", str(self.num_fewshot)]
        if self.seed:
            cmd += ["--seed", ",".join("None" if s is None else str(s) for s in self.seed)]
        return cmd + list(self.extra)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and value >= 1 else str(value)


def run(spec: LmEvalRun, cwd: Optional[Path] = None, quiet: bool = False) -> Path:
    """Run lm-eval; return its output folder.  Raises ``LmEvalFailed`` with the tail of its log."""
    cmd = spec.argv()
    print("$ " + " ".join(shlex.quote(c) for c in cmd[2:]), file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, cwd=cwd, capture_output=quiet, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or "")[-2000:] if quiet else "(see the log above)"
        raise LmEvalFailed(f"lm_eval exited with status {proc.returncode}:\n  {' '.join(shlex.quote(c) for c in cmd)}\n{tail}")
    return Path(spec.output_path)


MODEL_ARGS_EXAMPLE = "pretrained=zoo:smollm2-135m-instruct,backend=hf"


def with_mode(model_args: str, mode: str) -> str:
    """``model_args`` with ``mode=`` set to ``mode`` (replacing any mode given); ``ValueError`` on malformed text."""
    pairs = parse_pairs(model_args, "--model_args", MODEL_ARGS_EXAMPLE)
    pairs.pop("mode", None)
    return format_pairs({**pairs, "mode": mode})


def from_record_args(args: dict, output_path: Path, **overrides) -> LmEvalRun:
    """The run that repeats a stored record's measurement (``Record.lm_eval_args``)."""
    seed = args.get("seed")
    spec = dict(model=args["model"], model_args=args["model_args"], tasks=args["tasks"], output_path=output_path,
                limit=args.get("limit"), gen_kwargs=dict(args.get("gen_kwargs") or {}),
                apply_chat_template=bool(args.get("apply_chat_template")),
                system_instruction=args.get("system_instruction"), num_fewshot=args.get("num_fewshot"),
                seed=tuple(seed) if seed else None)
    spec.update(overrides)
    return LmEvalRun(**spec)

