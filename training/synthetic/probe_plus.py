"""Probe the tiny InftyThink+ model's two skills, greedy, on 60 fresh problems (seed 777, depths 20..200).

    python training/synthetic/probe_plus.py zoo/tiny-synthetic-inftythink-plus
    python training/synthetic/probe_plus.py runs/tiny-synthetic-inftythink-plus/checkpoint-500 \
        --tokenizer zoo/tiny-synthetic-inftythink-plus

* first iteration: after ``<|user|>{question}<|assistant|><think>\\n`` the first line must be
  ``R{n-1} {x0}+...``: it reads n and x0 from the question;
* from a history: after ``<history>\\nR{n-10} x={x_10}\\n</history><think>\\n`` the first line must be step 11:
  it continues from a summary.

Prints ``first iteration a/60, from a history b/60``. A quick check of a checkpoint during training
(seconds), before the full depth curve (``scripts/synthetic_curve.py``, minutes).
"""

from __future__ import annotations

import argparse

from inftythink_eval.scoring.synthetic import problems, summary_line
from inftythink_eval.formats.inftythink import THINK_OPEN, chat_messages
from inftythink_eval.formats.plus import history_block

THINK = THINK_OPEN + "\n"


def first_line(model, tokenizer, prompt: str) -> str:
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=14, do_sample=False, pad_token_id=tokenizer.eos_token_id)
    return tokenizer.decode(out[0, ids.shape[1]:]).split("\n")[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="a model folder (the zoo folder or a training checkpoint)")
    ap.add_argument("--tokenizer", help="tokenizer folder when the model folder has none (a checkpoint)")
    ap.add_argument("--count", type=int, default=60)
    args = ap.parse_args(argv)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer or args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model).eval()
    first = from_history = 0
    for p in problems(range(20, 201), args.count, 777):
        lines, xs = p.lines(), p.states()
        chat = tokenizer.apply_chat_template(chat_messages(p.question), add_generation_prompt=True, tokenize=False)
        first += first_line(model, tokenizer, chat + THINK) == lines[0]
        history = history_block(summary_line(p.n - 10, xs[10]))
        from_history += first_line(model, tokenizer, chat + history + THINK) == lines[10]
    print(f"{args.model}: first iteration {first}/{args.count}, from a history {from_history}/{args.count}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
