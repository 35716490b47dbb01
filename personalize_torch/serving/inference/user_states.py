"""Each known user's model state, kept between requests, so a request skips the sequence model.

A recipe that splits its scoring in two (`user_state(inputs)`: the user's state from their events, e.g.
the transformer's output at the newest event; `score_state(state, inputs)`: the catalogue's scores from that
state and the request's context) can have the first half cached per user. For a user the solution knows,
with no events streamed since training, the state depends only on the stored history, which a solution
version never changes: it is computed once (or ahead, by `warm`) and reused. Users with streamed events
(PutEvents since training) and unknown users are computed at every request, so new events still change
recommendations at once. A new solution version (deploy, UPDATE) comes with its own cache, filled when
`Predictor.load_warm` loads it.

The transformer is a large share of a one-user request's model time (bench/RESULTS.md, "GetRecommendations
from cached user states").
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from personalize_torch.data.batching import SequenceBatch, sequence_batch
from personalize_torch.data.sequences import UserSequences

MAX_CACHED_FLOATS = 64 * 2**20   # 256 MB of float32 per predictor; more users than that: no cache


class UserStateCache:
    """`UserStateCache(recipe, histories)`; `states(inputs, rows)` -> (B, C), `warm()` fills every row."""

    def __init__(self, recipe, histories: UserSequences, dim: int, device: torch.device):
        self.recipe = recipe
        self.histories = histories
        self.table = torch.zeros(len(histories), dim, device=device)
        self.filled = torch.zeros(len(histories), dtype=torch.bool)

    @classmethod
    def for_recipe(cls, recipe, histories: UserSequences, device: torch.device) -> UserStateCache | None:
        """A cache when the recipe splits its scoring (`user_state` / `score_state`) and the users' states
        fit in MAX_CACHED_FLOATS; None otherwise."""
        dim = recipe.user_state_dimension
        if dim is None or len(histories) * dim > MAX_CACHED_FLOATS:
            return None
        return cls(recipe, histories, int(dim), device)

    def states(self, inputs: SequenceBatch, rows: np.ndarray) -> Tensor:
        """(B, C) state of each row of `inputs`. `rows`: each row's user row in the histories when its input
        is that user's stored history alone (cached), -1 when it is not (computed, not kept)."""
        rows = torch.as_tensor(np.asarray(rows, dtype=np.int64))
        cacheable = rows >= 0
        safe = rows.clamp(min=0)
        if len(self.filled) and bool((cacheable & self.filled[safe]).all()):
            return self.table[safe]
        computed = self.recipe.user_state(inputs)
        if bool(cacheable.any()):
            keep = safe[cacheable]
            self.table[keep] = computed[cacheable.to(computed.device)]
            self.filled[keep] = True
        return computed

    @torch.no_grad()
    def warm(self, batch_size: int = 256) -> None:
        """Compute every user's state now (users in order of history length, so batches pad little)."""
        order = np.argsort(self.histories.lengths, kind="stable")
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            inputs = sequence_batch(self.histories, rows, self.recipe.input_length).to(self.table.device)
            self.states(inputs, rows)
