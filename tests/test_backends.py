"""The hf backend on the real SmolLM2 model, and the backend registry's errors."""

from __future__ import annotations

import pytest

from inftythink_eval.backends.base import Request, SamplingParams, backend_class, make_backend


@pytest.fixture(scope="module")
def hf(smollm2):
    return make_backend("hf", pretrained=smollm2, batch_size=4)


def test_batched_generation_counts_stops_and_finish_reasons(hf):
    prompt = hf.apply_chat_template([{"role": "user", "content": "List three colours, one per line."}])
    outs = hf.generate([Request(prompt, SamplingParams(max_tokens=6)),
                        Request(prompt, SamplingParams(max_tokens=40, stop=("\n",))),
                        Request(prompt, SamplingParams(max_tokens=6, temperature=0.8, seed=1))])
    assert outs[0].finish_reason == "length" and outs[0].output_tokens == 6 == len(outs[0].output_ids)
    assert "\n" not in outs[1].text and outs[1].finish_reason == "stop"
    assert outs[0].prompt_tokens == hf.count_tokens(prompt)
    again = hf.generate([Request(prompt, SamplingParams(max_tokens=6))])[0]
    assert again.text == outs[0].text  # greedy is deterministic across batch compositions here
    assert hf.decode(hf.encode("hello world")) == "hello world"


def test_prefix_cache_reuses_shared_prefixes_and_changes_no_output(hf, smollm2):
    """Cumulative prompts (each extends the last, like the builder's summaries) with prefix_cache on:
    greedy outputs equal the uncached backend's, and only the new part of each prompt is computed."""
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
    assert [c.text for c in cached[:3]] == [p.text for p in plain] and cached[3].text == plain[2].text
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
    from inftythink_eval.fetch import smollm2_gguf

    backend = make_backend("hf", pretrained=str(smollm2_gguf()), batch_size=1)
    out = backend.generate([Request("Hello", SamplingParams(max_tokens=3))])[0]
    assert out.output_tokens == 3 and backend.tokenizer.chat_template


def test_registry_errors_name_the_choices():
    with pytest.raises(ValueError, match="valid backends: hf, openai, scripted, vllm"):
        backend_class("mystery")
    with pytest.raises(ImportError, match=r"pip install 'inftythink-eval\[vllm\]'"):
        backend_class("vllm")


def test_each_request_returns_when_it_finishes_not_when_its_batch_does(hf):
    """A 2-token and a 96-token request in one batch on the real model: the short one's LAT is a small
    fraction of the long one's (before: both got the batch's time)."""
    prompt = hf.apply_chat_template([{"role": "user", "content": "Write a long story about a cat."}])
    short, long = hf.generate([Request(prompt, SamplingParams(max_tokens=2)),
                               Request(prompt, SamplingParams(max_tokens=96))])
    assert hf.batches[-1] == 2
    assert (short.output_tokens, long.output_tokens) == (2, 96), (short.output_tokens, long.output_tokens)
    lat_short, lat_long = short.finished - short.submitted, long.finished - long.submitted
    assert lat_short < 0.25 * lat_long, (lat_short, lat_long)
    assert long.first_token is not None and long.submitted <= long.first_token <= long.finished


def test_sampled_requests_share_a_batch_and_follow_their_own_seeds(hf):
    """Requests with different seeds and temperatures batch together; a request's sample depends on its
    seed, not on its row in the batch (each row draws from its own generator).  Across batch *sizes* the
    floating-point sums can differ in the last bits, so only same-size batches are compared exactly."""
    prompt = hf.apply_chat_template([{"role": "user", "content": "Name a fruit."}])
    params = [SamplingParams(max_tokens=8, temperature=t, top_p=0.95, top_k=k, seed=s)
              for t, k, s in ((1.0, 0, 1), (0.7, 20, 2), (1.2, 0, 3), (0.0, 0, None))]
    together = hf.generate([Request(prompt, p) for p in params])
    assert hf.batches[-1] == 4
    permuted = hf.generate([Request(prompt, p) for p in reversed(params)])[::-1]
    assert [c.output_ids for c in permuted] == [c.output_ids for c in together]
    again = hf.generate([Request(prompt, p) for p in params])
    assert [c.output_ids for c in again] == [c.output_ids for c in together]
    other_seed = hf.generate([Request(prompt, SamplingParams(max_tokens=8, temperature=1.0, top_p=0.95, seed=99))])[0]
    assert other_seed.output_ids != together[0].output_ids


def test_a_stop_string_cut_counts_no_pad_tokens(hf):
    """A row cut by a stop string in a batch counts the tokens up to the stop, not the batch's width."""
    prompt = hf.apply_chat_template([{"role": "user", "content": "List three colours, one per line."}])
    cut, full = hf.generate([Request(prompt, SamplingParams(max_tokens=40, stop=("\n",))),
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
    from inftythink_eval.cache import CallCache
    from inftythink_eval.engine import Engine
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


def test_close_ends_a_running_batch_and_waits_for_the_engine_thread(smollm2):
    """close() while a long batch runs: the batch stops at its next step, its requests fail with "closed",
    and close returns only after the engine thread has left the model (a process that exits with the
    engine inside a torch op aborts: "terminate called without an active exception")."""
    import time

    backend = make_backend("hf", pretrained=smollm2, batch_size=2)
    prompt = backend.apply_chat_template([{"role": "user", "content": "Write a long story about a cat."}])
    warm = backend.generate([Request(prompt, SamplingParams(max_tokens=2))])[0]
    assert warm.output_tokens == 2
    futures = [backend.submit(Request(prompt, SamplingParams(max_tokens=4000))) for _ in range(2)]
    time.sleep(1.0)   # the batch is decoding (4000 tokens would take minutes here)
    assert backend._queue.alive() and not any(f.done() for f in futures)
    backend.close()
    assert not backend._queue.alive()
    for future in futures:
        with pytest.raises(RuntimeError, match="closed"):
            future.result(timeout=0)
    with pytest.raises(RuntimeError, match="closed"):
        backend.submit(Request(prompt, SamplingParams(max_tokens=2)))
