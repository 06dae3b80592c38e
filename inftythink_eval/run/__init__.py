"""The engine's value types.

Owns: a sample and its tools (``sample``), what happened (``trace``), the call cache (``cache``) and
what one sample hands to scoring (``output``).

Does not know: scheduling, backends' internals, lm-eval.
"""
