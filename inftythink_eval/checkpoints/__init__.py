"""The checkpoint zoo's code.

Owns: the cards (``cards``; the cards themselves are data in the top-level ``zoo/``),
``inftythink zoo`` (``cli``) and the small real test model's fetch (``fetch``).

Does not know: lm-eval, modes, backends.
"""
