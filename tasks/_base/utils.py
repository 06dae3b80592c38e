"""Task hooks: one-line re-exports of the one answer-checking library (inftythink_eval.scoring.hooks)."""
from inftythink_eval.scoring.hooks import (choice_prompt, choice_results, code_prompt, code_results,  # noqa: F401
                                           judge_choice, judge_code, judge_math, load_benchmark, math_prompt,
                                           math_results)
