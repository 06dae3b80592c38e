"""Mode ``budget`` (s1 budget forcing): prompts and sampling byte for byte on the scripted backend (a recording
subclass keeps every request it was handed), then a real run of the ``lm_eval`` CLI on SmolLM2 (hf backend).

Scripted tokens are words with their leading blanks (``backends._words``), so budgets below count words.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import LM_EVAL, run_cli
from inftythink_eval.backends.base import SamplingParams
from inftythink_eval.backends.scripted import ScriptedBackend
from inftythink_eval.engine.loop import Engine
from inftythink_eval.modes import ModeParams, Sample
from inftythink_eval.modes._base import seeded
from inftythink_eval.run.cache import CallCache

Q = "What is 6 times 7?"
END = "\n</think>\n\n"   # the default think_end
ANSWER = "The answer is \\boxed{42}."


class Recording(ScriptedBackend):
    """The scripted backend, keeping each request it serves (prompt and sampling parameters)."""

    def __init__(self, script):
        super().__init__(script)
        self.requests = []

    def submit(self, request):
        self.requests.append(request)
        return super().submit(request)


def run(script, params=ModeParams(think_tokens=100, answer_tokens=50), sample=None, cache=None):
    backend = Recording(script)
    sample = sample or Sample("s", Q, SamplingParams(max_tokens=1000, stop=("Question:",), seed=5))
    trace = Engine(backend, "budget", params, cache=cache, progress=False).run([sample])[0]
    return backend, trace


def answer_rule(output=ANSWER):  # call 2's prompt is the only one holding the closing marker
    return {"match": "</think>", "output": output}


def test_thinking_closed_early_is_stopped_at_the_marker_and_answered_in_a_second_call():
    backend, trace = run([answer_rule(), {"match": Q, "output": "<think>\nsix sevens\n</think>\n\nforty-two"}])
    first, second = backend.requests
    assert first.prompt == Q
    assert (first.params.max_tokens, first.params.stop) == (100, ("Question:", "</think>"))
    # the model's own marker and what it wrote after it are cut; the marker goes back in the default bytes
    assert trace.calls[0].output == "<think>\nsix sevens\n" and trace.calls[0].finish_reason == "stop"
    assert second.prompt == Q + "<think>\nsix sevens\n" + END
    assert (second.params.max_tokens, second.params.stop) == (50, ("Question:",))
    assert trace.final.answer == ANSWER and trace.final.reason == "done" and not trace.final.truncated
    totals = trace.totals()
    assert (totals.rounds, totals.calls) == (2, 2)
    assert totals.tok == trace.calls[0].output_tokens + trace.calls[1].output_tokens == 4 + 4  # "<think>" "\nsix" " sevens" "\n"


def test_thinking_cut_at_the_budget_is_closed_by_force():
    words = " ".join(f"w{i}" for i in range(1, 60))
    backend, trace = run([answer_rule(), {"match": Q, "output": "<think>\n" + words}],
                         ModeParams(think_tokens=10, answer_tokens=50))
    first = trace.calls[0]
    assert (first.finish_reason, first.output_tokens) == ("length", 10)
    assert first.output == "<think>\nw1 w2 w3 w4 w5 w6 w7 w8 w9"
    assert backend.requests[1].prompt == Q + "<think>\nw1 w2 w3 w4 w5 w6 w7 w8 w9" + END
    assert trace.final.answer == ANSWER and trace.totals().tok == 10 + 4 and trace.totals().rounds == 2


def test_a_direct_answer_is_final_after_one_call():
    backend, trace = run([answer_rule("never asked"), {"match": Q, "output": "It is 42."}])
    assert len(backend.requests) == 1 and trace.final.answer == "It is 42." and trace.final.reason == "done"
    assert (trace.totals().rounds, trace.totals().tok, trace.totals().truncated) == (1, 3, False)


def test_an_answer_without_thinking_cut_at_the_budget_is_forced_too():
    backend, trace = run([answer_rule(), {"match": Q, "output": "It is six times seven which is"}],
                         ModeParams(think_tokens=3, answer_tokens=50))
    assert trace.calls[0].finish_reason == "length"
    assert backend.requests[1].prompt == Q + "It is six" + END and trace.final.answer == ANSWER


def test_a_stop_inside_the_thinking_is_forced_to_answer():
    # EOS before any marker, thinking still open: s1 closes it and asks for the answer
    backend, trace = run([answer_rule(), {"match": Q, "output": "<think>\nhmm"}])
    assert len(trace.calls) == 2 and backend.requests[1].prompt == Q + "<think>\nhmm" + END


def test_thinking_opened_by_the_prompt_counts_as_open():
    # a chat template whose generation prompt opens <think> (R1-distill style): the output has no <think> of its own
    sample = Sample("s", Q, SamplingParams(max_tokens=1000), chat=True, gen_prefix="<think>\n")
    backend, trace = run([answer_rule(), {"match": Q, "output": "six sevens\n</think>\n\nforty-two"}], sample=sample)
    prompt1 = "<|user|>\nWhat is 6 times 7?\n<|assistant|>\n<think>\n"
    assert backend.requests[0].prompt == prompt1
    assert backend.requests[1].prompt == prompt1 + "six sevens\n" + END and trace.final.answer == ANSWER


def test_a_closed_think_in_the_prompt_is_not_open():
    # a template that closes an empty thinking block itself (a no-think mode): stopping is answering directly
    sample = Sample("s", Q, SamplingParams(max_tokens=1000), chat=True, gen_prefix="<think>\n\n</think>\n\n")
    backend, trace = run([{"match": Q, "output": "It is 42."}], sample=sample)
    assert len(backend.requests) == 1 and trace.final.answer == "It is 42."


def test_an_answer_cut_at_its_budget_is_truncated():
    backend, trace = run([answer_rule("one two three four five six seven"), {"match": Q, "output": "<think>\nx"}],
                         ModeParams(think_tokens=100, answer_tokens=5))
    assert backend.requests[1].params.max_tokens == 5
    assert (trace.calls[1].finish_reason, trace.calls[1].output_tokens) == ("length", 5)
    assert trace.final.answer == "one two three four five"
    assert trace.final.truncated and trace.final.reason == "length" and trace.totals().truncated


def test_the_answer_is_read_after_a_marker_written_again_in_the_answer():
    _, trace = run([answer_rule("more thoughts</think> 42"), {"match": Q, "output": "<think>\nx"}])
    assert trace.final.answer == " 42"


def test_custom_marker_and_s1_answer_prefix():
    params = ModeParams(think_tokens=100, answer_tokens=50, think_end="<|im_start|>answer\n", answer_prefix="Final Answer:")
    backend, trace = run([{"match": "Final Answer:", "output": " 42"},
                          {"match": Q, "output": "<think>\nsix sevens<|im_start|>answer\n42"}], params)
    assert backend.requests[0].params.stop == ("Question:", "<|im_start|>answer")   # the stripped marker
    assert backend.requests[1].prompt == Q + "<think>\nsix sevens" + "<|im_start|>answer\n" + "Final Answer:"
    assert trace.final.answer == " 42"


def test_a_marker_the_task_already_stops_at_is_not_doubled():
    sample = Sample("s", Q, SamplingParams(max_tokens=1000, stop=("</think>",)))
    backend, _ = run([answer_rule(), {"match": Q, "output": "<think>\nx"}], sample=sample)
    assert backend.requests[0].params.stop == ("</think>",)


def test_each_call_has_its_own_reproducible_seed():
    script = [answer_rule(), {"match": Q, "output": "<think>\nx"}]
    seeds = [[r.params.seed for r in run(script)[0].requests] for _ in range(2)]
    base = SamplingParams(max_tokens=1, seed=5)
    assert seeds[0] == seeds[1] == [seeded(base, 0).seed, seeded(base, 1).seed]
    assert len(set(seeds[0])) == 2 and 5 not in seeds[0]
    unseeded = Sample("s", Q, SamplingParams(max_tokens=1000))
    assert [r.params.seed for r in run(script, sample=unseeded)[0].requests] == [None, None]


def test_a_rerun_is_restored_from_the_call_cache(tmp_path):
    script = [answer_rule(), {"match": Q, "output": "<think>\nx"}]
    _, first = run(script, cache=CallCache(tmp_path))
    backend, again = run(script, cache=CallCache(tmp_path))
    assert backend.requests == [] and all(c.cached for c in again.calls)
    assert [c.prompt for c in again.calls] == [c.prompt for c in first.calls] and again.final == first.final


def test_a_blank_marker_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="think_end must hold a marker"):
        ModeParams(think_end="  ")


# --- engine_budget=true: one call, the budget kept by the backend (vLLM's thinking_token_budget) ---------------
OPEN = Sample("s", Q, SamplingParams(max_tokens=1000, stop=("Question:",), seed=5), chat=True, gen_prefix="<think>\n")
WORDS = " ".join(f"w{i}" for i in range(1, 60))


def test_one_call_keeps_the_budget_on_the_engine_and_answers_as_the_two_call_rule():
    script = [answer_rule(), {"match": Q, "output": WORDS + "\n</think>\n\nnever reached"}]
    _, two = run(script, ModeParams(think_tokens=10, answer_tokens=50), sample=OPEN)
    backend, one = run(script, ModeParams(think_tokens=10, answer_tokens=50, engine_budget=True), sample=OPEN)
    (request,) = backend.requests
    assert request.params.think_budget == 10 and request.params.think_marks == ("<think>", END)
    assert request.params.max_tokens == 10 + backend.count_tokens(END) + 50 and "</think>" not in request.params.stop
    assert request.params.seed == seeded(OPEN.params, 0).seed
    (call,) = one.calls
    assert call.output == two.calls[0].output + END + two.calls[1].output    # cut at B, forced end, the answer
    assert one.final.answer == two.final.answer == ANSWER and one.final.reason == "done"
    # TOK counts the forced end's tokens too (scripted words: its blank line joins the answer's first word)
    assert (one.totals().rounds, one.totals().tok) == (1, call.output_tokens) and call.output_tokens == 10 + 1 + 4


def test_one_call_leaves_a_thinking_closed_within_the_budget_alone():
    script = [answer_rule("not asked"), {"match": Q, "output": "six sevens</think> forty-two"}]
    backend, one = run(script, ModeParams(think_tokens=10, answer_tokens=50, engine_budget=True), sample=OPEN)
    assert len(backend.requests) == 1 and one.final.answer == " forty-two"   # after the model's own close


def test_one_call_answer_prefix_is_part_of_the_forced_end_and_a_cut_answer_is_truncated():
    params = ModeParams(think_tokens=3, answer_tokens=2, answer_prefix="Final Answer:", engine_budget=True)
    backend, one = run([{"match": "Final Answer:", "output": " four two and more"}, {"match": Q, "output": WORDS}],
                       params, sample=OPEN)
    assert backend.requests[0].params.think_marks == ("<think>", END + "Final Answer:")
    assert one.final.truncated and one.final.reason == "length" and one.final.answer == " four two"


def test_engine_budget_on_a_backend_without_one_is_refused_before_loading(tmp_path):
    from inftythink_eval.lmeval.model import InftyThinkLM

    with pytest.raises(ValueError, match="engine_budget=true needs a backend that keeps a thinking budget itself"):
        InftyThinkLM(pretrained=str(tmp_path / "no-such-model"), backend="hf", mode="budget", engine_budget=True)


def test_one_call_and_two_calls_through_the_lm_eval_cli_on_the_scripted_backend(tmp_path, mini_task):
    """The path a user takes: the same answers from ``engine_budget=true`` (one call per sample) as from the
    two-call rule, on a task whose prompt opens the thinking (lm-eval's ``gen_prefix``)."""
    yaml = mini_task / "itt_mini.yaml"
    yaml.write_text(yaml.read_text().replace("output_type:", 'gen_prefix: "<think>\\n"\noutput_type:'))
    rules = tmp_path / "rules.jsonl"
    rules.write_text("\n".join(json.dumps(r) for r in [answer_rule(), {"match": "", "output": WORDS}]))

    def lm_eval(name: str, extra: str) -> tuple[list, list]:
        out = tmp_path / name
        args = f"pretrained=scripted,backend=scripted,script={rules},mode=budget,think_tokens=6,answer_tokens=20{extra}"
        run_cli([*LM_EVAL, "--model", "inftythink", "--model_args", args, "--tasks", "itt_mini", "--include_path",
                 str(mini_task), "--limit", "3", "--apply_chat_template", "--output_path", str(out), "--log_samples"])
        traces = [json.loads(l) for f in out.rglob("inftythink_traces_*.jsonl") for l in f.read_text().splitlines()]
        rows = [json.loads(l) for f in out.rglob("samples_itt_mini_*.jsonl") for l in f.read_text().splitlines()]
        return sorted((t["doc_id"], len(t["calls"])) for t in traces), sorted((r["doc_id"], r["resps"]) for r in rows)

    two_calls, two = lm_eval("two", "")
    one_call, one = lm_eval("one", ",engine_budget=true")
    assert [n for _, n in two_calls] == [2, 2, 2] and [n for _, n in one_call] == [1, 1, 1]
    assert one == two and all(resps == [[ANSWER]] for _, resps in one)


# --- the real path: lm_eval CLI, SmolLM2 on the hf backend --------------------------------------------------
B, A = 32, 16


def test_real_lm_eval_run_on_smollm2(tmp_path, smollm2, data_dir):
    out = tmp_path / "out"
    args = f"pretrained={smollm2},backend=hf,mode=budget,think_tokens={B},answer_tokens={A}"
    run_cli([*LM_EVAL, "--model", "inftythink", "--model_args", args, "--tasks", "inftythink_math500", "--limit", "2",
             "--apply_chat_template", "--gen_kwargs", "temperature=0", "--output_path", str(out), "--log_samples"],
            env={"INFTYTHINK_DATA_DIR": str(data_dir)}, timeout=1200)
    folder = next(p for p in Path(out).iterdir() if p.is_dir())
    traces = [json.loads(l) for f in folder.glob("inftythink_traces_*.jsonl") for l in f.read_text().splitlines()]
    samples = [json.loads(l) for l in next(folder.glob("samples_inftythink_math500_*.jsonl")).read_text().splitlines()]
    run_record = json.loads(next(folder.glob("inftythink_run_*.json")).read_text())
    assert run_record["mode"] == "budget" and len(traces) == len(samples) == 2
    assert run_record["mode_params"]["think_tokens"] == B and run_record["mode_params"]["answer_tokens"] == A
    forced = 0
    for trace in traces:
        calls = trace["calls"]
        first = calls[0]
        assert 0 < first["output_tokens"] <= B and "</think>" not in first["output"]
        if len(calls) == 2:
            forced += 1
            assert calls[1]["prompt"] == first["prompt"] + first["output"] + END
            assert 0 < calls[1]["output_tokens"] <= A
        else:  # answered directly: stopped before the budget with no thinking open
            assert len(calls) == 1 and first["finish_reason"] == "stop"
        assert trace["totals"]["tok"] == sum(c["output_tokens"] for c in calls)
        assert trace["totals"]["rounds"] == len(calls)
    assert forced >= 1, "SmolLM2 writes more than 32 tokens on a MATH500 problem: its thinking must be forced closed"
    by_doc = {t["doc_id"]: t for t in traces}
    for s in samples:  # what lm-eval scored is the last call's output (no </think> in it: the whole text)
        trace = by_doc[s["doc_id"]]
        assert s["resps"][0][0] == trace["calls"][-1]["output"] and s["rounds"] == len(trace["calls"])
