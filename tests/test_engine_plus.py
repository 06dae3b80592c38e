"""InftyThink+ mode on the scripted backend with real chat templates: every round's prompt byte for byte,
the verdict table, the format strings shared with the data builder, and train = eval rendering."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from inftythink_eval.formats import plus as P
from inftythink_eval.backends.base import SamplingParams
from inftythink_eval.backends.scripted import ScriptedBackend
from inftythink_eval.engine.loop import Engine
from inftythink_eval.checkpoints.fetch import smollm2_folder
from inftythink_eval.modes import ModeParams, Sample

Q = "What is 6 times 7?"
SMOL_HEAD = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
# R1-Distill-Qwen style (Qwen2 tokenizer): newer revisions open <think> in the generation prompt, older ones do not.
R1_TEMPLATE = ("{{ '<｜begin▁of▁sentence｜>' }}{% for m in messages %}{% if m['role'] == 'system' %}{{ m['content'] }}"
               "{% endif %}{% endfor %}{% for m in messages %}{% if m['role'] == 'user' %}{{ '<｜User｜>' + m['content'] }}"
               "{% elif m['role'] == 'assistant' %}{{ '<｜Assistant｜>' + m['content'] + '<｜end▁of▁sentence｜>' }}"
               "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<｜Assistant｜>OPENER' }}{% endif %}")
R1_NEW, R1_OLD = R1_TEMPLATE.replace("OPENER", "<think>\\n"), R1_TEMPLATE.replace("OPENER", "")
# Gemma style: no system role at all.
NO_SYSTEM = ("{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
             "{% endif %}{{ '<start_of_turn>' + m['role'] + '\\n' + m['content'] + '<end_of_turn>\\n' }}{% endfor %}"
             "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}")


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_folder())


class TemplatedScripted(ScriptedBackend):
    """The registered scripted backend, rendering chats with a real tokenizer's chat template (or a given one)."""

    def __init__(self, script, tokenizer, chat_template=None, **kwargs):
        super().__init__(script, **kwargs)
        self.tokenizer, self.chat_template = tokenizer, chat_template

    def apply_chat_template(self, messages, add_generation_prompt=True):
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt,
                                                  chat_template=self.chat_template)


def plus_out(think: str, summary: str) -> str:
    return f"<think>\n{think}\n</think><summary>\n{summary}\n</summary>"


THREE = [{"match": "<history>\nS2 progress\n</history>", "output": "<think>\nfinish it\n</think>\nThe answer is \\boxed{42}.\n"},
         {"match": "<history>\nS1 progress\n</history>", "output": plus_out("second part", "S2 progress")},
         {"match": "", "output": plus_out("first part", "S1 progress")}]


def run(backend, params=ModeParams(), system=None, max_tokens=1000):
    engine = Engine(backend, "inftythink_plus", params, progress=False)
    return engine.run([Sample("s", Q, SamplingParams(max_tokens=max_tokens), system=system)])[0]


# --- golden prompts ------------------------------------------------------------
def test_smollm2_prompts_every_round(tokenizer):
    trace = run(TemplatedScripted(THREE, tokenizer))
    user = f"<|im_start|>user\n{Q}<|im_end|>\n<|im_start|>assistant\n"
    assert [c.prompt for c in trace.calls] == [
        SMOL_HEAD + user,
        SMOL_HEAD + user + "<history>\nS1 progress\n</history>",
        SMOL_HEAD + user + "<history>\nS2 progress\n</history>",  # replaced, never accumulated
    ]
    assert trace.final.answer == "The answer is \\boxed{42}." and trace.final.reason == "done"
    assert trace.totals().rounds == 3 and not trace.totals().truncated


def test_smollm2_system_instruction_is_a_system_message(tokenizer):
    trace = run(TemplatedScripted(THREE, tokenizer), system="Be brief.")
    assert trace.calls[1].prompt == ("<|im_start|>system\nBe brief.<|im_end|>\n"
                                     f"<|im_start|>user\n{Q}<|im_end|>\n<|im_start|>assistant\n"
                                     "<history>\nS1 progress\n</history>")


@pytest.mark.parametrize("template", [R1_NEW, R1_OLD], ids=["opens-think", "no-think"])
def test_r1_distill_prompts_every_round_with_the_think_opener_cut(tokenizer, template):
    """The history goes where the assistant turn starts, before <think>, as in the training rows."""
    trace = run(TemplatedScripted(THREE, tokenizer, template), system="Be brief.")
    head = f"<｜begin▁of▁sentence｜>Be brief.<｜User｜>{Q}<｜Assistant｜>"
    assert [c.prompt for c in trace.calls] == [
        head, head + "<history>\nS1 progress\n</history>", head + "<history>\nS2 progress\n</history>"]
    assert trace.final.answer == "The answer is \\boxed{42}."


def test_template_without_a_system_role_gets_the_system_text_in_the_user_turn(tokenizer):
    trace = run(TemplatedScripted(THREE, tokenizer, NO_SYSTEM), system="Be brief.")
    assert trace.calls[1].prompt == (f"<start_of_turn>user\nBe brief.\n\n{Q}<end_of_turn>\n<start_of_turn>model\n"
                                     "<history>\nS1 progress\n</history>")


