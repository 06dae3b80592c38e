"""inftythink-eval: run, measure and reproduce InftyThink iterative reasoning.

Owns: the version and the public nouns, imported lazily so that the start-up hook stays cheap:
``Engine`` (runs samples round by round), ``Sample`` (one generation job), ``SamplingParams`` (one
request's sampling), ``EvalConfig`` (the validated ``model_args``).  The parts are subpackages; the
README's map says which owns what.

Does not know: anything its parts do; it only points at them.
"""

__version__ = "0.1.0"

_LAZY = {
    "Engine": "inftythink_eval.engine.loop",
    "Sample": "inftythink_eval.run.sample",
    "SamplingParams": "inftythink_eval.backends.base",
    "EvalConfig": "inftythink_eval.lmeval.config",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'inftythink_eval' has no attribute {name!r}")
