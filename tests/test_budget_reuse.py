"""One generation for every vanilla budget (``derive_budgets``, ``inftythink sweep``'s default).

The rule (``run/budgets.py``) on hand-made cache entries; the cache keeps a call's family and budget across a
reopen; through the real ``inftythink sweep`` and ``lm_eval`` CLIs, smaller vanilla budgets make no generation
call and give byte for byte the outputs and scores of the same budget run on its own, on the ``scripted``
backend and on the real SmolLM2 (``hf``); ``--no-reuse`` runs every budget.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from inftythink_eval.backends.base import Completion, Request, SamplingParams
from inftythink_eval.cli import main
from inftythink_eval.results.store import Store
from inftythink_eval.run import budgets
from inftythink_eval.run.cache import CallCache, decode_times, encode_times, family_key
from test_leaderboard_fixtures import REPO, model_args, task_dir, write_script

WORDS = {1: "a", 2: " b", 3: " c", 4: " d", 5: " e", 9: "<eos>"}


def text_of(ids) -> str:
    return "".join(WORDS[i] for i in ids if i != 9)


def entry(ids, text=None, finish="length", max_tokens=8, token_ms=None, latency=2.5) -> dict:
    return {"text": text_of(ids) if text is None else text, "output_ids": list(ids), "output_tokens": len(ids),
            "prompt_tokens": 7, "finish_reason": finish, "max_tokens": max_tokens, "latency": latency,
            "token_ms": token_ms}


def greedy(budget: int, stop=()) -> SamplingParams:
    return SamplingParams(max_tokens=budget, stop=tuple(stop))


# --- the rule -------------------------------------------------------------------------------------------------
def test_a_longer_generation_gives_the_first_b_tokens_with_the_b_th_tokens_time():
    long = entry([1, 2, 3, 4, 5], max_tokens=5, token_ms=encode_times(100.0, [100.5, 101.0, 101.25, 102.0, 103.0]))
    completion, latency = budgets.derive(long, greedy(3), text_of)
    assert (completion.text, completion.output_ids, completion.output_tokens, completion.finish_reason) == \
        ("a b c", (1, 2, 3), 3, "length")
    assert completion.prompt_tokens == 7 and latency == 1.25  # the 3rd token came 1.25 s after submission
    # without token times the latency is left out (NaN), never estimated from the longer call's
    _, unknown = budgets.derive({**long, "token_ms": None}, greedy(3), text_of)
    assert math.isnan(unknown)


def test_a_generation_that_ended_by_itself_is_the_same_call_at_any_larger_budget():
    ended = entry([1, 2, 9], finish="stop", max_tokens=50, latency=0.75)
    completion, latency = budgets.derive(ended, greedy(10), text_of)
    assert (completion.text, completion.output_ids, completion.finish_reason, latency) == ("a b", (1, 2, 9), "stop", 0.75)
    # exactly at its length too: it stopped at 3 tokens, the budget 3 lets it
    assert budgets.derive(ended, greedy(3), text_of)[0].finish_reason == "stop"
    # one below: cut, and the EOS is not part of it
    assert budgets.derive(ended, greedy(2), text_of)[0].text == "a b"


@pytest.mark.parametrize("stored, params, why", [
    (entry([1, 2, 3], text="a b", finish="stop", max_tokens=50), greedy(10, stop=[" c"]),
     "cut at a stop string: where the stop string ended is not kept"),
    (entry([1, 2, 3, 4]), SamplingParams(max_tokens=2, temperature=0.7), "sampled without a seed"),
    (entry([1, 2, 3, 4], max_tokens=4), greedy(4), "not a larger budget"),
    ({**entry([1, 2, 3, 4]), "output_ids": None}, greedy(2), "no ids"),
    (entry([1, 2, 3, 4]), greedy(3, stop=[" b"]), "the derived text holds a stop string"),
    (entry([1, 2, 3], finish="length", max_tokens=50), greedy(5), "stopped short with length (a context cap)"),
])
def test_what_cannot_be_derived_exactly_is_run(stored, params, why):
    assert budgets.derive(stored, params, text_of) is None, why


def test_a_seeded_sampled_call_is_derivable():
    assert budgets.derivable(SamplingParams(max_tokens=4, temperature=0.7, seed=3))
    assert budgets.derive(entry([1, 2, 3, 4]), SamplingParams(max_tokens=2, temperature=0.7, seed=3), text_of)[0].text == "a b"


def test_token_times_round_trip_in_milliseconds():
    times = [10.0004, 10.0101, 10.0101, 10.5, 12.25]
    assert decode_times(encode_times(10.0, times)) == [0.0, 0.01, 0.01, 0.5, 2.25]
    assert encode_times(None, times) is None and encode_times(10.0, None) is None and decode_times(None) is None


def test_the_cache_finds_the_longest_budget_of_a_call_after_a_reopen(tmp_path):
    request = Request("prompt", greedy(64))
    family = family_key({"model": "m"}, "main", request)
    assert family == family_key({"model": "m"}, "main", Request("prompt", greedy(8)))
    assert family != family_key({"model": "m"}, "main", Request("prompt", greedy(8, stop=["x"])))
    cache = CallCache(tmp_path)
    done = Completion("a b c", 7, 3, "length", output_ids=(1, 2, 3), submitted=5.0, finished=6.0)
    cache.put("k64", done, 1.0, family, 64)
    cache.put("k16", done, 1.0, family, 16)
    cache.close()
    again = CallCache(tmp_path)
    assert again.longest(family, 8)["max_tokens"] == 64 and again.longest(family, 16)["max_tokens"] == 64
    assert again.longest(family, 64) is None and again.longest("other", 8) is None


# --- through the sweep and lm-eval ------------------------------------------------------------------------------
def _samples(folder: Path) -> list[dict]:
    """The point's lm-eval samples, by doc: what was generated, what was scored, the scores."""
    (path,) = sorted(Path(folder).rglob("samples_*.jsonl"))
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    keep = ("resps", "filtered_resps", "acc", "tok", "rounds", "truncated")
    return sorted(({k: r.get(k) for k in ("doc_id", *keep)} for r in rows), key=lambda r: r["doc_id"])


