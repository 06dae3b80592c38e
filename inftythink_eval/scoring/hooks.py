"""lm-eval task hooks: data loading, prompts, judging filters and ``process_results`` per family.

Owns: the zero-shot prompts (math asks for ``\\boxed{}``; GPQA lists the four
shuffled options and asks for a letter; code asks for one fenced Python
block), the ``Judged`` sample (a ``SampleOutput`` carrying its verdict), the
judging filters that score ALL n repeats of every question in one parallel
pass, and ``process_results`` that turn them into acc, pass@k, maj@k,
check_timeout and the engine's stats.  ``tasks/_base/utils.py`` re-exports
these; YAMLs name them with ``!function utils.<name>``.

Does not know: files and hub ids (``benchdata``), how answers are checked
(``mathcheck``/``choice``/``codecheck``), models and engines.
"""

from __future__ import annotations

import logging
from typing import Callable, Optional, Sequence

from inftythink_eval.run.output import SampleOutput, stats_of
from inftythink_eval.formats.inftythink import (DEFAULT_UNCLOSED_THINK, THINK_UNCLOSED, UNCLOSED_THINK_NOTE, check_unclosed_think,
                         scored_text)
from inftythink_eval.scoring.choice import extract_choice
from inftythink_eval.scoring.codecheck import check_code_many
from inftythink_eval.scoring.mathcheck import check_many
from inftythink_eval.scoring.metrics import question_metrics

log = logging.getLogger(__name__)
RULE_FIELD = "unclosed_think"  # the doc field that carries the task's truncation rule to the judging filters
MATH_PROMPT = "{problem}\n\nPlease reason step by step, and put your final answer within \\boxed{{}}."
CHOICE_PROMPT = ("Answer the following multiple-choice question. Think step by step, then give your final answer "
                 "as the letter of the correct option in \\boxed{{}}, for example \\boxed{{A}}.\n\n{question}\n\n{options}")
HUMANEVAL_PROMPT = ("Complete the following Python function. Reply with the complete function (its signature, "
                    "body and any imports it needs) in one ```python code block.\n\n```python\n{prompt}```")
MBPP_PROMPT = ("{prompt}\nYour code should pass this test:\n\n{first_test}\n\n"
               "Reply with the complete Python code in one ```python code block.")


# --- data and prompts -------------------------------------------------------------
def load_benchmark(benchmark: Optional[str] = None, unclosed_think: str = DEFAULT_UNCLOSED_THINK, **_: object):
    """``custom_dataset`` hook: ``dataset_kwargs: {benchmark: <name>}`` in the task YAML.

    lm-eval passes the task's ``metadata`` here too (with ``lm_eval --metadata '{...}'`` merged in):
    its ``unclosed_think`` key (``templates.scored_text``) is stamped on every doc, where the judging
    filters read it and where ``--log_samples`` shows it.
    """
    from inftythink_eval.scoring.datasets import load_dataset_dict

    if benchmark is None:
        raise ValueError("task YAML must set dataset_kwargs: {benchmark: <name>} (see inftythink_eval.scoring.datasets)")
    rule = check_unclosed_think(unclosed_think)
    data = load_dataset_dict(benchmark)
    for split in list(data):
        data[split] = data[split].add_column(RULE_FIELD, [rule] * len(data[split]))
    return data


def math_prompt(doc: dict) -> str:
    return MATH_PROMPT.format(problem=doc["problem"])


def choice_prompt(doc: dict) -> str:
    options = "\n".join(f"{letter}) {text}" for letter, text in zip("ABCD", doc["choices"]))
    return CHOICE_PROMPT.format(question=doc["question"], options=options)


def code_prompt(doc: dict) -> str:
    template = HUMANEVAL_PROMPT if doc["entry_point"] else MBPP_PROMPT
    return template.format(prompt=doc["prompt"], first_test=doc["first_test"])


# --- judged samples ---------------------------------------------------------------
class Judged(SampleOutput):
    """What was extracted from one response (the string), its verdict, and the response's engine stats."""

    correct: bool
    key: Optional[str]   # majority-vote key (None: no answer / no voting)
    note: str            # how it was judged: boxed, fallback, no answer, timeout, passed, AssertionError, ...
    think: str           # the response's thinking state (templates.scored_text): closed, unclosed, none

    def __new__(cls, text: str, source, correct: bool, key: Optional[str], note: str,
                think: Optional[str] = None) -> "Judged":
        obj = super().__new__(cls, text, stats_of(source), getattr(source, "trace_id", ""))
        obj.correct, obj.key, obj.note = bool(correct), key, note
        obj.think = think if think is not None else scored_text(str(source)).think
        return obj

    def __reduce__(self):
        return (_rebuild, (str(self), self.stats, self.trace_id, self.correct, self.key, self.note, self.think))


