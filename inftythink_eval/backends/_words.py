"""The deterministic word tokenizer: the ``scripted`` backend's tokens and the data builder's ``--tokenizer words``.

Owns: ``word_tokens`` (each word with its leading whitespace; the tokens join back to the text).

Does not know: backends, segmentation, files.  It lives in ``backends`` (the lowest part that counts tokens)
so that both the scripted backend (same part) and the dataset builder (``data``, a higher part) import it
downward; it imports nothing.
"""

from __future__ import annotations

import re

_TOKEN_RE = re.compile(r"\s*\S+|\s+$")


def word_tokens(text: str) -> list[str]:
    """Word-level tokens (each word with its leading whitespace); they join back to ``text``."""
    return _TOKEN_RE.findall(text)
