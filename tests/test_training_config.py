"""Every training config loads and validates; wrong keys, values and overrides fail with clear errors."""

from pathlib import Path

import pytest

from inftythink_eval.training.config import ConfigError, TrainConfig, from_dict, load

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "training" / "configs").glob("*.yaml"))
PAPER_MODELS = ("qwen2.5-math-1.5b", "qwen2.5-math-7b", "qwen2.5-14b", "qwen2.5-32b", "llama-3.1-8b",
                "deepseek-r1-distill-qwen-1.5b")
MINIMAL = {"model": "m", "data": ["d.jsonl"], "output_dir": "o"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_config_loads_and_states_its_launch_command(path):
    cfg = load(path)
    assert isinstance(cfg, TrainConfig)
    assert cfg.format in path.stem
    head = path.read_text().splitlines()[:6]
    assert any("inftythink train --config training/configs/" + path.name in line for line in head), \
        f"{path.name} must start with its launch command as a comment"


@pytest.mark.parametrize("model", PAPER_MODELS)
@pytest.mark.parametrize("fmt", ("vanilla", "inftythink"))
def test_one_config_per_paper_model_and_format_with_protocol_defaults(model, fmt):
    cfg = load(ROOT / "training" / "configs" / f"{model}_{fmt}.yaml")
    assert (cfg.max_length, cfg.global_batch_size, cfg.warmup_ratio, cfg.lr_scheduler) == (16384, 32, 0.03, "cosine")
    assert cfg.packing and cfg.gradient_checkpointing and cfg.precision == "auto"


@pytest.mark.parametrize("name,fmt", [("deepseek-r1-distill-qwen-1.5b_inftythink_plus", "inftythink_plus"),
                                      ("deepseek-r1-distill-qwen-1.5b_plus-vanilla", "vanilla")])
def test_inftythink_plus_configs_and_their_vanilla_twin_use_the_plus_protocol_sft_settings(name, fmt):
    cfg = load(ROOT / "training" / "configs" / f"{name}.yaml")
    assert cfg.model == "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B" and cfg.format == fmt and cfg.template == "chat"
    assert (cfg.num_epochs, cfg.max_length, cfg.global_batch_size, cfg.learning_rate) == (3, 32768, 8, 2e-5)
    assert (cfg.lr_scheduler, cfg.warmup_ratio) == ("cosine", 0.03) and cfg.packing


def test_template_defaults_by_format_and_plus_cannot_train_on_native_strings():
    assert from_dict({**MINIMAL, "format": "inftythink_plus"}).template == "chat"
    assert from_dict({**MINIMAL, "format": "inftythink"}).template == "native"
    assert from_dict({**MINIMAL, "format": "vanilla", "template": "chat"}).template == "chat"
    with pytest.raises(ConfigError, match="template='native' is invalid; expected chat for format inftythink_plus"):
        from_dict({**MINIMAL, "format": "inftythink_plus", "template": "native"})
    with pytest.raises(ConfigError, match="template='jinja' is invalid; expected one of"):
        from_dict({**MINIMAL, "template": "jinja"})
    with pytest.raises(ConfigError, match="scratch.chat_template='chatml' is invalid"):
        from_dict({**MINIMAL, "model": "scratch", "scratch": {"chars": "ab", "chat_template": "chatml"}})


def test_scratch_chat_template_plus_is_read_as_inftythink_plus():
    """One spelling of the format (issue 20); ``plus``, the spelling of configs and train summaries written
    before it (zoo/tiny-synthetic-inftythink-plus/train_summary.json), is still read."""
    for name in ("plus", "inftythink_plus"):
        cfg = from_dict({**MINIMAL, "model": "scratch", "scratch": {"chars": "ab", "chat_template": name}})
        assert cfg.scratch["chat_template"] == "inftythink_plus"
    tiny = load(ROOT / "training/configs/tiny-synthetic_inftythink_plus.yaml")
    assert tiny.scratch["chat_template"] == "inftythink_plus"


def test_accelerate_configs_exist_for_one_gpu_one_node_and_several_nodes():
    names = {p.stem for p in (ROOT / "training" / "accelerate").glob("*.yaml")}
    assert {"single_gpu", "node_8gpu_zero3", "multinode_zero3", "node_8gpu_fsdp"} <= names


def test_wrong_key_names_the_key_and_suggests_the_right_one(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: m\ndata: d.jsonl\noutput_dir: o\nlearnig_rate: 1e-5\n")
    with pytest.raises(ConfigError, match=r"unknown key 'learnig_rate'.*did you mean 'learning_rate'"):
        load(bad)


def test_wrong_values_are_clear_errors():
    with pytest.raises(ConfigError, match="format='chat' is invalid; expected one of"):
        from_dict({**MINIMAL, "format": "chat"})
    with pytest.raises(ConfigError, match="missing required key"):
        from_dict({"model": "m"})
    with pytest.raises(ConfigError, match="max_steps='many' is not a valid int"):
        from_dict({**MINIMAL, "max_steps": "many"})
    with pytest.raises(ConfigError, match="global_batch_size=30 is invalid; expected a multiple of per_device_batch_size=4"):
        from_dict({**MINIMAL, "global_batch_size": 30, "per_device_batch_size": 4})
    with pytest.raises(ConfigError, match="scratch.chars"):
        from_dict({**MINIMAL, "model": "scratch"})


def test_overrides_are_typed_and_reach_into_dicts():
    path = ROOT / "training" / "configs" / "tiny-synthetic_inftythink.yaml"
    cfg = load(path, ["learning_rate=1e-4", "max_steps=7", "packing=false", "scratch.hidden_size=32",
                      "data=[a.jsonl, b.jsonl]"])
    assert (cfg.learning_rate, cfg.max_steps, cfg.packing) == (1e-4, 7, False)
    assert cfg.scratch["hidden_size"] == 32 and cfg.scratch["chars"] == "printable"
    assert cfg.data == ("a.jsonl", "b.jsonl")
    with pytest.raises(ConfigError, match=r"override: expected key=value, e.g. learning_rate=2e-5.*got 'learning_rate'"):
        load(path, ["learning_rate"])
    with pytest.raises(ConfigError, match="override: max_steps is given twice"):
        load(path, ["max_steps=1", "max_steps=2"])
    with pytest.raises(ConfigError, match="did you mean 'max_steps'"):
        load(path, ["max_step=3"])


def test_gradient_accumulation_reaches_the_global_batch():
    cfg = from_dict({**MINIMAL, "global_batch_size": 32, "per_device_batch_size": 2})
    assert cfg.grad_accumulation(1) == 16 and cfg.grad_accumulation(8) == 2
    with pytest.raises(ConfigError, match="not divisible"):
        cfg.grad_accumulation(3)


def test_train_cli_dry_run_validates_and_prints_the_accelerate_launch(capsys):
    from inftythink_eval.cli import main

    cfg = "training/configs/qwen2.5-math-7b_inftythink.yaml"
    assert main(["train", "--config", str(ROOT / cfg), "--dry-run", "learning_rate=2e-5",
                 "--accelerate", str(ROOT / "training/accelerate/node_8gpu_zero3.yaml")]) == 0
    out = capsys.readouterr().out
    assert "'learning_rate': 2e-05" in out and "accelerate.commands.launch --config_file" in out
    assert " -m inftythink_eval.training.sft --config " in out, "the recipe runs from the package (no checkout needed)"
    assert main(["train", "--config", str(ROOT / cfg), "--dry-run", "learnin_rate=1"]) == 2
    assert "did you mean 'learning_rate'" in capsys.readouterr().err