def _rebuild(text, stats, trace_id, correct, key, note, think=None) -> Judged:
    source = SampleOutput("", stats, trace_id)
    return Judged(text, source, correct, key, note, think)


def _rule_of(docs: Sequence) -> str:
    """The truncation rule of one task's docs (stamped by ``load_benchmark``; the default when absent)."""
    rules = {doc.get(RULE_FIELD, DEFAULT_UNCLOSED_THINK) for doc in docs} or {DEFAULT_UNCLOSED_THINK}
    if len(rules) > 1:
        raise ValueError(f"docs of one judging pass carry different {RULE_FIELD} rules {sorted(rules)}; "
                         "expected one per task (set it in the task's metadata)")
    return check_unclosed_think(rules.pop())


def _judge_all(resps: Sequence, docs: Sequence, judge_pairs: Callable) -> list[list[Judged]]:
    """Flatten (question, repeat) pairs, judge them in one pass under the task's rule, regroup per question."""
    groups = [list(r) if isinstance(r, (list, tuple)) else [r] for r in resps]
    pairs = [(resp, doc) for group, doc in zip(groups, docs) for resp in group]
    judged = judge_pairs(pairs, _rule_of(docs))
    out, start = [], 0
    for group in groups:
        out.append(judged[start:start + len(group)])
        start += len(group)
    return out


def _math_pairs(pairs, rule: str):
    verdicts = check_many([(str(resp), str(doc["answer"]), rule) for resp, doc in pairs], progress=len(pairs) > 100)
    timeouts = sum(v.note == "timeout" for v in verdicts)
    if timeouts:
        log.warning("%d of %d math checks hit the time limit and were scored incorrect (metric check_timeout)",
                    timeouts, len(verdicts))
    return [Judged(v.answer or "", resp, v.correct, v.key, v.note) for (resp, _), v in zip(pairs, verdicts)]


def _choice_pairs(pairs, rule: str):
    out = []
    for resp, doc in pairs:
        letter = extract_choice(resp, unclosed_think=rule)
        scored = scored_text(str(resp), rule)
        note = "letter" if letter else UNCLOSED_THINK_NOTE if scored.think == THINK_UNCLOSED and not scored.text \
            else "no answer"
        out.append(Judged(letter or "", resp, letter == doc["answer"], letter, note))
    return out


def _code_pairs(pairs, rule: str):
    verdicts = check_code_many([(str(resp), doc) for resp, doc in pairs], progress=len(pairs) > 20, unclosed_think=rule)
    return [Judged(v.code or "", resp, v.passed, None, v.note) for (resp, _), v in zip(pairs, verdicts)]


def judge_math(resps, docs):
    """Filter (``function: custom``): judge every repeat of every question with math-verify."""
    return _judge_all(resps, docs, _math_pairs)


def judge_choice(resps, docs):
    """Filter: extract and check the letter of every repeat."""
    return _judge_all(resps, docs, _choice_pairs)


def judge_code(resps, docs):
    """Filter: run every repeat's program in the sandbox, in parallel."""
    return _judge_all(resps, docs, _code_pairs)


# --- per-question metrics ---------------------------------------------------------
def _metrics(doc: dict, results: list, judge: Callable, vote: bool) -> dict:
    samples = results[0] if isinstance(results[0], (list, tuple)) else list(results)
    if not all(isinstance(s, Judged) for s in samples):  # the judging filter was not applied
        samples = judge([samples], [doc])[0]
    keys = [s.key for s in samples] if vote else None
    timeouts = sum(s.note == "timeout" for s in samples)
    unclosed = sum(s.think == THINK_UNCLOSED for s in samples)
    return question_metrics([s.correct for s in samples], samples, keys, timeouts, unclosed)


def math_results(doc, results):
    return _metrics(doc, results, judge_math, vote=True)


def choice_results(doc, results):
    return _metrics(doc, results, judge_choice, vote=True)


def code_results(doc, results):
    return _metrics(doc, results, judge_code, vote=False)

