"""The hf backend on the real SmolLM2 model, and the backend registry's errors."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from inftythink_eval.backends import hf as hf_module
from inftythink_eval.backends.base import Request, SamplingParams, backend_class, make_backend


@pytest.fixture(scope="module")
def hf(smollm2):
    return make_backend("hf", pretrained=smollm2, batch_size=4)


def submit_together(backend, requests: list) -> list:
    """Submit ``requests`` while holding the engine's queue lock: its engine thread takes them as one batch
    however slowly this thread runs (submitted one by one, a batch can split when this thread is preempted)."""
    with backend._queue._cond:
        return [backend.submit(r) for r in requests]


def generate_together(backend, requests: list) -> list:
    return [f.result(timeout=600) for f in submit_together(backend, requests)]


def gate_steps(monkeypatch, backend, hold_at: int, until):
    """Wrap the hf backend's per-row sampler (a logits processor: it runs once per decoding step) so that EOS
    never wins (no row ends before its max_tokens) and step ``hold_at`` waits until ``until()`` is true.
    The order of events is then fixed by state, not by the machine's speed.  ``state.reached`` is set at
    that step (``state.at``: when), ``state.ok`` says whether ``until()`` came true (the wait is bounded:
    a wrong implementation fails, it does not hang), ``state.steps`` counts steps."""
    state = SimpleNamespace(steps=0, reached=threading.Event(), at=None, ok=None)
    eos = sorted(backend._eos_ids)

    class Gated(hf_module._RowSampler):
        def __call__(self, input_ids, scores):
            scores[:, eos] = -float("inf")
            state.steps += 1
            if state.steps == hold_at:
                state.at = time.time()
                state.reached.set()
                deadline = time.time() + 120
                while not until() and time.time() < deadline:
                    time.sleep(0.01)
                state.ok = bool(until())
            return super().__call__(input_ids, scores)

    monkeypatch.setattr(hf_module, "_RowSampler", Gated)
    return state


def assert_same_greedy(backend, prompt: str, got, want, tol: float = 1e-2):
    """Greedy ids of one prompt computed two ways that differ only in floating-point order (batch size, padding,
    a reused KV prefix) are equal, or part where the model's top two logits are within ``tol`` of each other:
    there the last bits decide, so only a near-tie may differ (a wrong computation parts at a clear choice)."""
    import torch

    got, want = list(got), list(want)
    if got == want:
        return
    i = next((k for k, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
    assert i < min(len(got), len(want)), f"one output is a prefix of the other: {got} vs {want}"
    ids = torch.tensor([backend.prompt_ids(prompt) + want[:i]], device=backend.device)
    with torch.inference_mode():
        logits = backend.model(ids).logits[0, -1].float()
    top = torch.topk(logits, 2)
    assert set(top.indices.tolist()) == {got[i], want[i]} and float(top.values[0] - top.values[1]) < tol, (
        f"greedy outputs part at token {i} where the choice is clear (top two logits {top.values.tolist()}, "
        f"tokens {top.indices.tolist()}; got {got[i]}, want {want[i]})")


def test_batched_generation_counts_stops_and_finish_reasons(hf):
    prompt = hf.apply_chat_template([{"role": "user", "content": "List three colours, one per line."}])
    requests = [Request(prompt, SamplingParams(max_tokens=6)),
                Request(prompt, SamplingParams(max_tokens=40, stop=("\n",))),
                Request(prompt, SamplingParams(max_tokens=6, temperature=0.8, seed=1))]
    outs = generate_together(hf, requests)
    assert hf.batches[-1] == 3
    assert outs[0].finish_reason == "length" and outs[0].output_tokens == 6 == len(outs[0].output_ids)
    assert "\n" not in outs[1].text and outs[1].finish_reason == "stop"
    assert outs[0].prompt_tokens == hf.count_tokens(prompt)
    # the same batch again gives the same ids (greedy, and seeded sampling); across batch *sizes* the float sums
    # may differ in the last bits, so a greedy near-tie could flip there: that is not compared exactly
    again = generate_together(hf, requests)
    assert hf.batches[-1] == 3 and [o.output_ids for o in again] == [o.output_ids for o in outs]
    assert hf.decode(hf.encode("hello world")) == "hello world"


def test_prefix_cache_reuses_shared_prefixes_and_changes_no_output(hf, smollm2):
    """Cumulative prompts (each extends the last, like the builder's summaries) with prefix_cache on:
    greedy outputs equal the uncached backend's (up to a near-tie, which the last bits of a reused prefix's
    sums may flip: see ``assert_same_greedy``), and only the new part of each prompt is computed."""
    reuse = make_backend("hf", pretrained=smollm2, batch_size=4, prefix_cache=2)
    assert reuse.reuses_prefixes and not hf.reuses_prefixes
    spans = ["First, note that 12 = 3 * 4.", "Then 12 * 5 = 60, so the total is 60.", "Check: 60 / 5 = 12."]
    prompts = [hf.apply_chat_template([{"role": "user", "content": "What is 12 times 5?"},
                                       {"role": "assistant", "content": " ".join(spans[:i + 1])},
                                       {"role": "user", "content": "Summarize your work in one line."}])
               for i in range(len(spans))]
    params = SamplingParams(max_tokens=12)
    plain = hf.generate([Request(p, params) for p in prompts])
    cached = [reuse.generate([Request(p, params)])[0] for p in prompts] + reuse.generate([Request(prompts[-1], params)])
    for prompt, got, want in zip(prompts + prompts[-1:], cached, plain + plain[-1:]):
        assert_same_greedy(hf, prompt, got.output_ids, want.output_ids)
    assert [c.prompt_tokens for c in cached[:3]] == [p.prompt_tokens for p in plain]
    total = sum(p.prompt_tokens for p in plain) + plain[2].prompt_tokens
    store = reuse.prefixes
    assert store.reused_tokens + store.computed_tokens == total
    assert store.computed_tokens < total / 2, (store.computed_tokens, total)   # the question and earlier spans are reused
    assert len(store.entries) <= 2
    with pytest.raises(ValueError, match="prefix_cache must be >= 0"):
        make_backend("hf", pretrained=smollm2, prefix_cache=-1)


def test_loglikelihood_prefers_the_likely_continuation(hf):
    (good, _), (bad, _) = hf.loglikelihood([("The capital of France is", " Paris"),
                                            ("The capital of France is", " cucumber")])
    assert good > bad and good < 0


def test_gguf_file_loads_directly():
    from inftythink_eval.checkpoints.fetch import smollm2_gguf

    backend = make_backend("hf", pretrained=str(smollm2_gguf()), batch_size=1)
    out = backend.generate([Request("Hello", SamplingParams(max_tokens=3))])[0]
    assert out.output_tokens == 3 and backend.tokenizer.chat_template


def test_registry_errors_name_the_choices():
    with pytest.raises(ValueError, match="valid backends: hf, openai, scripted, vllm"):
        backend_class("mystery")
    with pytest.raises(ImportError, match=r"pip install 'inftythink-eval\[vllm\]'"):
        backend_class("vllm")


def test_each_request_returns_when_it_finishes_not_when_its_batch_does(hf, monkeypatch):
    """A 2-token and a 96-token request in one batch on the real model: the short one's future resolves while
    the batch is still decoding (step 10 waits for it), with its own finish time (before: both got the
    batch's).  EOS is suppressed, so both run to their max_tokens whatever the model would say."""
    prompt = hf.apply_chat_template([{"role": "user", "content": "Write a long story about a cat."}])
    futures = []
    state = gate_steps(monkeypatch, hf, hold_at=10, until=lambda: futures[0].done())
    futures += submit_together(hf, [Request(prompt, SamplingParams(max_tokens=2)),
                                    Request(prompt, SamplingParams(max_tokens=96))])
    short, long = (f.result(timeout=300) for f in futures)
    assert hf.batches[-1] == 2
    assert (short.output_tokens, long.output_tokens) == (2, 96), (short.output_tokens, long.output_tokens)
    assert state.ok, "the short request was not handed back while its batch went on decoding"
    assert short.submitted < short.finished < state.at < long.finished
    assert long.first_token is not None and long.submitted <= long.first_token < state.at
    assert short.finished - short.submitted < long.finished - long.submitted


def test_sampled_requests_share_a_batch_and_follow_their_own_seeds(hf):
    """Requests with different seeds and temperatures batch together; a request's sample depends on its
    seed, not on its row in the batch (each row draws from its own generator).  Across batch *sizes* the
    floating-point sums can differ in the last bits, so only same-size batches are compared exactly."""
    prompt = hf.apply_chat_template([{"role": "user", "content": "Name a fruit."}])
    params = [SamplingParams(max_tokens=8, temperature=t, top_p=0.95, top_k=k, seed=s)
              for t, k, s in ((1.0, 0, 1), (0.7, 20, 2), (1.2, 0, 3), (0.0, 0, None))]
    together = generate_together(hf, [Request(prompt, p) for p in params])
    assert hf.batches[-1] == 4
    permuted = generate_together(hf, [Request(prompt, p) for p in reversed(params)])[::-1]
    assert [c.output_ids for c in permuted] == [c.output_ids for c in together]
    again = generate_together(hf, [Request(prompt, p) for p in params])
    assert [c.output_ids for c in again] == [c.output_ids for c in together]
    other_seed = hf.generate([Request(prompt, SamplingParams(max_tokens=8, temperature=1.0, top_p=0.95, seed=99))])[0]
    assert other_seed.output_ids != together[0].output_ids


def test_a_stop_string_cut_counts_no_pad_tokens(hf):
    """A row cut by a stop string in a batch counts the tokens up to the stop, not the batch's width."""
    prompt = hf.apply_chat_template([{"role": "user", "content": "List three colours, one per line."}])
    cut, full = generate_together(hf, [Request(prompt, SamplingParams(max_tokens=40, stop=("\n",))),
                                       Request(prompt, SamplingParams(max_tokens=40))])
    assert cut.finish_reason == "stop" and "\n" not in cut.text
    assert cut.output_tokens == len(cut.output_ids) < full.output_tokens
    assert hf.decode(cut.output_ids).startswith(cut.text)


def _bos_tokenizer():
    """A real (tiny) fast tokenizer whose post-processor adds BOS, like Llama's."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<s>": 0, "</s>": 1, "hello": 2, "world": 3, "[UNK]": 4}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="[UNK]")


def test_bos_is_added_once_by_every_backends_prompt_rule():
    """The one BOS rule (lm-eval's hf rule): the tokenizer's own BOS, except when the text already starts with it
    (a chat template wrote it) - never doubled, never dropped."""
    from inftythink_eval.backends._tokenizer import TokenizerOps

    ops = TokenizerOps()
    ops.tokenizer, ops.model_id = _bos_tokenizer(), "bos-test"
    assert ops.prompt_ids("hello world") == [0, 2, 3]
    assert ops.prompt_ids("<s> hello world") == [0, 2, 3]
    assert ops.encode("hello world") == [2, 3]   # token slicing and counting never add specials


def test_the_call_cache_keys_on_the_backend_not_only_the_model_path(hf, tmp_path):
    """Same cache_dir, same model path, another backend: nothing is served from the other backend's calls."""
    from inftythink_eval.backends.scripted import ScriptedBackend
    from inftythink_eval.run.cache import CallCache
    from inftythink_eval.engine.loop import Engine
    from inftythink_eval.modes import Sample

    samples = [Sample("0", "Say hi.", SamplingParams(max_tokens=4))]   # the same prompt text on both backends
    Engine(hf, "vanilla", cache=CallCache(tmp_path), progress=False).run(samples)
    other = ScriptedBackend([{"match": "", "output": "scripted"}], model_id=hf.model_id)
    cache = CallCache(tmp_path)
    trace = Engine(other, "vanilla", cache=cache, progress=False).run(samples)[0]
    assert cache.hits == 0 and trace.calls[0].output == "scripted"
    assert {"backend", "model", "dtype", "device", "revision"} <= set(hf.fingerprint)


def test_rolling_loglikelihood_scores_every_token_after_bos(hf):
    """An empty context (lm-eval's loglikelihood_rolling) scores the text after the BOS token, each token by the
    logits of the position before it: the same number as with the BOS text as the context."""
    bos = hf.tokenizer.bos_token
    (empty, _), (after_bos, _) = hf.loglikelihood([("", " Hello world, this is a test."),
                                                   (bos, " Hello world, this is a test.")])
    assert abs(empty - after_bos) < 1e-4, (empty, after_bos)


def test_close_ends_a_running_batch_and_waits_for_the_engine_thread(smollm2, monkeypatch):
    """close() while a long batch runs: the batch stops at its next step, its requests fail with "closed",
    and close returns only after the engine thread has left the model (a process that exits with the
    engine inside a torch op aborts: "terminate called without an active exception").  The batch is provably
    running when close() is called: EOS is suppressed and step 3 waits until close() has begun."""
    backend = make_backend("hf", pretrained=smollm2, batch_size=2)
    prompt = backend.apply_chat_template([{"role": "user", "content": "Write a long story about a cat."}])
    state = gate_steps(monkeypatch, backend, hold_at=3, until=lambda: backend._queue.closed)
    futures = submit_together(backend, [Request(prompt, SamplingParams(max_tokens=4000)) for _ in range(2)])
    assert state.reached.wait(300), "the batch never reached its third step"
    assert backend._queue.alive() and not any(f.done() for f in futures) and backend.batches == [2]
    backend.close()
    assert not backend._queue.alive()
    assert state.ok and state.steps == 3, state   # it stopped at the step after close(), not at its 4000th
    for future in futures:
        with pytest.raises(RuntimeError, match="closed"):
            future.result(timeout=0)
    with pytest.raises(RuntimeError, match="closed"):
        backend.submit(Request(prompt, SamplingParams(max_tokens=2)))


def test_a_stop_string_at_the_end_of_the_prompt_does_not_stop_the_row(hf, monkeypatch):
    """Stop strings are matched in the generated text only: a chat prompt ends in "assistant\\n", and a "\\n"
    stop once ended every such row at its first token. EOS is blocked, so only a stop in the output or the
    token limit can end the row; the stop string here ends the prompt and is not in the output."""
    gate_steps(monkeypatch, hf, hold_at=0, until=lambda: True)   # EOS blocked, no step held
    prompt = hf.tokenizer.apply_chat_template([{"role": "user", "content": "Count from 1 to 20."}],
                                              tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("assistant\n"), prompt
    (out,) = generate_together(hf, [Request(prompt, SamplingParams(max_tokens=8, stop=("assistant\n",)))])
    assert out.finish_reason == "length" and out.output_tokens == 8, out
