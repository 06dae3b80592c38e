"""Engine benchmark: prints numbers and ratios (not a test).

1. Engine overhead: vanilla mode through the engine vs calling the backend
   directly on the same prompts, token budget and batch size (real SmolLM2,
   hf backend).  Target: ratio <= 1.05.
2. Scheduling: continuous vs round-synchronous on a skewed workload (some
   samples 1 round, some 5, rounds of random length) on the ``openai``
   backend against a scripted OpenAI-compatible server on 127.0.0.1.

Run: ``python benchmarks/bench_engine.py [--prompts 16] [--tokens 32] [--batch 8]``
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from inftythink_eval.backends.base import Request, SamplingParams, make_backend  # noqa: E402
from inftythink_eval.engine import Engine  # noqa: E402
from inftythink_eval.modes import ModeParams, Sample  # noqa: E402


def overhead(prompts: int, tokens: int, batch: int, repeats: int, pretrained: str | None, device: str) -> None:
    if pretrained is None:
        from inftythink_eval.fetch import smollm2_folder

        pretrained = str(smollm2_folder())
    backend = make_backend("hf", pretrained=pretrained, batch_size=batch, device=device)
    questions = [f"Explain in one sentence why {i} + {i} = {2 * i}." for i in range(prompts)]
    params = SamplingParams(max_tokens=tokens)
    rendered = [backend.apply_chat_template([{"role": "user", "content": q}]) for q in questions]
    engine = Engine(backend, "vanilla", progress=False)
    samples = [Sample(str(i), q, params, chat=True) for i, q in enumerate(questions)]
    direct_times, engine_times = [], []
    for _ in range(repeats):  # interleaved, so machine noise hits both sides alike
        start = time.perf_counter()
        for i in range(0, prompts, batch):
            backend.generate([Request(p, params) for p in rendered[i:i + batch]])
        direct_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        engine.run(samples)
        engine_times.append(time.perf_counter() - start)
    d, e = min(direct_times), min(engine_times)
    print(f"[overhead] hf {Path(pretrained).name} on {device}, {prompts} prompts x {tokens} tokens, batch {batch}, best of {repeats}: "
          f"direct {d:.2f}s, engine {e:.2f}s, ratio {e / d:.3f} (target <= 1.05)")


def scheduling(samples_n: int, concurrency: int, delay: float, seed: int) -> None:
    from scripted_server import serve

    rng = random.Random(seed)
    rules, samples = [], []
    for i in range(samples_n):
        rounds = 5 if i % 4 == 0 else 1
        for r in range(rounds, 0, -1):  # later rounds first: the first matching rule wins
            body = " ".join(["step"] * rng.randint(10, 100))
            final = r == rounds
            text = f"<think>\n{body}\n</think>done" if final else f"<think>\n{body}\n</think>\n<summary>\nS{i}.{r}\n</summary>"
            match = f"Q{i}?Assistant:" + (f"<history>S{i}.{r - 1}</history>" if r > 1 else "")
            rules.append({"match": match, "output": text})
        samples.append(Sample(str(i), f"Q{i}?", SamplingParams(max_tokens=500)))
    server, url = serve(rules, delay_per_token=delay)
    try:
        times = {}
        for schedule in ("continuous", "rounds"):
            backend = make_backend("openai", base_url=url, pretrained="scripted", concurrency=concurrency)
            start = time.perf_counter()
            traces = Engine(backend, "inftythink", ModeParams(), schedule=schedule, progress=False).run(samples)
            times[schedule] = time.perf_counter() - start
            assert all(t.final.answer == "done" for t in traces)
        rounds = sum(t.totals().rounds for t in traces)
        print(f"[scheduling] openai backend, scripted server, {samples_n} samples ({rounds} rounds; 1/4 of samples "
              f"5 rounds), concurrency {concurrency}, {delay * 1000:.1f} ms/token: continuous "
              f"{times['continuous']:.2f}s, round-synchronous {times['rounds']:.2f}s, "
              f"speed-up {times['rounds'] / times['continuous']:.2f}x")
    finally:
        server.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--delay", type=float, default=0.002, help="server seconds per generated token")
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--pretrained", default=None, help="model for the overhead run (default: SmolLM2 from the zoo)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    scheduling(args.samples, args.concurrency, args.delay, seed=0)
    if not args.skip_overhead:
        overhead(args.prompts, args.tokens, args.batch, args.repeats, args.pretrained, args.device)


if __name__ == "__main__":
    main()
