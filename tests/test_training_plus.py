"""The SFT recipe on InftyThink+ rows (``template: chat``): chat-template rendering, and no loss on ``<history>``.

Data: the dataset builder's ``--format inftythink_plus`` output of the synthetic task.  Asserts that labels are
-100 over exactly the prompt and the ``<history>…</history>`` span and equal the ids elsewhere, that
the loss sends no gradient to the logits that predict history tokens (while the same batch with the
history unmasked does), that the prompt is the evaluator's (chat template, ``<think>`` opener cut),
and that a tiny model trains and saves.  Expected texts are spelled out from PROTOCOL_PLUS.md in this
file (``plus_texts``), not built with ``formats.plus``, so a format that drifts fails here.
"""

import json
import math

import pytest
import torch

from inftythink_eval.formats.plus import training_messages
from inftythink_eval.training.config import ConfigError, from_dict

from test_training_recipe import ROOT, build_data, sft  # the recipe (the package's) and the builder (loaded once)


@pytest.fixture(scope="module")
def plus_data(tmp_path_factory):
    """Builder output (--format inftythink_plus) for 12 synthetic questions (depth 1..30, eta 40: several rounds
    each)."""
    out = tmp_path_factory.mktemp("synthetic-plus")
    assert build_data.main(["--out", str(out), "--questions", "12", "--max-depth", "30", "--eta", "40",
                            "--format", "inftythink_plus"]) == 0
    summary = json.loads((out / "data_summary.json").read_text())
    assert summary["route"].startswith("inftythink_eval.data.build")
    rows = [json.loads(line) for line in (out / "inftythink_plus.jsonl").read_text().splitlines()]
    first = [json.loads(line) for line in (out / "first_rounds.jsonl").read_text().splitlines()]
    # first_rounds.jsonl: exactly each question's first iteration (no <history> in its assistant turn), once
    assert first == [r for r in rows if r["reasoning_index"] == 0] and summary["first_round_rows"] == len(first) == 12
    assert all(not r["messages"][-1]["content"].startswith("<history>") for r in first)
    assert all(r["messages"][-1]["content"].startswith("<history>") for r in rows if r["reasoning_index"] > 0)
    return out / "inftythink_plus.jsonl"


