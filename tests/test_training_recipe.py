"""The SFT recipe on CPU: a tiny random Llama trained on the dataset builder's output of the synthetic task.

Asserts what the recipe promises: every packed sample is a protocol instance of the data, byte for byte
(PROTOCOL.md's templates, spelled out in this file), with loss on its target only (the prompt masked),
packing with position ids reset per sample and no attention across packed samples, a finite loss that falls
on a repeated batch, and resume that continues the step count and the optimizer state.
"""

import importlib.util
import json
import math
from collections import Counter
from pathlib import Path

import pytest
import torch

from inftythink_eval.training import sft
from inftythink_eval.training.config import ConfigError, from_dict

ROOT = Path(__file__).resolve().parents[1]


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_data = _load("build_data_under_test", ROOT / "training" / "synthetic" / "build_data.py")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Builder output for 12 synthetic questions (depth 1..30, eta 40: several rounds each)."""
    out = tmp_path_factory.mktemp("synthetic-data")
    assert build_data.main(["--out", str(out), "--questions", "12", "--max-depth", "30", "--eta", "40",
                            "--vanilla-questions", "8", "--window", "128"]) == 0
    summary = json.loads((out / "data_summary.json").read_text())
    assert summary["route"] == "inftythink_eval.data.build", "the instances must come from the dataset builder"
    return out


def tiny_cfg(data_dir, out, **kw):
    base = {"model": "scratch", "data": [str(data_dir / "inftythink.jsonl")], "output_dir": str(out),
            "scratch": {"chars": "printable", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                        "num_attention_heads": 2, "num_key_value_heads": 2, "max_position_embeddings": 256},
            "max_length": 256, "global_batch_size": 2, "per_device_batch_size": 2, "learning_rate": 1e-2,
            "max_steps": 2, "precision": "fp32", "gradient_checkpointing": False, "logging_steps": 1,
            "save_steps": 1, "report_to": "none", "seed": 0}
    return from_dict({**base, **kw})


@pytest.fixture(scope="module", params=["flat", "rows"])
def trainer_and_batch(request, data_dir, tmp_path_factory):
    """A trainer and its first batch, in both packed layouts (flat for varlen kernels, rows for sdpa)."""
    torch.set_num_threads(1)
    trainer = sft.make_trainer(tiny_cfg(data_dir, tmp_path_factory.mktemp("run"), packed_layout=request.param))
    batch = next(iter(trainer.get_train_dataloader()))
    return trainer, batch, request.param


def _segments(position_ids, ids, pad_id):
    """(start, end) of each packed sample in one row; trailing padding (pad tokens at position 0) dropped."""
    n = len(ids)
    while n and ids[n - 1] == pad_id and position_ids[n - 1] == 0:
        n -= 1
    starts = [i for i, p in enumerate(position_ids[:n]) if p == 0] + [n]
    return list(zip(starts, starts[1:]))


def _rows(trainer, batch):
    pad = trainer.processing_class.pad_token_id
    for r in range(batch["input_ids"].shape[0]):
        ids, pos = batch["input_ids"][r].tolist(), batch["position_ids"][r].tolist()
        yield r, ids, batch["labels"][r].tolist(), pos, _segments(pos, ids, pad)


def protocol_pair(row: dict) -> tuple[str, str]:
    """(prompt, target) of one released-schema row, written out from ../shared/PROTOCOL.md ("Instances").

    Spelled out here, not imported from ``inftythink_eval.formats.inftythink``: a template that drifts from the
    protocol must fail these tests, not move their expectation with it.
    """
    prompt = f"User:{row['question']}Assistant:"
    if row["history"] is not None:
        prompt += f"<history>{row['history']}</history>"
    target = f"<think>\n{row['reasoning_process']}\n</think>"
    if row["conclusion"] is not None:
        return prompt, target + row["conclusion"]
    return prompt, target + f"\n<summary>\n{row['summary']}\n</summary>"


def test_packed_batch_resets_position_ids_per_sample(trainer_and_batch):
    trainer, batch, layout = trainer_and_batch
    if layout == "flat":
        assert batch["input_ids"].shape[0] == 1, "flat: the packed rows are flattened into one sequence"
    else:
        assert batch["input_ids"].shape[0] == 2, "rows: each packed row stays a batch row"
        assert "attention_mask" not in batch, "an attention mask would hide the reset position ids from transformers"
    segments = [seg for *_, segs in _rows(trainer, batch) for seg in segs]
    assert len(segments) >= 3, "several samples are packed"
    for r, _, _, pos, segs in _rows(trainer, batch):
        for start, end in segs:
            assert pos[start:end] == list(range(end - start))


def test_each_packed_sample_is_a_protocol_instance_with_exactly_its_prompt_masked(trainer_and_batch, data_dir):
    trainer, batch, _ = trainer_and_batch
    tok = trainer.processing_class
    ids_of = lambda text: tok(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    # ids of prompt + target + eos (each target ends with eos, so the model learns to stop) -> prompt length
    instances = {}
    for line in (data_dir / "inftythink.jsonl").read_text().splitlines():
        prompt, target = protocol_pair(json.loads(line))
        instances[tuple(ids_of(prompt) + ids_of(target) + [tok.eos_token_id])] = len(ids_of(prompt))
    packed = 0
    for _, ids, labels, _, segs in _rows(trainer, batch):
        for start, end in segs:
            sample = tuple(ids[start:end])
            assert sample in instances, f"not a protocol instance of the data: {tok.decode(sample)!r}"
            cut = start + instances[sample]
            assert labels[start:cut] == [-100] * (cut - start), "prompt tokens must not be trained on"
            assert labels[cut:end] == ids[cut:end], "every target token (eos included) is trained on"
            packed += 1
        assert all(v == -100 for v in labels[segs[-1][1]:]), "padding is never trained on"
    assert packed >= 3, "several samples are packed"


def test_packed_samples_do_not_attend_to_each_other(trainer_and_batch):
    trainer, batch, _ = trainer_and_batch
    model = trainer.model.eval()
    r, _, _, _, segs = next(row for row in _rows(trainer, batch) if len(row[-1]) >= 2)
    (s0, e0), (s1, e1) = segs[:2]
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits[r]
        alone = model(input_ids=batch["input_ids"][r:r + 1, s1:e1]).logits[0]
    torch.testing.assert_close(packed[s1:e1], alone, atol=1e-4, rtol=1e-4)


def test_loss_is_finite_and_falls_on_a_repeated_batch(trainer_and_batch):
    trainer, batch, _ = trainer_and_batch
    model = trainer.model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        loss = model(**{k: v for k, v in batch.items() if k in ("input_ids", "labels", "position_ids")}).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert all(math.isfinite(x) for x in losses)
    assert losses[-1] < losses[0] * 0.8, losses


def test_two_steps_then_resume_continues_steps_and_optimizer_state(data_dir, tmp_path):
    torch.set_num_threads(1)
    first = sft.train(tiny_cfg(data_dir, tmp_path))
    assert first["global_step"] == 2 and math.isfinite(first["train_loss"]) and first["resumed_from"] is None
    assert (tmp_path / "final" / "model.safetensors").is_file() and (tmp_path / "train_summary.json").is_file()
    second = sft.train(tiny_cfg(data_dir, tmp_path, max_steps=4))
    assert second["resumed_from"].endswith("checkpoint-2") and second["global_step"] == 4
    optimizer = torch.load(tmp_path / "checkpoint-4" / "optimizer.pt", weights_only=False)
    steps = {int(s["step"]) for s in optimizer["state"].values()}
    assert steps == {4}, f"AdamW state must have continued from step 2 to 4, found {steps}"


def test_vanilla_rows_and_released_schema_rows_convert_with_the_protocol_templates(data_dir):
    from inftythink_eval.scoring import synthetic

    # vanilla.jsonl: build_data draws --vanilla-questions problems (seed + 1) over the depths that fit the window;
    # each is the protocol's n = 1 instance, User:{Q}Assistant: -> <think>\n{trace}\n</think>{conclusion}
    summary = json.loads((data_dir / "data_summary.json").read_text())
    problems = synthetic.problems(range(1, summary["vanilla_max_depth"] + 1), summary["vanilla_questions"],
                                  seed=summary["seed"] + 1)
    expected = [{"prompt": f"User:{p.question}Assistant:", "completion": f"<think>\n{p.trace()}\n</think>{p.answer}"}
                for p in problems]
    assert sft.read_rows([data_dir / "vanilla.jsonl"]) == expected and len(expected) == 8
    final = sft.to_prompt_completion({"question": "q", "history": "h", "reasoning_process": "r",
                                      "summary": "s", "conclusion": "42"})
    assert final == {"prompt": "User:qAssistant:<history>h</history>", "completion": "<think>\nr\n</think>42"}
    first = sft.to_prompt_completion({"question": "q", "history": None, "reasoning_process": "r",
                                      "summary": "s", "conclusion": None})
    assert first == {"prompt": "User:qAssistant:", "completion": "<think>\nr\n</think>\n<summary>\ns\n</summary>"}
    with pytest.raises(ConfigError, match="expected prompt/completion or the released schema"):
        sft.to_prompt_completion({"text": "x"})
    with pytest.raises(ConfigError, match="does not exist"):
        sft.read_rows(["/nonexistent/data.jsonl"])


def test_inftythink_train_cli_runs_the_recipe_in_process(data_dir, tmp_path, capsys):
    import yaml

    from inftythink_eval.cli import main

    cfg = tiny_cfg(data_dir, tmp_path / "out")
    from inftythink_eval.training.config import to_dict

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(to_dict(cfg)))
    assert main(["train", "--config", str(path), "max_steps=1", "resume=never"]) == 0
    assert "done: 1 steps" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "train_summary.json").read_text())["global_step"] == 1


def test_builder_route_and_direct_template_route_give_the_same_training_pairs(data_dir):
    from inftythink_eval.scoring import synthetic
    from inftythink_eval.training.scratch import char_tokenizer

    tok = char_tokenizer()
    count = lambda text: len(tok(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    pairs = lambda rows: Counter(json.dumps(sft.to_prompt_completion(r)) for r in rows)  # noqa: E731
    built = [json.loads(line) for line in (data_dir / "inftythink.jsonl").read_text().splitlines()]
    # the fixture's questions, drawn as build_data draws them; all compared, as a multiset, so a question
    # drawn twice counts twice instead of being skipped
    args = json.loads((data_dir / "data_summary.json").read_text())
    problems = synthetic.problems(range(1, args["max_depth"] + 1), args["questions"], seed=args["seed"])
    direct = [r for p in problems for r in build_data.instances_direct(p, args["eta"], count)]
    assert len(direct) > len(problems) == 12, "several rounds per question"
    assert pairs(built) == pairs(direct)


def test_data_folders_of_parquet_shards_are_read(data_dir, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [json.loads(line) for line in (data_dir / "inftythink.jsonl").read_text().splitlines()]
    (tmp_path / "instances").mkdir()
    pq.write_table(pa.Table.from_pylist(rows[:5]), tmp_path / "instances" / "part-0.parquet")
    pq.write_table(pa.Table.from_pylist(rows[5:9]), tmp_path / "instances" / "part-1.parquet")
    assert sft.read_rows([tmp_path / "instances"]) == [sft.to_prompt_completion(r) for r in rows[:9]]


@pytest.mark.timeout(900)   # bounds a hang: ~40 s measured on 2 loaded cores
def test_accelerate_launch_runs_the_same_recipe(data_dir, tmp_path):
    import os
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "inftythink_eval.cli", "train", "--config",
           str(ROOT / "training/configs/tiny-synthetic_inftythink.yaml"),
           "--accelerate", str(ROOT / "training/accelerate/single_gpu.yaml"),
           f"data={data_dir / 'inftythink.jsonl'}", "max_steps=1", f"output_dir={tmp_path}",
           "global_batch_size=2", "per_device_batch_size=2", "scratch.hidden_size=32", "scratch.num_hidden_layers=1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=880, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((tmp_path / "train_summary.json").read_text())["global_step"] == 1


def test_the_checkout_launcher_runs_the_packages_recipe(tmp_path):
    """``training/recipes/sft.py`` is a thin launcher of ``inftythink_eval.training.sft`` (for ``accelerate launch
    training/recipes/sft.py``); ``inftythink train`` loads the recipe from the package, so a wheel is enough."""
    import subprocess
    import sys

    from inftythink_eval.training.cli import load_recipe

    assert load_recipe() is sft
    for launcher in ([str(ROOT / "training" / "recipes" / "sft.py")], ["-m", "inftythink_eval.training.sft"]):
        proc = subprocess.run([sys.executable, *launcher, "--config", str(tmp_path / "missing.yaml")],
                              capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert proc.returncode == 2 and "no training config at" in proc.stderr, proc.stderr[-2000:]
