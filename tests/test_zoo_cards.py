"""Zoo cards: every card is complete and evaluable, ``zoo:<name>`` resolves, the CLI lists and shows them."""

import argparse
from pathlib import Path

import pytest

from inftythink_eval.checkpoints import cards as zoo
from inftythink_eval.checkpoints import cli as zoo_cli
from inftythink_eval.lmeval.config import parse

RELEASED = {"inftythink-1.5b": "yanyc/InftyThink-1.5B", "inftythink-plus-t-1.5b": "yanyc/InftyThink-Plus-T-1.5B",
            "inftythink-plus-te-1.5b": "yanyc/InftyThink-Plus-TE-1.5B",
            "delethink-24k-1.5b": "McGill-NLP/delethink-24k-1.5b", "delethink-96k-1.5b": "McGill-NLP/delethink-96k-1.5b",
            "longcot-24k-1.5b": "McGill-NLP/longcot-24k-1.5b", "longcot-8k-1.5b": "McGill-NLP/longcot-8k-1.5b"}
CARDS = sorted(zoo.cards())


def test_the_zoo_holds_the_released_checkpoints_the_test_model_and_the_tiny_pair():
    assert set(RELEASED) | {"smollm2-135m-instruct", "tiny-synthetic-vanilla", "tiny-synthetic-inftythink"} <= set(CARDS)
    for name, hub_id in RELEASED.items():
        assert zoo.get_card(name).source["hub_id"] == hub_id


@pytest.mark.parametrize("name", CARDS)
def test_every_card_validates_its_eval_args_with_the_evaluator(name):
    card = zoo.get_card(name)
    config = parse({"pretrained": f"zoo:{name}", "mode": card.eval_mode, **card.eval_args})
    assert config.mode == card.eval_mode
    for score in card.raw["scores"].get("reported") or []:
        assert score.get("source"), f"{name}: every reported score states its source"


def test_zoo_defaults_are_applied_in_the_one_parse_and_explicit_keys_win():
    config = parse({"pretrained": "zoo:tiny-synthetic-inftythink"})
    assert (config.mode, config.mode_args, config.backend_args) == \
        ("inftythink", {"round_tokens": 200, "max_rounds": 40}, {"batch_size": 32})
    assert config.pretrained == "zoo:tiny-synthetic-inftythink"
    assert config.model_path() == zoo.resolve("zoo:tiny-synthetic-inftythink")[0]
    config = parse({"pretrained": "zoo:tiny-synthetic-inftythink", "mode": "vanilla", "batch_size": "2",
                    "max_rounds": None})
    assert (config.mode, config.mode_args, config.backend_args) == ("vanilla", {"round_tokens": 200}, {"batch_size": 2})
    assert parse({"backend": "scripted"}).mode == "vanilla"
    with pytest.raises(ValueError, match="unknown zoo model 'nope'"):
        parse({"pretrained": "zoo:nope"})


def test_local_cards_point_at_committed_transformers_folders():
    for name in ("tiny-synthetic-vanilla", "tiny-synthetic-inftythink"):
        path, defaults = zoo.resolve(f"zoo:{name}")
        assert (Path(path) / "model.safetensors").is_file() and (Path(path) / "tokenizer.json").is_file()
        assert defaults["mode"] == name.rsplit("-", 1)[1]
        training = zoo.get_card(name).raw["training"]
        assert (Path(__file__).resolve().parents[1] / training["config"]).is_file()


def test_resolve_passes_plain_paths_through_and_names_unknown_cards():
    assert zoo.resolve("/some/folder") == ("/some/folder", {})
    with pytest.raises(ValueError, match="unknown zoo model 'nope'.*inftythink zoo list"):
        zoo.resolve("zoo:nope")


def test_a_broken_card_is_a_clear_error(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: broken\nsource: {hub_id: x/y}\neval: {mode: vanilla}\nsurprise: 1\n")
    with pytest.raises(ValueError, match=r"missing \['description'.*unknown \['surprise'\]"):
        zoo.load_card(bad)
    renamed = tmp_path / "other.yaml"
    renamed.write_text((Path(zoo.zoo_dir()) / "inftythink-1.5b.yaml").read_text())
    with pytest.raises(ValueError, match="must equal the file name 'other'"):
        zoo.load_card(renamed)


def test_cli_lists_and_shows(capsys):
    assert zoo_cli.run(argparse.Namespace(action="list", name=None)) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in CARDS) and "yanyc/InftyThink-1.5B" in listing
    assert zoo_cli.run(argparse.Namespace(action="show", name="tiny-synthetic-inftythink")) == 0
    shown = capsys.readouterr().out
    assert "mode: inftythink" in shown and "resolves to:" in shown
    assert zoo_cli.run(argparse.Namespace(action="show", name="nope")) == 2
    assert zoo_cli.run(argparse.Namespace(action="show", name=None)) == 2


def test_tiny_cards_carry_the_committed_curve():
    import json

    curve = json.loads((Path(__file__).resolve().parents[1] / "docs" / "training_curve.json").read_text())
    for name, variant in (("tiny-synthetic-inftythink", "inftythink"), ("tiny-synthetic-vanilla", "vanilla")):
        measured = {m["depth"]: m["acc"] for m in zoo.get_card(name).raw["scores"]["measured"]}
        cells = {c["depth"]: round(c["acc"], 3) for c in curve["cells"] if c["variant"] == variant}
        assert measured == cells, f"{name}: card scores drifted from docs/training_curve.json"


PLUS_REPORTED = {  # PROTOCOL_PLUS.md "Reported", R1-Distill-Qwen-1.5B base: (ACC %, TOK k, LAT s) per benchmark
    "inftythink-plus-t-1.5b": {"MATH500": (91.56, 6.10, 34.26), "AIME24": (50.94, 23.36, 102.85),
                               "AIME25": (35.83, 26.34, 113.78), "GPQA_diamond": (37.50, 24.27, 149.93)},
    "inftythink-plus-te-1.5b": {"MATH500": (89.96, 3.36, 17.71), "AIME24": (43.96, 13.13, 57.50),
                                "AIME25": (32.92, 7.45, 68.39), "GPQA_diamond": (35.46, 8.69, 49.87)},
}


@pytest.mark.parametrize("name", sorted(PLUS_REPORTED))
def test_plus_cards_evaluate_in_their_own_format_with_their_reported_rows(name):
    card = zoo.get_card(name)
    assert card.eval_mode == "inftythink_plus" and zoo.resolve(f"zoo:{name}")[1]["mode"] == "inftythink_plus"
    reported = card.raw["scores"]["reported"]
    own = {r["benchmark"]: (r["acc"], r["tok_k"], r["lat_s"]) for r in reported if r["row"] == "this checkpoint"}
    assert own == PLUS_REPORTED[name]
    assert all(r["samples"] == 32 and r["temperature"] == 0.7 for r in reported)
    baselines = {r["row"] for r in reported if r["row"] != "this checkpoint"}
    assert {"Vanilla SFT (same base, R1-Distill-Qwen-1.5B)", "InftyThink+ SFT (same base, R1-Distill-Qwen-1.5B)"} <= baselines
    assert "inftythink_plus_n32" in card.path.read_text().splitlines()[1]  # the header's launch command
