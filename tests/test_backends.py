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
