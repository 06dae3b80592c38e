"""SFT recipe for InftyThink, InftyThink+ (and vanilla) checkpoints: one flat file, TRL's SFTTrainer on accelerate.

Run it through the CLI (``inftythink train --config training/configs/<name>.yaml [key=value ...]``),
as a module, or under accelerate for several GPUs (``python -m inftythink_eval.training.sft`` works from an
installed wheel; ``training/recipes/sft.py`` in a checkout is a launcher of this module):

    accelerate launch --config_file training/accelerate/node_8gpu_zero3.yaml \
        -m inftythink_eval.training.sft --config training/configs/qwen2.5-math-7b_inftythink.yaml

Owns: the training run, in order (setup -> train -> save):
  1. rows, by ``template``:
     ``native`` (v1): builder output (released schema: question, history, reasoning_process,
     summary, conclusion) or prompt/completion rows -> prompt/completion pairs
     (``formats.inftythink.training_pair``, the builder's own template, so training and
     evaluation formats cannot drift);
     ``chat`` (InftyThink+): ``messages`` rows -> token ids with a loss mask: the context turns
     rendered by the base model's chat template as a generation prompt (the evaluator's prompt),
     then the last assistant turn, split by ``formats.plus.training_pieces``: no loss on the
     prompt nor on the turn's ``<history>…</history>`` span (the cold-start recipe's loss-scale
     regex), loss on the rest and on eos;
  2. model: a hub id / folder, or ``scratch`` (char tokenizer + tiny Llama);
  3. TRL SFTTrainer: loss on the completion only; best-fit packing, padding-free, with
     position ids reset per sample (transformers turns reset position ids into a
     block-diagonal mask, so packed samples never attend to each other); the packed rows go
     to the model flat (one sequence, for varlen kernels) or as batch rows (sdpa/eager, e.g.
     on CPU, where attention over one long flat sequence costs ~5x more); bf16 where
     available; gradient checkpointing; global batch by gradient accumulation;
     warmup ratio then cosine to 0; checkpoints every save_steps and resume;
  4. save: the final model + tokenizer in ``output_dir/final`` and ``train_summary.json``.

This file is a recipe (the stated exception to the module-size rule): read it top to bottom.

Does not know: the formats' bytes (``formats`` owns them), evaluation, backends, lm-eval.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from inftythink_eval.formats import inftythink, plus
from inftythink_eval.training.config import ConfigError, TrainConfig, load, to_dict

SCHEMA_KEYS = inftythink.ROW_KEYS


# --- 1. rows ---------------------------------------------------------------------------------
def to_prompt_completion(row: dict) -> dict:
    """One builder row -> {prompt, completion} in the native format (PROTOCOL.md, "Instances").

    A row with a non-empty ``conclusion`` is a final round (the builder may also store the last
    summary there; it is not part of the final target).
    """
    if "prompt" in row and "completion" in row:
        return {"prompt": row["prompt"], "completion": row["completion"]}
    if not all(k in row for k in SCHEMA_KEYS):
        raise ConfigError(f"data row has keys {sorted(row)}; expected prompt/completion or the released schema "
                          f"({', '.join(SCHEMA_KEYS)}, history, summary); build data with `inftythink data`")
    prompt, completion = inftythink.training_pair(**inftythink.row_fields(row))
    return {"prompt": prompt, "completion": completion}


def to_chat_example(row: dict, tokenizer) -> dict:
    """One chat row -> ``{input_ids, completion_mask}`` (mask 1 = loss) for the ``chat`` template.

    Text = the chat template's generation prompt over the turns before the last, then the last
    assistant turn, then eos; ``formats.plus.training_pieces`` says which pieces carry loss (not
    the prompt, not a ``<history>…</history>`` span).  Each piece is tokenized on its own: the ids
    of the prompt + history are exactly what the evaluator feeds the model before it writes ``<think>``.
    """
    messages = row.get("messages")
    if not messages or messages[-1].get("role") != "assistant" or len(messages) < 2:
        raise ConfigError(f"chat row {str(row)[:200]!r}: expected messages = [..., user, assistant] (InftyThink+ "
                          "cold-start rows, `inftythink data build --format inftythink_plus`); v1 rows train with "
                          "template: native")
    if any(m["role"] == "user" and inftythink.is_native_prompt(m["content"]) for m in messages):
        raise ConfigError("chat row holds a v1 native prompt (User:…Assistant:) in its user turn; these are v1 "
                          "rows: train them with template: native, or build InftyThink+ rows with "
                          "--format inftythink_plus")
    prompt = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=False)
    ids, mask = [], []
    for text, trained in plus.training_pieces(prompt, messages[-1]["content"]):
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += piece
        mask += [int(trained)] * len(piece)
    return {"input_ids": ids + [tokenizer.eos_token_id], "completion_mask": mask + [1]}


def read_rows(paths, convert=to_prompt_completion) -> list[dict]:
    """All rows of the data files (or of every .parquet/.jsonl in a folder, e.g. the builder's
    ``instances/``), each through ``convert``; a missing or unknown file is a clear error."""
    rows: list[dict] = []
    files = [f for raw in paths for f in (sorted(Path(raw).glob("*.parquet")) + sorted(Path(raw).glob("*.jsonl"))
                                          if Path(raw).is_dir() else [Path(raw)])]
    for path in files:
        if not path.is_file():
            raise ConfigError(f"training data {path} does not exist; build it first (see docs/training.md)")
        if path.suffix == ".jsonl":
            with path.open(encoding="utf-8") as fh:
                rows += [convert(json.loads(line)) for line in fh if line.strip()]
        elif path.suffix == ".parquet":
            import pyarrow.parquet as pq

            rows += [convert(r) for r in pq.read_table(path).to_pylist()]
        else:
            raise ConfigError(f"training data {path}: expected a .jsonl or .parquet file")
    if not rows:
        raise ConfigError(f"training data {list(paths)} holds no rows")
    return rows


# --- 2. model --------------------------------------------------------------------------------
def load_model(cfg: TrainConfig):
    """(model, tokenizer): from the hub / a folder, or built from scratch."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if cfg.model == "scratch":
        from inftythink_eval.training.scratch import char_tokenizer, tiny_model

        tokenizer = char_tokenizer(cfg.scratch["chars"], cfg.scratch.get("chat_template", "native"))
        model = tiny_model(tokenizer, cfg.scratch, seed=cfg.seed)
    else:
        tokenizer = AutoTokenizer.from_pretrained(cfg.model)
        kwargs = {"attn_implementation": cfg.attn_implementation} if cfg.attn_implementation else {}
        model = AutoModelForCausalLM.from_pretrained(cfg.model, dtype="auto", **kwargs)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def use_bf16(cfg: TrainConfig) -> bool:
    import torch

    if cfg.precision == "auto":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return cfg.precision == "bf16"


