"""The ``hf`` backend's prefix cache: KV caches of recent sequences, handed out by longest shared token prefix.

Owns: which cached sequence a prompt reuses, cropping it to the shared prefix, and the counts of reused and
computed prompt tokens.  Does not know: models, generation, scheduling.
"""

from __future__ import annotations


class PrefixStore:
    """The KV caches of the last ``capacity`` sequences, handed out by longest shared token prefix.

    ``take`` removes the best entry and crops it to the shared prefix (at least one prompt token is
    left to compute, so generate has logits to start from); ``put`` keeps the result, most recent
    first.  An entry is used by one request at a time, so nothing is copied.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.entries: list[tuple[list[int], object]] = []
        self.reused_tokens = 0
        self.computed_tokens = 0

    def take(self, ids: list[int]):
        best, shared = None, 0
        for k, (seq, _) in enumerate(self.entries):
            n = _shared_prefix(seq, ids)
            if n > shared:
                best, shared = k, n
        shared = min(shared, len(ids) - 1)
        if best is None or shared < 1:
            self.computed_tokens += len(ids)
            return None
        seq, cache = self.entries.pop(best)
        if cache.get_seq_length() > shared:
            cache.crop(shared - cache.get_seq_length())   # negative: tokens to drop from the end
        self.reused_tokens += shared
        self.computed_tokens += len(ids) - shared
        return cache

    def put(self, seq: list[int], cache) -> None:
        self.entries.insert(0, (seq, cache))
        del self.entries[self.capacity:]


def _shared_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
