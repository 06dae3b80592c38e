"""Training support for the SFT recipe in ``training/recipes/sft.py``: config, CLI, from-scratch models.

Does not know: evaluation, backends, lm-eval.
"""
