"""Code answers: pull the program out of a response, assemble it with the tests, run it sandboxed.

Owns: fenced-block extraction from the final answer (after any thinking;
the last ``python``-tagged block, else the last block), the program layout
``setup + code + tests`` (HumanEval: the prompt, which keeps its imports and
helpers, then the sample, then ``check(entry_point)``; MBPP: the sample,
then the task's test setup code and every assert), and the consent gate
(``HF_ALLOW_CODE_EVAL=1``).

Does not know: lm-eval, how the sandbox confines (``sandbox``), benchmarks' files.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Optional, Sequence

from inftythink_eval.formats.inftythink import DEFAULT_UNCLOSED_THINK, THINK_UNCLOSED, UNCLOSED_THINK_NOTE, scored_text
from inftythink_eval.scoring.sandbox import SandboxLimits, run_many

CONSENT_ENV = "HF_ALLOW_CODE_EVAL"
_FENCE_RE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)


class CodeEvalNotAllowed(RuntimeError):
    """Running model-written code was not consented to."""


def require_consent() -> None:
    """Raise unless ``HF_ALLOW_CODE_EVAL=1`` (lm-eval separately requires ``--confirm_run_unsafe_code``)."""
    if os.environ.get(CONSENT_ENV) != "1":
        raise CodeEvalNotAllowed(
            f"this task runs model-written code. It runs in a sandbox (docs/tasks.md), but you must opt in: "
            f"set {CONSENT_ENV}=1 and pass --confirm_run_unsafe_code to lm_eval, e.g. "
            f"`{CONSENT_ENV}=1 lm_eval ... --tasks inftythink_humaneval --confirm_run_unsafe_code`")


def extract_code(response: str, unclosed_think: str = DEFAULT_UNCLOSED_THINK) -> Optional[str]:
    """The code of the last fenced ``python`` block of the final answer (else the last block); None without one.

    The final answer is ``formats.inftythink.scored_text`` (the truncation rule, ``unclosed_think``).
    """
    blocks = _FENCE_RE.findall(scored_text(str(response), unclosed_think).text)
    if not blocks:
        return None
    python = [body for tag, body in blocks if tag.lower() in ("python", "py", "python3")]
    code = (python or [body for _, body in blocks])[-1]
    return code if code.strip() else None


def build_program(doc: dict, code: str) -> str:
    """setup + sample + tests, as one file (see the module docstring)."""
    return f"{doc['setup']}\n\n{code}\n\n{doc['tests']}"


def _no_code_note(response: str, unclosed_think: str) -> str:
    scored = scored_text(str(response), unclosed_think)
    return UNCLOSED_THINK_NOTE if scored.think == THINK_UNCLOSED and not scored.text else "no code block"


@dataclass(frozen=True)
class CodeVerdict:
    passed: bool
    code: Optional[str]
    note: str   # "passed", "no code block", UNCLOSED_THINK_NOTE, or the sandbox's reason (timeout, AssertionError, ...)


def check_code_many(pairs: Sequence[tuple[str, dict]], limits: SandboxLimits = SandboxLimits(),
                    progress: bool = False, unclosed_think: str = DEFAULT_UNCLOSED_THINK) -> list[CodeVerdict]:
    """Run every (response, doc) pair's program in the sandbox, in parallel across cores."""
    require_consent()
    codes = [extract_code(response, unclosed_think) for response, _ in pairs]
    todo = [i for i, code in enumerate(codes) if code is not None]
    results = run_many([build_program(pairs[i][1], codes[i]) for i in todo], limits, progress=progress)
    verdicts = [CodeVerdict(False, None, _no_code_note(response, unclosed_think)) for response, _ in pairs]
    for i, result in zip(todo, results):
        verdicts[i] = CodeVerdict(result.passed, codes[i], result.reason)
    return verdicts
