"""Protocol formats, one owner each: ``inftythink`` (the paper's native format) and ``plus`` (InftyThink+).

Owns: nothing itself.  Each module owns its format's strings, its parser, its chat/message
composition, the data row's text and the training template, so evaluation (``engine``, ``modes``),
data building (``data``) and training (``training``) call the same functions and cannot drift.
``inftythink`` also owns the compositions both share (a system text before the question, a round's chat).

Does not know: tokenizers, backends, lm-eval, files.  Imports nothing from the package but other ``formats`` modules.
"""
