"""The round loop: ``loop.Engine`` schedules every sample's calls; ``prompts`` renders what a mode asks for.

Owns: scheduling, retries, caching hand-off and prompt rendering.  Its value types live in ``run``.
Does not know: lm-eval, any mode's rules, backends' internals.
"""

from inftythink_eval.engine.loop import Engine

__all__ = ["Engine"]
