"""Training: the SFT recipe (``sft``), its config (``config``), the ``inftythink train`` command (``cli``)
and from-scratch models (``scratch``).

Owns: nothing itself; ``training/recipes/sft.py`` in a checkout is a thin launcher of ``sft`` (for
``accelerate launch training/recipes/sft.py``).

Does not know: evaluation, backends, lm-eval; the formats' strings (``formats`` owns them).
"""
