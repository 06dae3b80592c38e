"""lm-eval task hooks: the shared data hook plus every registered task family's hooks, in one namespace.

Owns: ``load_benchmark`` (the ``custom_dataset`` hook every family's base
YAML names: a registered benchmark's rows with the task's truncation rule
stamped on every doc) and the namespace ``tasks/_base/utils.py`` re-exports
(``from inftythink_eval.scoring.hooks import *``): ``load_benchmark`` and each
hook a family module registered (``math_prompt``, ``judge_math``,
``math_results``, ``choice_prompt``, ...).  YAMLs name them with
``!function utils.<name>``; ``__all__`` lists them, built from the registry.

Does not know: prompts, checkers and row schemas (each family's module in
``scoring/families/``), files and hub ids (``scoring.datasets``), models and engines.
"""

from __future__ import annotations

from typing import Optional

from inftythink_eval.formats.inftythink import DEFAULT_UNCLOSED_THINK, check_unclosed_think
from inftythink_eval.scoring.families import HOOKS
from inftythink_eval.scoring.judging import RULE_FIELD, Judged  # noqa: F401  (tests and callers import Judged here)


def load_benchmark(benchmark: Optional[str] = None, unclosed_think: str = DEFAULT_UNCLOSED_THINK, **_: object):
    """``custom_dataset`` hook: ``dataset_kwargs: {benchmark: <name>}`` in the task YAML.

    lm-eval passes the task's ``metadata`` here too (with ``lm_eval --metadata '{...}'`` merged in):
    its ``unclosed_think`` key (``formats.inftythink.scored_text``) is stamped on every doc, where the judging
    filters read it and where ``--log_samples`` shows it.
    """
    from inftythink_eval.scoring.datasets import load_dataset_dict

    if benchmark is None:
        raise ValueError("task YAML must set dataset_kwargs: {benchmark: <name>} (a benchmark registered in "
                         "inftythink_eval/scoring/families/)")
    rule = check_unclosed_think(unclosed_think)
    data = load_dataset_dict(benchmark)
    for split in list(data):
        data[split] = data[split].add_column(RULE_FIELD, [rule] * len(data[split]))
    return data


globals().update(HOOKS)  # every registered family's hooks, under their own names
__all__ = ["load_benchmark", *HOOKS]