# --- 3. trainer ------------------------------------------------------------------------------
def make_trainer(cfg: TrainConfig, model=None, tokenizer=None, rows=None):
    """The SFTTrainer for ``cfg`` (arguments built here, nowhere else)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    if model is None:
        model, tokenizer = load_model(cfg)
    if rows is None:
        chat = cfg.template == "chat"
        rows = read_rows(cfg.data, (lambda row: to_chat_example(row, tokenizer)) if chat else to_prompt_completion)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    args = SFTConfig(
        output_dir=cfg.output_dir,
        max_length=cfg.max_length,
        packing=cfg.packing,
        packing_strategy="bfd",          # best-fit decreasing; implies padding-free + per-sample position ids
        padding_free=cfg.packing,
        completion_only_loss=True,       # loss on targets only: prompt (and history) tokens get label -100
        per_device_train_batch_size=cfg.per_device_batch_size,
        gradient_accumulation_steps=cfg.grad_accumulation(world),
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.num_epochs,
        max_steps=cfg.max_steps,
        warmup_steps=cfg.warmup_ratio,     # transformers 5: a float in [0, 1) is a ratio of total steps
        lr_scheduler_type=cfg.lr_scheduler,  # "cosine" ends at 0
        weight_decay=cfg.weight_decay,
        bf16=use_bf16(cfg),
        **{_checkpointing_key(): cfg.gradient_checkpointing},  # recompute activations in backward
        logging_steps=cfg.logging_steps,
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        report_to=[] if cfg.report_to == "none" else [cfg.report_to],
        seed=cfg.seed,
        dataloader_num_workers=cfg.dataloader_workers,
        disable_tqdm=False,              # progress bar
        use_cpu=not _has_accelerator(),
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
    if cfg.packing and packed_layout(cfg, model) == "rows":
        trainer.data_collator = RowPackedCollator(tokenizer.pad_token_id)
    return trainer


def packed_layout(cfg: TrainConfig, model) -> str:
    """``flat`` for varlen attention kernels (flash attention), ``rows`` otherwise (see TrainConfig)."""
    if cfg.packed_layout != "auto":
        return cfg.packed_layout
    impl = str(getattr(model.config, "_attn_implementation", None) or cfg.attn_implementation or "")
    return "flat" if "flash" in impl else "rows"


class RowPackedCollator:
    """Packed rows as batch rows: position ids reset per sample, no attention mask (so transformers
    builds a block-diagonal mask per row from the position ids), and no label on the first token of
    a sample (it would be predicted from the previous sample's last token)."""

    def __init__(self, pad_token_id: int):
        from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

        self.inner = DataCollatorForLanguageModeling(pad_token_id=pad_token_id, return_position_ids=True)

    def __call__(self, examples: list[dict]) -> dict:
        out = self.inner(examples)
        out.pop("attention_mask", None)
        out["labels"][out["position_ids"] == 0] = -100
        return out


def _checkpointing_key() -> str:
    """transformers 5 renamed gradient_checkpointing to activation_checkpointing (the old name warns, goes in v6)."""
    from transformers import TrainingArguments

    fields = getattr(TrainingArguments, "__dataclass_fields__", {})
    return "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"


def _has_accelerator() -> bool:
    import torch

    return torch.cuda.is_available()


def resume_from(cfg: TrainConfig):
    """The checkpoint to resume from: None, the latest in output_dir (auto), or the named folder."""
    from transformers.trainer_utils import get_last_checkpoint

    if cfg.resume == "never":
        return None
    if cfg.resume == "auto":
        return get_last_checkpoint(cfg.output_dir) if Path(cfg.output_dir).is_dir() else None
    if not Path(cfg.resume).is_dir():
        raise ConfigError(f"resume={cfg.resume!r} is not a checkpoint folder; use auto, never or a checkpoint-N path")
    return cfg.resume


# --- 4. run + save ---------------------------------------------------------------------------
def train(cfg: TrainConfig) -> dict:
    """Train, save ``output_dir/final`` and ``train_summary.json``; returns the summary."""
    started = time.time()
    trainer = make_trainer(cfg)
    checkpoint = resume_from(cfg)
    result = trainer.train(resume_from_checkpoint=checkpoint)
    final = Path(cfg.output_dir) / "final"
    trainer.save_model(str(final))
    trainer.processing_class.save_pretrained(str(final))
    summary = {"config": to_dict(cfg), "resumed_from": checkpoint, "global_step": trainer.state.global_step,
               "train_loss": result.training_loss, "log_history": trainer.state.log_history,
               "parameters": sum(p.numel() for p in trainer.model.parameters()),
               "wall_seconds": round(time.time() - started, 1)}
    if trainer.is_world_process_zero():
        tmp = Path(cfg.output_dir) / "train_summary.json.tmp"
        tmp.write_text(json.dumps(summary, indent=1), encoding="utf-8")
        os.replace(tmp, Path(cfg.output_dir) / "train_summary.json")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="training/configs/<name>.yaml")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. learning_rate=2e-5 max_steps=10")
    args = parser.parse_args(argv)
    try:
        cfg = load(args.config, args.overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = train(cfg)
    print(f"done: {summary['global_step']} steps, train loss {summary['train_loss']:.4f}, "
          f"model in {Path(cfg.output_dir) / 'final'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
