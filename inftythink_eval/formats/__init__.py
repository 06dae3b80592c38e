"""Protocol formats, one owner each: ``inftythink`` (the paper's native format) and ``plus``
(InftyThink+).  Each module owns its strings, its parser, its chat composition and the data-row and
training templates, so evaluation, data building and training cannot drift.

Does not know: tokenizers, backends, lm-eval, files.
"""