def _calls(folder: Path) -> list[dict]:
    return [c for path in Path(folder).rglob("inftythink_traces_*.jsonl") for line in path.read_text().splitlines()
            for c in json.loads(line)["calls"]]


def _sweep(model: Path, out: Path, store: Path, grid: str, *flags: str) -> list[str]:
    return ["sweep", "--model_args", model_args(model), "--tasks", "lbt_math500", "--include_path", str(task_dir()),
            "--limit", "4", "--grid", grid, "--output_path", str(out), "--store", str(store), "--bootstrap-iters",
            "50", *flags]


def test_smaller_vanilla_budgets_make_no_call_and_equal_their_own_runs(tmp_path, capsys):
    model = write_script("budget-reuse")
    reuse, alone = tmp_path / "reuse", tmp_path / "alone"
    assert main(_sweep(model, reuse, tmp_path / "s1", "vanilla:max_gen_toks=3,6,400")) == 0
    order = [line.split("]")[1].split("…")[0].strip() for line in capsys.readouterr().out.splitlines()
             if "… running" in line]
    assert order == ["vanilla max_gen_toks=400", "vanilla max_gen_toks=6", "vanilla max_gen_toks=3"]  # largest first
    assert main(_sweep(model, alone, tmp_path / "s2", "vanilla:max_gen_toks=3,6,400", "--no-reuse")) == 0
    for budget in (3, 6):
        derived, own = reuse / f"points/vanilla-max_gen_toks={budget}", alone / f"points/vanilla-max_gen_toks={budget}"
        assert _samples(derived) == _samples(own), budget
        assert _calls(derived) and all(c["cached"] for c in _calls(derived))  # no generation call was made
        assert not any(c["cached"] for c in _calls(own))
        assert any(c["finish_reason"] == "length" and c["output_tokens"] == budget for c in _calls(derived))
    assert not (alone / "vanilla-cache").exists() and (reuse / "vanilla-cache").is_dir()
    records = {(r.lm_eval_args["gen_kwargs"]["max_gen_toks"], "derive_budgets=True" in r.lm_eval_args["model_args"]):
               r for r in Store(tmp_path / "s1").load() + Store(tmp_path / "s2").load()}
    for budget in (3, 6, 400):
        assert (records[budget, True].acc, records[budget, True].tok) == (records[budget, False].acc,
                                                                          records[budget, False].tok)