@pytest.mark.parametrize("template", [None, R1_NEW], ids=["smollm2", "r1-distill"])
def test_a_training_row_renders_as_the_eval_prompt_then_the_models_output(tokenizer, template):
    """train = eval: the chat template over a cold-start row is iteration 2's prompt followed by what the model
    must write (think, then summary), so the data builder and this mode cannot drift apart."""
    backend = TemplatedScripted(THREE, tokenizer, template)
    prompts = [c.prompt for c in run(backend).calls]
    row = P.training_messages(Q, "second part", history="S1 progress", summary="S2 progress")
    rendered = tokenizer.apply_chat_template(row, tokenize=False, chat_template=template)
    assert rendered.startswith(prompts[1])
    assert rendered[len(prompts[1]):].startswith(plus_out("second part", "S2 progress"))
    masked = [rendered[a:b] for a, b in P.history_spans(rendered)]
    assert masked == ["<history>\nS1 progress\n</history>"]


# --- verdicts ------------------------------------------------------------------
WORDS = " ".join(["w"] * 50)
VERDICTS = [  # (id, output, round_tokens, reason, truncated, format_fail, answer)
    ("conclusion", "<think>\nx\n</think>\nIt is 42.\n", 100, "done", False, 0, "It is 42."),
    ("conclusion-cut", f"<think>\nx\n</think>\nIt is {WORDS}", 6, "length", True, 0, "It is w"),
    ("cut-while-thinking", f"<think>\n{WORDS}", 10, "length", True, 0, "<think>\n" + " ".join(["w"] * 9)),
    ("stopped-without-think-close", "<think>\nI give up", 100, "format", False, 1, "<think>\nI give up"),
    ("no-think-at-all", "42", 100, "format", False, 1, "42"),
    ("cut-inside-summary", plus_out("a b", "one two three four five six"), 6, "format", True, 1, "<summary>\none two"),
    ("blank-summary", "<think>\na\n</think><summary>\n \n</summary>", 100, "format", False, 1, "<summary>\n \n</summary>"),
    ("text-after-summary", plus_out("a", "S") + "\nmore", 100, "format", False, 1, "<summary>\nS\n</summary>\nmore"),
]


@pytest.mark.parametrize("output,round_tokens,reason,truncated,format_fail,answer",
                         [v[1:] for v in VERDICTS], ids=[v[0] for v in VERDICTS])
def test_verdict_of_one_iteration(output, round_tokens, reason, truncated, format_fail, answer):
    trace = run(ScriptedBackend([{"match": "", "output": output}]), ModeParams(round_tokens=round_tokens))
    assert len(trace.calls) == 1 and trace.calls[0].output_tokens <= round_tokens
    assert (trace.final.reason, trace.totals().truncated, trace.totals().format_fail) == (reason, truncated, format_fail)
    assert trace.final.answer == answer


def test_iteration_cap_ends_an_endless_sample():
    trace = run(ScriptedBackend([{"match": "", "output": plus_out("again", "S")}]), ModeParams(max_rounds=3))
    assert trace.totals().rounds == 3 and trace.final.reason == "max_rounds" and trace.totals().truncated
    assert trace.final.answer == "" and trace.calls[2].prompt.endswith("<history>\nS\n</history>")


def test_the_mode_keeps_only_its_own_parameters():
    engine = Engine(ScriptedBackend(), "inftythink_plus", ModeParams(max_rounds=4, eta=99), progress=False)
    assert dataclasses.asdict(engine.mode.params) == {"max_rounds": 4, "round_tokens": 8192}


# --- format strings (shared with the data builder) ------------------------------
# sha256 of the recipe's files, byte for byte (no trailing newline): github.com/ZJU-REAL/InftyThink-Plus at
# commit 8fd69abea29874ae4078e4fed1572f471a588f29, cold-start/prompt/step1.txt (717 bytes) and step2.txt (785 bytes)
STEP1_SHA256 = "c0077ba09d72f7e34d2453960e3ca2ffd071c4e8fff5558034f664cc83a64276"
STEP2_SHA256 = "370519567110286c324d275c81eeae66c10d40361c8ad12b94c0c721080ac43a"


def test_summary_prompts_are_the_recipes_bytes():
    """cold-start/prompt/step1.txt and step2.txt, every byte (a changed word anywhere changes the hash)."""
    assert hashlib.sha256(P.SUMMARY_PROMPT_FIRST.encode()).hexdigest() == STEP1_SHA256
    assert hashlib.sha256(P.SUMMARY_PROMPT_LATER.encode()).hexdigest() == STEP2_SHA256


def test_summary_chats_first_and_later_spans():
    assert [m["role"] for m in P.summary_chat_plus("q", "span")] == ["user", "assistant", "user"]
    assert P.summary_chat_plus("q", "span")[2]["content"] == P.SUMMARY_PROMPT_FIRST
    later = P.summary_chat_plus("q", "span 2", previous_summary="s1")
    assert [(m["role"], m["content"]) for m in later] == [
        ("user", "q"), ("assistant", "s1"),
        ("user", "Please continue your reasoning based on your past reasoning history."),
        ("assistant", "span 2"), ("user", P.SUMMARY_PROMPT_LATER)]


