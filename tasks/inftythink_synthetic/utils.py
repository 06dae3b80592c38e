"""Hooks of the inftythink_synthetic task: documents from ``inftythink_eval.scoring.synthetic``, strict scoring, engine stats."""
from inftythink_eval.scoring.synthetic import lm_eval_dataset as load, lm_eval_results as process_results  # noqa: F401
