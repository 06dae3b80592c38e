"""Multiple-choice answer extraction: which letter did the response choose?

Owns: finding the chosen letter in a final answer, robust to ``\\boxed{B}``,
"The answer is (B)", "Answer: B", "**B**", "B)" and a bare letter, most
explicit form first and the last occurrence of that form winning.

Does not know: the question, the gold letter's source, lm-eval.
"""

from __future__ import annotations

import re
from typing import Optional

from inftythink_eval.formats.inftythink import DEFAULT_UNCLOSED_THINK, scored_text
from inftythink_eval.scoring.mathcheck import last_boxed


def _patterns(letters: str) -> list[re.Pattern]:
    L = f"(?-i:[{letters}])"  # the letter itself must be upper case
    return [
        # "answer is (B)", "Answer: **B**", "final answer: \text{B}", "answer is option C"
        re.compile(rf"answer\s*(?:is|:)?\s*[:\-]?\s*(?:option\s*|choice\s*)?[\*\(\[\{{\s$\\]*(?:\\text(?:bf)?\{{)?\(?({L})\b(?![a-zA-Z])",
                   re.IGNORECASE),
        re.compile(rf"\*\*\(?({L})\)?\*\*"),                      # **B** / **(B)**
        re.compile(rf"(?:^|\s)\(({L})\)(?=\s|$|[.,:;])", re.M),   # (B)
        re.compile(rf"^\s*({L})[\).:]", re.M),                    # "B)" / "B." / "B:" at line start
    ]


def extract_choice(response: str, letters: str = "ABCD", unclosed_think: str = DEFAULT_UNCLOSED_THINK) -> Optional[str]:
    """The chosen letter (upper case) or None.  Order: last ``\\boxed{}``, then answer phrases, then marks.

    What is read is ``formats.inftythink.scored_text`` (the truncation rule, ``unclosed_think``).
    """
    text = scored_text(str(response), unclosed_think).text.strip()
    boxed = last_boxed(text)
    if boxed is not None:
        inner = re.sub(r"\\text(?:bf)?\{([^{}]*)\}", r"\1", boxed)
        found = re.fullmatch(rf"\s*\(?([{letters}])\)?[.\s]*(?:[:).].*)?", inner, re.S)
        if found:
            return found.group(1).upper()
    for pattern in _patterns(letters):
        matches = pattern.findall(text)
        if matches:
            return matches[-1].upper()
    bare = re.fullmatch(rf"[\s\*\($]*([{letters}])[\s\*\).$]*", text)
    return bare.group(1) if bare else None
