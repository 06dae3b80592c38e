"""GPU smoke check and overhead numbers on CUDA (run on a lent GPU machine; not part of the tests).

Builds a randomly initialised model from a config + tokenizer folder (real
weights are too large to ship to the device machine; the mechanics and the
overhead ratio do not depend on them), then, on the request-level backend
named by ``--backend`` (``hf`` on ``device=cuda``, or ``vllm`` where vLLM is
installed):

- every mode through the engine, with each mode's totals;
- per-request timing: a 2-token and a 256-token request submitted together
  (the short one's LAT must be a small fraction of the long one's);
- sampled requests with different seeds in one batch (hf: the batch size used);
- loglikelihood;
- hf with ``--paths``: tokens/s of its continuous path, its batched path, transformers' ``generate`` and
  ``generate_batch`` at 1, 8 and 32 requests, and the ratios (``bench_backends.py paths`` on the GPU).

Run: ``python benchmarks/gpu_check.py CONFIG_DIR [--backend hf|vllm] [--continuous on|auto|off] [--paths]``
(CONFIG_DIR holds config.json and tokenizer files; ``--continuous`` chooses hf's path for the checks above).
Not covered: the openai backend (it needs a server; see tests/test_vllm_engine.py).
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM

from inftythink_eval.backends.base import Request, SamplingParams, make_backend
from inftythink_eval.engine.loop import Engine
from inftythink_eval.modes import ModeParams, Sample


def random_model(config_dir: Path, out: Path) -> str:
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(config_dir), dtype=torch.bfloat16)
    model.save_pretrained(out)
    for f in config_dir.iterdir():
        if f.name != "config.json":
            shutil.copy(f, out / f.name)
    return str(out)


def main() -> None:
    path = random_model(Path(sys.argv[1]), Path("/tmp/random-model"))
    if "--build-only" in sys.argv:
        print(f"RANDOM_MODEL={path}")
        return
    if "--backend" in sys.argv and sys.argv[sys.argv.index("--backend") + 1] == "vllm":
        backend = make_backend("vllm", pretrained=path, dtype="bfloat16", gpu_memory_utilization=0.5)
    else:
        continuous = sys.argv[sys.argv.index("--continuous") + 1] if "--continuous" in sys.argv else "off"
        backend = make_backend("hf", pretrained=path, batch_size=32, device="cuda", dtype="bfloat16",
                               continuous=continuous)
    print("device:", torch.cuda.get_device_name(0), "backend:", backend.name)
    per_request_timing(backend)
    samples = [Sample(str(i), f"Question number {i}: what is {i} squared?", SamplingParams(max_tokens=256), chat=True)
               for i in range(32)]
    for mode, params in [("vanilla", ModeParams()), ("summarize", ModeParams(eta=64, max_rounds=3, summary_tokens=32)),
                         ("delethink", ModeParams(chunk=64, carryover=16, keep_head=8, max_chunks=3)),
                         ("inftythink", ModeParams(round_tokens=64, max_rounds=3))]:
        start = time.time()
        traces = Engine(backend, mode, params, progress=False).run(samples)
        wall = time.time() - start
        tok = sum(t.totals().tok for t in traces)
        rounds = sum(t.totals().rounds for t in traces) / len(traces)
        print(f"[{mode}] {len(traces)} samples, {wall:.2f}s wall, {tok} tokens ({tok / wall:.0f} tok/s), "
              f"mean rounds {rounds:.2f}, mean LAT {sum(t.totals().lat for t in traces) / len(traces):.2f}s, "
              f"max peak_ctx {max(t.totals().peak_ctx for t in traces)}")
    ll = backend.loglikelihood([("The capital of France is", " Paris")])
    print("loglikelihood on cuda:", ll)
    if backend.name == "hf":
        print("hf paths served:", backend.stats())
        if "--paths" in sys.argv:
            from bench_backends import paths_table   # the benchmark beside this file

            backend.close()
            print(paths_table(path, tokens=256, batch=32, repeats=2, device="cuda", dtype="bfloat16"))
    print(f"RANDOM_MODEL={path}")


def per_request_timing(backend) -> None:
    """Each request returns when it finishes; sampled requests with their own seeds share a batch."""
    prompt = "Write a long story about a cat."
    short, long = backend.generate([Request(prompt, SamplingParams(max_tokens=2)),
                                    Request(prompt, SamplingParams(max_tokens=256))])
    lat_short, lat_long = short.finished - short.submitted, long.finished - long.submitted
    print(f"[timing] 2-token LAT {lat_short:.3f}s, 256-token LAT {lat_long:.3f}s, ratio {lat_short / lat_long:.3f} "
          f"(must be small); first token of the long one after {long.first_token - long.submitted:.3f}s")
    sampled = [Request(prompt, SamplingParams(max_tokens=16, temperature=0.7, top_p=0.95, seed=s)) for s in range(8)]
    outs = backend.generate(sampled)
    print(f"[sampling] 8 seeds, {len({o.output_ids for o in outs})} distinct outputs; hf batch sizes: "
          f"{getattr(backend, 'batches', [])[-3:]}")


if __name__ == "__main__":
    main()