def test_derive_budgets_needs_a_cache_dir(tmp_path):
    model = write_script("budget-reuse-args")
    proc = subprocess.run([sys.executable, "-m", "lm_eval", "--model", "inftythink", "--model_args",
                           f"{model_args(model)},derive_budgets=true", "--tasks", "lbt_math500", "--include_path",
                           str(task_dir()), "--limit", "1", "--output_path", str(tmp_path / "o")],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0 and "derive_budgets=true needs cache_dir=DIR" in proc.stderr


def test_on_the_real_model_a_derived_budget_equals_its_own_run(tmp_path):
    """SmolLM2 through hf: budget 8 derived from budget 24's generation equals budget 8 run on its own."""
    def sweep(out: Path, grid: str, *flags: str) -> None:
        argv = [sys.executable, "-m", "inftythink_eval.cli", "sweep", "--model_args",
                "pretrained=zoo:smollm2-135m-instruct,backend=hf,batch_size=4", "--tasks", "inftythink_math500",
                "--limit", "3", "--apply_chat_template", "--grid", grid, "--output_path", str(out), "--store",
                str(out / "store"), "--bootstrap-iters", "50", *flags]
        proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]

    sweep(tmp_path / "reuse", "vanilla:max_gen_toks=8,24")
    sweep(tmp_path / "alone", "vanilla:max_gen_toks=8", "--no-reuse")
    derived, own = tmp_path / "reuse/points/vanilla-max_gen_toks=8", tmp_path / "alone/points/vanilla-max_gen_toks=8"
    assert _samples(derived) == _samples(own)
    assert all(c["cached"] for c in _calls(derived)) and len(_calls(derived)) == 3
    assert [c["output_tokens"] for c in _calls(derived)] == [8, 8, 8]  # cut mid-answer: really derived, not equal by luck
    longer = {c["prompt"]: c["latency"] for c in _calls(tmp_path / "reuse/points/vanilla-max_gen_toks=24")}
    for call in _calls(derived):  # LAT: when the 8th token of the 24-token generation was made, never estimated
        assert math.isfinite(call["latency"]) and 0 <= call["latency"] <= longer[call["prompt"]]


@pytest.mark.parametrize("continuous", ["off", "on"])
def test_hf_stamps_every_output_token_on_both_paths(continuous, smollm2):
    """The times a derived budget's LAT is read from: one per output token, in order, inside the call; and
    when the request got its slot (the ``wait`` stat)."""
    from inftythink_eval.backends.base import make_backend

    backend = make_backend("hf", pretrained=smollm2, batch_size=4, continuous=continuous)
    try:
        prompt = backend.apply_chat_template([{"role": "user", "content": "Count from one to twenty."}])
        for done in backend.generate([Request(prompt, SamplingParams(max_tokens=n, stop=stop))
                                      for n, stop in ((12, ()), (5, ()), (30, ("\x00\x01",)))]):
            times = done.token_times
            assert times is not None and len(times) == done.output_tokens > 0, (continuous, done)
            assert list(times) == sorted(times) and done.submitted <= times[0] <= times[-1] <= done.finished
            assert times[0] == pytest.approx(done.first_token, abs=0.05)
            # the slot: from the engine (the batch's generate, transformers' lifespan), inside the wait for a token
            assert done.started is not None and done.submitted <= done.started <= done.first_token
    finally:
        backend.close()
