"""Task hooks: load_benchmark and every registered task family's hooks (inftythink_eval.scoring.hooks, built from the registry)."""
from inftythink_eval.scoring.hooks import *  # noqa: F401,F403
