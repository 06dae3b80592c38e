"""A shorter token budget's call, derived from a longer generation of the same call.

Owns: the rule that decides when the first B tokens of a finished generation *are* the generation at
budget B, and building that completion.  With greedy decoding, or per-request seeds, a generation at
budget B is the first B tokens of the same call at a larger budget (the sweep's vanilla budgets rest on
this; ``inftythink sweep`` turns it on with ``derive_budgets=true``).  From a cached entry of the same
call (``run.cache.CallCache.longest``: same backend, role, prompt and sampling, a larger ``max_tokens``):

- the longer run stopped (EOS) at n <= B tokens and its text is the plain decoding of its ids: the call at
  B is the same call (same text, ids, finish reason and latency);
- it made n > B tokens: the call at B is its first B ids, their text as the backend decodes it, finish
  ``length``, and its latency the time the B-th token was produced, where the backend recorded token
  times; otherwise NaN (left out of LAT, never estimated);
- anything else (cut at a stop string at n <= B: where the stop string ended is not kept; sampled
  without a seed; no ids; a stop string in the derived text) is not derived: the call runs.

Does not know: where entries are stored (``run.cache``), scheduling, modes, lm-eval.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

from inftythink_eval.backends.base import Completion, SamplingParams
from inftythink_eval.run.cache import decode_times


def derivable(params: SamplingParams) -> bool:
    """Is a generation at a larger budget the same tokens?  Greedy, or sampled with a per-request seed."""
    return params.greedy or params.seed is not None


def derive(entry: dict, params: SamplingParams, text_of: Callable) -> Optional[tuple[Completion, float]]:
    """The completion of the call at ``params.max_tokens`` and its latency, from ``entry`` (a cached call
    with a larger budget); None when it cannot be derived exactly."""
    budget, ids = params.max_tokens, entry.get("output_ids")
    if ids is None or entry["max_tokens"] <= budget or not derivable(params):
        return None
    made = entry["output_tokens"]
    if made <= budget:
        # the same call only if it ended by itself (EOS): a stop-string cut hides where the stop string ended
        if entry["finish_reason"] != "stop" or text_of(ids) != entry["text"]:
            return None
        return _completion(entry, entry["text"], ids, "stop"), float(entry["latency"])
    head = list(ids[:budget])
    text = text_of(head)
    if any(s and s in text for s in params.stop):
        return None  # the longer run would have stopped there: the stored entry disagrees with itself
    times = decode_times(entry.get("token_ms"))
    latency = times[budget - 1] if times is not None and len(times) >= budget else math.nan
    return _completion(entry, text, head, "length"), latency


def _completion(entry: dict, text: str, ids, finish: str) -> Completion:
    return Completion(text=text, prompt_tokens=entry["prompt_tokens"], output_tokens=len(ids),
                      finish_reason=finish, output_ids=tuple(ids))
