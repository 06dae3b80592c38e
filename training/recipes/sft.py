"""Launcher of the SFT recipe ``inftythink_eval.training.sft`` (the recipe itself lives in the package).

Kept so that a checkout can run the recipe by its path, e.g. under accelerate for several GPUs:

    accelerate launch --config_file training/accelerate/node_8gpu_zero3.yaml \
        training/recipes/sft.py --config training/configs/qwen2.5-math-7b_inftythink.yaml

The same without a checkout: ``inftythink train --config FILE [--accelerate FILE]``, or
``accelerate launch ... -m inftythink_eval.training.sft --config FILE``.  Read the recipe in
``inftythink_eval/training/sft.py``.
"""

import sys

from inftythink_eval.training.sft import main

if __name__ == "__main__":
    sys.exit(main())