def plus_cfg(data, out, **kw):
    base = {"model": "scratch", "format": "inftythink_plus", "data": [str(data)], "output_dir": str(out),
            "scratch": {"chars": "printable", "chat_template": "inftythink_plus", "hidden_size": 32,
                        "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                        "num_key_value_heads": 2, "max_position_embeddings": 256},
            "max_length": 256, "global_batch_size": 2, "per_device_batch_size": 2, "learning_rate": 1e-2,
            "max_steps": 2, "precision": "fp32", "gradient_checkpointing": False, "logging_steps": 1,
            "save_steps": 1, "report_to": "none", "seed": 0}
    return from_dict({**base, **kw})


@pytest.fixture(scope="module")
def trainer_and_batch(plus_data, tmp_path_factory):
    torch.set_num_threads(1)
    trainer = sft.make_trainer(plus_cfg(plus_data, tmp_path_factory.mktemp("run")))
    return trainer, next(iter(trainer.get_train_dataloader()))


def plus_texts(row: dict) -> tuple[str, str]:
    """(untrained, trained) text of one cold-start row under the tiny model's chat template (eos not included).

    The assistant turn is written out from ../shared/PROTOCOL_PLUS.md ("Format differs from v1"), not imported
    from ``formats.plus``: ``<history>\n{S}\n</history>`` (absent in the first iteration; loss weight 0), then
    ``<think>\n{reasoning}\n</think>``, then ``<summary>\n{S}\n</summary>`` or ``\n{conclusion}\n``.  The chat
    template around it is the scratch model's own (``<|user|>{q}<|assistant|>``, ours, not a protocol string).
    """
    untrained = f"<|user|>{row['question']}<|assistant|>"
    if row["history"] is not None:
        untrained += f"<history>\n{row['history']}\n</history>"
    trained = f"<think>\n{row['reasoning_process']}\n</think>"
    if row["conclusion"] is not None:
        return untrained, trained + f"\n{row['conclusion']}\n"
    return untrained, trained + f"<summary>\n{row['summary']}\n</summary>"


def _samples(trainer, batch, data):
    """(batch row, start, ids, labels, source row, untrained length) of every packed sample of the batch
    (position ids restart at 0 for each); each sample must be, token for token, one row of ``data``."""
    tok = trainer.processing_class
    ids_of = lambda text: tok(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    instances = {}
    for line in data.read_text().splitlines():
        row = json.loads(line)
        untrained, trained = plus_texts(row)
        instances[tuple(ids_of(untrained) + ids_of(trained) + [tok.eos_token_id])] = row, len(ids_of(untrained))
    for r in range(batch["input_ids"].shape[0]):
        ids, labels, pos = (batch[k][r].tolist() for k in ("input_ids", "labels", "position_ids"))
        n = len(ids)
        while n and ids[n - 1] == tok.pad_token_id and pos[n - 1] == 0:
            n -= 1
        starts = [i for i, p in enumerate(pos[:n]) if p == 0] + [n]
        for s, e in zip(starts, starts[1:]):
            assert tuple(ids[s:e]) in instances, f"not a cold-start row of the data: {tok.decode(ids[s:e])!r}"
            yield (r, s, ids[s:e], labels[s:e], *instances[tuple(ids[s:e])])


def test_labels_are_masked_over_exactly_the_prompt_and_the_history_span(trainer_and_batch, plus_data):
    trainer, batch = trainer_and_batch
    with_history = 0
    for _, _, ids, labels, row, cut in _samples(trainer, batch, plus_data):
        assert labels[:cut] == [-100] * cut, "prompt and history tokens carry no loss"
        assert labels[cut:] == ids[cut:], "every token after </history> (think, summary/conclusion, eos) is trained"
        with_history += row["history"] is not None
    assert with_history >= 2, "the batch must hold rounds with a history span"


def _logit_grads(model, batch, labels):
    """d loss / d logits for each position (batch rows x positions), and the loss."""
    model.zero_grad()
    out = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"])
    logits = out.logits
    logits.retain_grad()
    shift = logits[:, :-1].reshape(-1, logits.shape[-1])
    loss = torch.nn.functional.cross_entropy(shift, labels[:, 1:].reshape(-1), ignore_index=-100)
    loss.backward()
    return logits.grad.abs().sum(-1), loss.item()


def test_history_tokens_get_no_gradient_and_unmasking_them_would_change_the_loss(trainer_and_batch, plus_data):
    trainer, batch = trainer_and_batch
    model = trainer.model.train()
    torch.manual_seed(0)
    tok = trainer.processing_class
    recipe_loss = model(**{k: batch[k] for k in ("input_ids", "labels", "position_ids")}).loss.item()
    grads, loss = _logit_grads(model, batch, batch["labels"])
    assert math.isclose(loss, recipe_loss, rel_tol=1e-5), "the hand-computed loss is the recipe's loss"
    unmasked = batch["labels"].clone()
    history_positions = []
    with_history = [(r, start, row, cut) for r, start, _, _, row, cut in _samples(trainer, batch, plus_data)
                    if row["history"] is not None]
    assert len(with_history) >= 2, "the batch must hold rounds with a history span"
    for r, start, row, h1 in with_history:
        h0 = len(tok(f"<|user|>{row['question']}<|assistant|>", add_special_tokens=False)["input_ids"])
        history_positions += [(r, start + t) for t in range(h0, h1)]
        unmasked[r, start + h0:start + h1] = batch["input_ids"][r, start + h0:start + h1]
    # the logits at t-1 predict token t: no gradient reaches a prediction of a history token
    assert all(grads[r, t - 1].item() == 0.0 for r, t in history_positions)
    assert grads.sum().item() > 0, "target tokens do get gradient"
    grads_unmasked, loss_unmasked = _logit_grads(model, batch, unmasked)
    assert all(grads_unmasked[r, t - 1].item() > 0 for r, t in history_positions)
    assert loss_unmasked != pytest.approx(loss, rel=1e-4), "with history in the loss, the loss would differ"


def test_prompt_is_the_evaluators_chat_template_prompt_with_the_think_opener_cut(smollm2):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2)
    # a later iteration's row, spelled out from PROTOCOL_PLUS.md: user = the question, assistant =
    # <history>\n{S}\n</history><think>\n{reasoning}\n</think><summary>\n{S'}\n</summary>
    reply = "<history>\n* added\n</history><think>\n2+2=4\n</think><summary>\n* 4\n</summary>"
    row = {"messages": [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": reply}]}
    assert training_messages("What is 2+2?", "2+2=4", history="* added", summary="* 4") == row["messages"]
    # SmolLM2-135M-Instruct's own chat template renders its default system turn before the question
    prompt = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
              "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n")
    ex = sft.to_chat_example(row, tok)
    masked = [i for i, m in zip(ex["input_ids"], ex["completion_mask"]) if not m]
    trained = [i for i, m in zip(ex["input_ids"], ex["completion_mask"]) if m]
    assert tok.decode(masked) == prompt + "<history>\n* added\n</history>"
    assert tok.decode(trained) == "<think>\n2+2=4\n</think><summary>\n* 4\n</summary><|im_end|>"  # eos: <|im_end|>
    header = "{{ '<|im_start|>assistant\n' }}"
    assert header in tok.chat_template
    tok.chat_template = tok.chat_template.replace(header, "{{ '<|im_start|>assistant\n<think>\n' }}")
    opened = tok.apply_chat_template(row["messages"][:1], add_generation_prompt=True, tokenize=False)
    assert opened == prompt + "<think>\n", "the R1-distill-style template opens <think> itself"
    ex = sft.to_chat_example(row, tok)
    masked = tok.decode([i for i, m in zip(ex["input_ids"], ex["completion_mask"]) if not m])
    assert masked == prompt + "<history>\n* added\n</history>", "the opener is cut: the history follows the header"


def test_v1_rows_and_rows_without_an_assistant_turn_are_clear_errors():
    from inftythink_eval.training.scratch import char_tokenizer

    tok = char_tokenizer(chat_template="inftythink_plus")
    v1 = {"messages": [{"role": "user", "content": "User:qAssistant:"}, {"role": "assistant", "content": "<think>"}]}
    with pytest.raises(ConfigError, match="v1 native prompt"):
        sft.to_chat_example(v1, tok)
    with pytest.raises(ConfigError, match=r"expected messages = \[..., user, assistant\]"):
        sft.to_chat_example({"question": "q"}, tok)


def test_a_tiny_plus_model_trains_and_saves_its_chat_template(plus_data, tmp_path):
    from transformers import AutoTokenizer

    torch.set_num_threads(1)
    summary = sft.train(plus_cfg(plus_data, tmp_path))
    assert summary["global_step"] == 2 and math.isfinite(summary["train_loss"])
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "final"))
    prompt = tok.apply_chat_template([{"role": "user", "content": "x0=45 n=012"}], add_generation_prompt=True,
                                     tokenize=False)
    assert prompt == "<|user|>x0=45 n=012<|assistant|>"


def test_the_probe_finds_both_skills_in_the_committed_plus_model_and_neither_in_a_random_one(plus_data, tmp_path, capsys):
    """training/synthetic/probe_plus.py: the committed model reads n from the question and continues from a history
    (4 of 4 each); an untrained model of the same shape does neither (0 of 4)."""
    from test_training_recipe import _load

    probe = _load("probe_plus_under_test", ROOT / "training" / "synthetic" / "probe_plus.py")
    zoo_model = ROOT / "zoo" / "tiny-synthetic-inftythink-plus"
    assert probe.main([str(zoo_model), "--count", "4"]) == 0
    assert capsys.readouterr().out.strip().endswith("first iteration 4/4, from a history 4/4")
    untrained = tmp_path / "untrained"
    sft.make_trainer(plus_cfg(plus_data, tmp_path / "run")).save_model(str(untrained))
    assert probe.main([str(untrained), "--tokenizer", str(zoo_model), "--count", "4"]) == 0
    assert capsys.readouterr().out.strip().endswith("first iteration 0/4, from a history 0/4")