def test_assistant_turns_of_training_rows():
    assert P.assistant_turn("r", summary="s") == "<think>\nr\n</think><summary>\ns\n</summary>"
    assert P.assistant_turn("r", history="h", conclusion="42") == "<history>\nh\n</history><think>\nr\n</think>\n42\n"
    with pytest.raises(ValueError, match="exactly one of summary"):
        P.assistant_turn("r")
    assert P.DEFAULT_PLUS_ETA == 6000 and P.HISTORY_LOSS_PATTERN == "<history>.+</history>"


def test_parse_round_trips_the_builders_turns():
    parsed = P.parse_iteration(P.assistant_turn("line 1\n\nline 2\n", summary="* a\n* b"))
    assert (parsed.kind, parsed.think, parsed.summary) == (P.SUMMARY, "line 1\n\nline 2\n", "* a\n* b")
    parsed = P.parse_iteration(P.assistant_turn("r", conclusion="\\boxed{7}"))
    assert (parsed.kind, parsed.conclusion) == (P.CONCLUSION, "\\boxed{7}")


# --- one-file modes ----------------------------------------------------------------
NEW_MODE = '''
"""Mode ``echo_twice``: a mode that lives in this one file and nowhere else."""
from dataclasses import dataclass
from typing import Any

from inftythink_eval.modes._base import Param, register, seeded
from inftythink_eval.run.trace import REASON, Call, Final


@register("echo_twice", (Param("times", int, 2, "calls per sample", 1, key=True),), rank=99)
@dataclass(frozen=True)
class EchoTwice:
    tools: Any
    params: Any = None

    def next_call(self, sample, calls):
        if len(calls) < self.params.times:
            return Call(REASON, self.tools.render(sample, sample.question), seeded(sample.params, len(calls)))
        return Final(calls[-1].output)
'''

USE_IT = '''
import dataclasses, importlib.util, sys
spec = importlib.util.find_spec("inftythink_eval.modes")
spec.submodule_search_locations.append(sys.argv[1])  # as if echo_twice.py sat in inftythink_eval/modes/
package = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = package
spec.loader.exec_module(package)

from inftythink_eval.backends.base import SamplingParams
from inftythink_eval.backends.scripted import ScriptedBackend
from inftythink_eval.lmeval.config import parse
from inftythink_eval.engine.loop import Engine
from inftythink_eval.modes import Sample

config = parse({"backend": "scripted", "mode": "echo_twice", "times": "3"})
engine = Engine(ScriptedBackend([{"match": "", "output": "hi"}]), config.mode, config.mode_params(), progress=False)
trace = engine.run([Sample("s", "Q?", SamplingParams(max_tokens=5))])[0]
print(len(trace.calls), trace.final.answer, dataclasses.asdict(engine.mode.params))
try:
    parse({"backend": "scripted", "mode": "nope"})
except ValueError as err:
    print(err)
try:
    parse({"backend": "scripted", "times": "0"})
except ValueError as err:
    print(err)
'''


def test_a_new_mode_is_one_module(tmp_path):
    """Adding a mode is adding its module: model_args keys, coercion, checks, the mode list and the engine
    follow from its declarations, with no edit to config.py, the engine or the leaderboard."""
    import subprocess
    import sys

    (tmp_path / "echo_twice.py").write_text(NEW_MODE)
    (tmp_path / "use_it.py").write_text(USE_IT)
    proc = subprocess.run([sys.executable, str(tmp_path / "use_it.py"), str(tmp_path)], capture_output=True, text=True,
                          timeout=600)  # bounds a hang only
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[0] == "3 hi {'times': 3}"
    assert "valid modes are vanilla, inftythink, summarize, delethink, budget, inftythink_plus, echo_twice" in lines[1]
    assert lines[2] == "times must be >= 1, got 0"


def test_every_documented_model_args_key_still_works():
    from inftythink_eval.lmeval.config import parse

    old = {"max_rounds": "3", "round_tokens": "64", "retry": "true", "max_retries": "2", "user_role": "<|U|>",
           "assistant_role": "<|A|>", "eta": "32", "summary_tokens": "16", "summary_temperature": "0.3",
           "chunk": "40", "carryover": "30", "keep_head": "5", "max_chunks": "4",
           "think_tokens": "48", "answer_tokens": "16", "think_end": "</think>", "answer_prefix": "Final Answer:",
           "engine_budget": "true"}
    params = parse({"backend": "scripted", **old}).mode_params()
    assert dataclasses.asdict(params) == {"max_rounds": 3, "round_tokens": 64, "retry": True, "max_retries": 2,
                                          "user_role": "<|U|>", "assistant_role": "<|A|>", "eta": 32,
                                          "summary_tokens": 16, "summary_temperature": 0.3, "chunk": 40,
                                          "carryover": 30, "keep_head": 5, "max_chunks": 4,
                                          "think_tokens": 48, "answer_tokens": 16, "think_end": "</think>",
                                          "answer_prefix": "Final Answer:", "engine_budget": True}
