"""Every lm-eval task shape under ``--model inftythink``, through the real ``lm_eval`` CLI.

The fixture tasks (``tests/fixtures/compat/``) are small: four rows, one shape each. The ``scripted``
backend gives exact control (outputs per prompt, loglikelihood = -(words of the continuation), a
word-level tokenizer and a visible chat template ``<|role|>\\ncontent\\n``); the real SmolLM2 on ``hf``
checks what a scripted model cannot show: sampling, and lm-eval's own ``hf`` model as the reference (the same
rows under ``--model hf`` give the same greedy outputs and choice log-likelihoods).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest

from conftest import LM_EVAL, ROOT, run_cli

FIXTURES = ROOT / "tests" / "fixtures" / "compat"
ROWS = [json.loads(line) for line in (FIXTURES / "qa.jsonl").read_text().splitlines()]


@pytest.fixture()
def compat_tasks(tmp_path: Path) -> Path:
    """The fixture task folder with the data path filled in."""
    folder = tmp_path / "compat_tasks"
    folder.mkdir()
    for src in FIXTURES.glob("*.in"):
        text = src.read_text().replace("@QA@", str(FIXTURES / "qa.jsonl"))
        (folder / src.name[:-len(".in")]).write_text(text)
    return folder


def run(tmp_path: Path, tasks: Path, task: str, model_args: str, *extra: str, model: str = "inftythink"):
    """One ``lm_eval`` run; returns (results JSON, samples of ``task``, the process)."""
    out = tmp_path / f"out_{task}_{model}"
    proc = run_cli([*LM_EVAL, "--model", model, "--model_args", model_args, "--tasks", task, "--include_path",
                    str(tasks), "--output_path", str(out), "--log_samples", *extra])
    folder = next(p for p in out.iterdir() if p.is_dir())
    results = json.loads(max(folder.glob("results_*.json")).read_text())
    return results, samples_of(folder, task), proc


def samples_of(folder: Path, task: str) -> list[dict]:
    samples = [json.loads(l) for l in max(folder.glob(f"samples_{task}_*.jsonl")).read_text().splitlines()]
    return sorted(samples, key=lambda s: s["doc_id"])


def script(tmp_path: Path, rules: list[dict], name: str = "script.jsonl") -> str:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rules))
    return str(path)


def scripted(tmp_path: Path, rules: list[dict], **more: str) -> str:
    args = {"pretrained": "scripted", "backend": "scripted", "mode": "vanilla", "script": script(tmp_path, rules), **more}
    return ",".join(f"{k}={v}" for k, v in args.items())


# --- generate_until -------------------------------------------------------------------------------------------
def test_exact_match_without_filter(tmp_path, compat_tasks):
    """lm-eval casts the gold answer with ``type(result)(gold)``: that must build a SampleOutput."""
    rules = [{"match": r["question"], "output": r["answer"] if i < 3 else "13"} for i, r in enumerate(ROWS)]
    results, samples, _ = run(tmp_path, compat_tasks, "compat_em", scripted(tmp_path, rules))
    assert results["results"]["compat_em"]["exact_match,none"] == 0.75
    assert [s["exact_match"] for s in samples] == [1.0, 1.0, 1.0, 0.0]


def test_bypass_metric(tmp_path, compat_tasks):
    rules = [{"match": "", "output": "whatever"}]
    results, samples, _ = run(tmp_path, compat_tasks, "compat_bypass", scripted(tmp_path, rules))
    assert "bypass,none" in results["results"]["compat_bypass"]
    assert [s["resps"][0][0] for s in samples] == ["whatever"] * 4


def test_repeats_with_take_first_and_majority_vote(tmp_path, compat_tasks):
    """Three repeats per question, scripted in turn; the filters see all three, in order."""
    outs = {0: ["The answer is 4", "The answer is 5", "The answer is 4"],   # first right, vote right
            1: ["The answer is 1", "The answer is 7", "The answer is 7"],   # first wrong, vote right
            2: ["The answer is 9", "The answer is 3", "The answer is 3"],   # first right, vote wrong
            3: ["no idea", "The answer is 11", "The answer is 11"]}         # first unparsed, vote wrong
    rules = [{"match": r["question"], "outputs": outs[i]} for i, r in enumerate(ROWS)]
    results, samples, _ = run(tmp_path, compat_tasks, "compat_filters", scripted(tmp_path, rules))
    metrics = results["results"]["compat_filters"]
    assert metrics["exact_match,first"] == 0.5 and metrics["exact_match,vote"] == 0.5
    by_filter = {(s["doc_id"], s["filter"]): s for s in samples}
    assert [by_filter[d, "first"]["exact_match"] for d in range(4)] == [1.0, 0.0, 1.0, 0.0]
    assert [by_filter[d, "vote"]["exact_match"] for d in range(4)] == [1.0, 1.0, 0.0, 0.0]
    assert by_filter[1, "vote"]["resps"][0] == outs[1]  # all three repeats reached the filters, in order


# --- loglikelihood --------------------------------------------------------------------------------------------
def test_multiple_choice_and_rolling_loglikelihood(tmp_path, compat_tasks):
    """The scripted loglikelihood is -(words of the continuation): the shortest choice wins, and a text's
    word perplexity is exactly e."""
    results, samples, _ = run(tmp_path, compat_tasks, "compat_mc", scripted(tmp_path, [{"match": "", "output": ""}]))
    assert results["results"]["compat_mc"]["acc,none"] == 0.75  # row 3's label is not the shortest choice
    assert [float(r[0][0]) for r in samples[0]["resps"]] == [-1.0, -3.0, -4.0]
    results, _, _ = run(tmp_path, compat_tasks, "compat_rolling", scripted(tmp_path, [{"match": "", "output": ""}]))
    assert results["results"]["compat_rolling"]["word_perplexity,none"] == pytest.approx(math.e)


def test_multiple_choice_under_chat_template_scores_the_rendered_prompt(tmp_path, compat_tasks):
    """With --apply_chat_template lm-eval asks the model to render the chat and scores each choice after it:
    the context in the samples is the chat-templated prompt, not an internal marker."""
    results, samples, _ = run(tmp_path, compat_tasks, "compat_mc", scripted(tmp_path, [{"match": "", "output": ""}]),
                              "--apply_chat_template")
    context = samples[0]["arguments"]["gen_args_0"]["arg_0"]
    assert context == f"<|user|>\nQ: {ROWS[0]['question']}\nA:\n<|assistant|>\n"
    assert results["results"]["compat_mc"]["acc,none"] == 0.75


# --- chat templates, few-shot turns, gen_prefix, system instruction -------------------------------------------
def test_multiturn_fewshot_gen_prefix_and_system_instruction(tmp_path, compat_tasks):
    """Each few-shot example stays a user turn and an assistant turn; the system instruction is a system
    message; the prompt ends with the open assistant turn and lm-eval's gen_prefix; the samples JSONL shows
    exactly the prompt the model got."""
    log = tmp_path / "calls.jsonl"
    rules = [{"match": "", "output": "4"}]
    results, samples, _ = run(tmp_path, compat_tasks, "compat_chat", scripted(tmp_path, rules, call_log=str(log)),
                              "--apply_chat_template", "--fewshot_as_multiturn", "--system_instruction", "Be brief.")
    prompts = {json.loads(l)["prompt"] for l in log.read_text().splitlines()}
    first = next(p for p in prompts if p.endswith(f"Q: {ROWS[0]['question']}\n<|assistant|>\nAnswer:"))
    assert first.startswith("<|system|>\nBe brief.\n<|user|>\nQ: What is 3+4?")
    assert first.count("<|user|>") == 3 and first.count("<|assistant|>") == 3
    assert "<|assistant|>\nAnswer: 7\n<|user|>\nQ: What is 5+4?" in first
    assert {s["arguments"]["gen_args_0"]["arg_0"] for s in samples} == prompts
    assert results["results"]["compat_chat"]["exact_match,none"] == 0.25  # "4" is right for the first row only


def test_iterative_rounds_keep_the_fewshot_turns(tmp_path, compat_tasks):
    """summarize mode renders round 2 from the same messages: few-shot turns and gen_prefix included."""
    log = tmp_path / "calls.jsonl"
    rules = [{"match": "half done", "output": "4"},            # round 2: its user turn carries the summary
             {"match": "a b c d", "output": "half done"},      # the summary call sees round 1's reasoning
             {"match": "", "output": "a b c d e f g h i j"}]   # round 1: cut at eta=4 words
    args = scripted(tmp_path, rules, call_log=str(log), mode="summarize", eta=4, max_rounds=2)
    run(tmp_path, compat_tasks, "compat_chat", args, "--apply_chat_template", "--fewshot_as_multiturn", "--limit", "1")
    calls = [json.loads(l)["prompt"] for l in log.read_text().splitlines()]
    assert len(calls) == 3, calls
    last = calls[-1]
    assert "half done" in last and last.count("<|user|>") == 3 and last.endswith("<|assistant|>\nAnswer:"), last
    assert "<|assistant|>\nAnswer: 7\n<|user|>" in last


# --- lm-eval's own hf model as the reference; what lm-eval records about the model ---------------------------
def test_greedy_vanilla_gives_lm_evals_hf_outputs_and_the_chat_template_is_recorded(tmp_path, compat_tasks, smollm2):
    """The same SmolLM2 on the same rows, chat-templated, one request at a time on both sides (greedy text is not
    exact across batch sizes): vanilla inftythink on ``backend=hf`` writes what ``lm_eval --model hf`` writes,
    stop string included, and ranks the choices as it does.  lm-eval records the chat template and its hash."""
    from transformers import AutoTokenizer

    common = ["--tasks", "compat_em,compat_mc", "--include_path", str(compat_tasks), "--apply_chat_template",
              "--log_samples"]
    folders = {}
    for model, args in (("hf", [f"pretrained={smollm2}", "--device", "cpu", "--batch_size", "1"]),
                        ("inftythink", [f"pretrained={smollm2},backend=hf,mode=vanilla,batch_size=1"])):
        out = tmp_path / model
        run_cli([*LM_EVAL, "--model", model, "--model_args", *args, *common, "--output_path", str(out)])
        folders[model] = next(p for p in out.iterdir() if p.is_dir())
    ours, ref = ({t: samples_of(folders[m], t) for t in ("compat_em", "compat_mc")} for m in ("inftythink", "hf"))
    texts = [s["resps"][0][0] for s in ours["compat_em"]]
    assert texts == [s["resps"][0][0] for s in ref["compat_em"]]
    assert len(set(texts)) == 4 and all(len(t.split()) > 1 and "\n" not in t for t in texts), texts
    # lm-eval's hf moves the context's trailing whitespace (the "\n" after the assistant header) into the
    # continuation, so its log-likelihoods carry that one near-certain token more: equal within 0.01
    for mine, theirs in zip(ours["compat_mc"], ref["compat_mc"]):
        lls = [float(r[0][0]) for r in mine["resps"]]
        assert lls == pytest.approx([float(r[0][0]) for r in theirs["resps"]], abs=0.01)
        assert mine["acc"] == theirs["acc"]
    template = AutoTokenizer.from_pretrained(smollm2).chat_template
    results = json.loads(max(folders["inftythink"].glob("results_*.json")).read_text())
    assert results["chat_template"] == template
    assert results["chat_template_sha"] == hashlib.sha256(template.encode()).hexdigest()
    assert ours["compat_em"][0]["arguments"]["gen_args_0"]["arg_0"].startswith("<|im_start|>")


# --- sampling parameters --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_do_sample_without_temperature_samples_and_top_k_is_applied(tmp_path, compat_tasks, smollm2):
    """do_sample=True with no temperature samples at 1.0 (three repeats differ); top_k=1 then makes every
    repeat the greedy output. An unknown gen_kwargs key is reported once."""
    args = f"pretrained={smollm2},backend=hf,mode=vanilla"
    _, samples, _ = run(tmp_path, compat_tasks, "compat_sampling", args, "--limit", "2")
    assert any(len(set(s["resps"][0])) > 1 for s in samples), [s["resps"] for s in samples]
    _, samples, proc = run(tmp_path / "k", compat_tasks, "compat_sampling", args, "--limit", "2",
                           "--gen_kwargs", "top_k=1,typical_p=0.5")
    assert all(len(set(s["resps"][0])) == 1 for s in samples), [s["resps"] for s in samples]
    assert proc.stderr.count("ignores gen_kwargs ['typical_p']") == 1, proc.stderr[-3000:]


# --- lm-eval's response cache ---------------------------------------------------------------------------------
def test_use_cache_is_refused_with_the_way_to_cache(tmp_path, compat_tasks):
    """lm-eval's --use_cache keys responses by prompt only: a vanilla run's outputs would be served to a
    summarize run. It fails before any generation and names model_args cache_dir."""
    import subprocess

    log = tmp_path / "calls.jsonl"
    cmd = [*LM_EVAL, "--model", "inftythink", "--model_args", scripted(tmp_path, [{"match": "", "output": "4"}],
           call_log=str(log)), "--tasks", "compat_em", "--include_path", str(compat_tasks),
           "--use_cache", str(tmp_path / "lm_cache")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode != 0 and "cache_dir=DIR" in done.stderr, done.stderr[-2000:]
    assert not log.exists(), "nothing should be generated"
