"""The one answer-checking library every task uses, and the task families built on it.

Owns: the public checking API: ``check_math``/``check_many`` (math-verify
under a hard time limit), ``extract_choice`` (multiple-choice letters),
``run_python``/``run_many`` (the code sandbox),
``pass_at_k``/``maj_at_k``/``question_metrics``.  Beside it: ``families/``
(the task-family registry: one module per family with its checker, hooks,
row schema and benchmarks), ``datasets`` (benchmark rows from the hub or an
offline folder), ``judging`` (what every family's hooks share), ``hooks``
(the lm-eval hook namespace ``tasks/_base/utils.py`` re-exports) and
``synthetic`` (the synthetic digit-sum task).

Does not know: models, engines, how responses were produced, the leaderboard.
"""

from inftythink_eval.scoring.choice import extract_choice
from inftythink_eval.scoring.mathcheck import MathVerdict, check_many, check_math, last_boxed, normalize_number
from inftythink_eval.scoring.metrics import maj_at_k, pass_at_k, question_metrics, report_ks
from inftythink_eval.scoring.sandbox import SandboxError, SandboxLimits, SandboxResult, run_many, run_python

__all__ = [
    "MathVerdict", "SandboxError", "SandboxLimits", "SandboxResult", "check_many", "check_math",
    "extract_choice", "last_boxed", "maj_at_k", "normalize_number", "pass_at_k", "question_metrics",
    "report_ks", "run_many", "run_python",
]
