"""Task family ``code``: one fenced Python block, run with the benchmark's tests in the sandbox.

Owns: the HumanEval and MBPP prompts, the row schema ``{id, prompt,
entry_point, setup, tests, reference, first_test}`` and the conversion to it
(HumanEval: ``prompt + sample + test + check(entry_point)``; MBPP: ``sample +
test_setup_code + asserts``), the family's hooks (``code_prompt``,
``judge_code``, ``code_results``; base YAML ``tasks/_base/code_template``,
``unsafe_code``) and its benchmarks HumanEval and MBPP with their data entries.

Does not know: how code is extracted and run (``scoring.codecheck``,
``scoring.sandbox``), file formats (``scoring.datasets``), lm-eval's internals.
"""

from __future__ import annotations

from inftythink_eval.scoring.codecheck import check_code_many
from inftythink_eval.scoring.families._base import Benchmark, register_family
from inftythink_eval.scoring.judging import Judged, judge_all, question_results

HUMANEVAL_PROMPT = ("Complete the following Python function. Reply with the complete function (its signature, "
                    "body and any imports it needs) in one ```python code block.\n\n```python\n{prompt}```")
MBPP_PROMPT = ("{prompt}\nYour code should pass this test:\n\n{first_test}\n\n"
               "Reply with the complete Python code in one ```python code block.")


def to_row(row: dict, index: int) -> dict:
    if "entry_point" in row:  # HumanEval
        entry = str(row["entry_point"])
        return {"id": str(row["task_id"]), "prompt": row["prompt"], "entry_point": entry, "setup": row["prompt"],
                "tests": f"{row['test']}\n\ncheck({entry})\n", "reference": row["prompt"] + row["canonical_solution"],
                "first_test": ""}
    tests = list(row["test_list"])  # MBPP
    setup = str(row.get("test_setup_code") or "")  # after the sample: it may use the sample's classes (task 367)
    return {"id": str(row["task_id"]), "prompt": str(row["text"]), "entry_point": "", "setup": "",
            "tests": f"{setup}\n" + "\n".join(tests) + "\n", "reference": str(row["code"]), "first_test": tests[0]}


def _mbpp_test_split(row: dict) -> bool:
    """The offline file holds all 974 problems; the standard test split is task ids 11-510."""
    return 11 <= int(row.get("task_id", 0)) <= 510


def code_prompt(doc: dict) -> str:
    template = HUMANEVAL_PROMPT if doc["entry_point"] else MBPP_PROMPT
    return template.format(prompt=doc["prompt"], first_test=doc["first_test"])


def _judge_pairs(pairs, rule: str):
    verdicts = check_code_many([(str(resp), doc) for resp, doc in pairs], progress=len(pairs) > 20, unclosed_think=rule)
    return [Judged(v.code or "", resp, v.passed, None, v.note) for (resp, _), v in zip(pairs, verdicts)]


def judge_code(resps, docs):
    """Filter: run every repeat's program in the sandbox, in parallel."""
    return judge_all(resps, docs, _judge_pairs)


def code_results(doc, results):
    return question_results(doc, results, judge_code, vote=False)


FAMILY = register_family(
    "code", schema=("id", "prompt", "entry_point", "setup", "tests", "reference", "first_test"), to_row=to_row,
    checker=check_code_many, hooks=(code_prompt, judge_code, code_results), unsafe_code=True, rank=2,
    benchmarks=[
        Benchmark("humaneval", "HumanEval", "appendix", "openai/openai_humaneval", None, "test",
                  "humaneval/HumanEval.jsonl.gz", 164),
        Benchmark("mbpp", "MBPP", "appendix", "google-research-datasets/mbpp", "full", "test", "mbpp/mbpp.jsonl", 500,
                  keep=_mbpp_test_split),
    ])
