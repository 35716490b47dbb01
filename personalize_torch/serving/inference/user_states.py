"""Each known user's model state, kept between requests, so a request skips the sequence model.

A recipe that splits its scoring in two (`user_state(inputs)`: the user's state from their events, e.g.
the transformer's output at the newest event; `score_state(state, inputs)`: the catalogue's scores from that
state and the request's context) can have the first half kept per user. For a user the solution knows,
with no events streamed since training, the state depends only on the stored history, which a solution
version never changes. Users with streamed events (PutEvents since training) and unknown users are
computed at every request, so new events still change recommendations at once.

Where the states come from:
- `StoredUserStates`: the solution version's user_states.npy (written when it was saved, see
  solution_version.py), memory-mapped: nothing is computed at start and only the pages of the users asked
  for are read. Any number of users.
- `UserStateCache`: a table in memory (up to MAX_CACHED_FLOATS), filled as users are asked for, from the
  stored states when the solution version has them, else computed; `warm` fills every row ahead (a solution
  version written before states were stored: one pass of the sequence model over every user).

A new solution version (deploy, UPDATE) comes with its own states.

Both count their lookups for the server's metrics when given an `on_lookup(hits, misses)`: per request row, a
hit is a state taken from the kept ones (the table or the stored file), a miss one computed for the request.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from personalize_torch.data.batching import SequenceBatch, sequence_batch
from personalize_torch.data.sequences import UserSequences

MAX_CACHED_FLOATS = 64 * 2**20   # 256 MB of float32 per predictor; more users than that: no in-memory table

ComputeStates = Callable[[SequenceBatch], Tensor]   # (B, C) states of a batch's histories
LookupCounter = Callable[[int, int], None]          # (rows whose kept state was used, rows computed)


def _rows_tensor(rows: np.ndarray) -> tuple[Tensor, Tensor]:
    rows = torch.as_tensor(np.asarray(rows, dtype=np.int64))
    return rows >= 0, rows.clamp(min=0)


class StoredUserStates:
    """The stored states (memory-mapped (n_rows, C) float32) of rows that are a user's stored history alone,
    computed states for the others."""

    def __init__(self, stored: np.ndarray, compute: ComputeStates, device: torch.device):
        self.stored = stored
        self.compute = compute
        self.device = device
        self.on_lookup: LookupCounter | None = None

    def states(self, inputs: SequenceBatch, rows: np.ndarray) -> Tensor:
        """(B, C) state of each row of `inputs`; `rows`: each row's user row in the histories when its input
        is that user's stored history alone, -1 when it is not (computed)."""
        rows = np.asarray(rows, dtype=np.int64)
        cacheable = rows >= 0
        if self.on_lookup is not None:
            kept = int(cacheable.sum())
            self.on_lookup(kept, len(rows) - kept)
        stored = torch.from_numpy(np.ascontiguousarray(self.stored[np.maximum(rows, 0)])).to(self.device)
        if bool(cacheable.all()):
            return stored
        computed = self.compute(inputs)
        keep = torch.from_numpy(cacheable).to(computed.device).unsqueeze(1)
        return torch.where(keep, stored.to(computed.dtype), computed)

    def warm(self) -> None:
        """Nothing to compute ahead."""


class UserStateCache:
    """`UserStateCache(recipe, histories, dim, device)`; `states(inputs, rows)` -> (B, C), `warm()` fills every
    row. `compute`: how states are computed (default `recipe.user_state`); `stored`: the solution version's
    stored states, copied in instead of computing."""

    def __init__(self, recipe, histories: UserSequences, dim: int, device: torch.device,
                 compute: ComputeStates | None = None, stored: np.ndarray | None = None):
        self.recipe = recipe
        self.histories = histories
        self.compute = compute if compute is not None else recipe.user_state
        self.stored = stored
        self.table = torch.zeros(len(histories), dim, device=device)
        self.filled = torch.zeros(len(histories), dtype=torch.bool)
        self.on_lookup: LookupCounter | None = None

    @classmethod
    def for_recipe(cls, recipe, histories: UserSequences, device: torch.device, compute: ComputeStates | None = None,
                   stored: np.ndarray | None = None) -> UserStateCache | None:
        """A cache when the recipe splits its scoring (`user_state` / `score_state`) and the users' states
        fit in MAX_CACHED_FLOATS; None otherwise."""
        dim = recipe.user_state_dimension
        if dim is None or len(histories) * dim > MAX_CACHED_FLOATS:
            return None
        return cls(recipe, histories, int(dim), device, compute, stored)

    def states(self, inputs: SequenceBatch, rows: np.ndarray) -> Tensor:
        """(B, C) state of each row of `inputs`. `rows`: each row's user row in the histories when its input
        is that user's stored history alone (cached), -1 when it is not (computed, not kept)."""
        cacheable, safe = _rows_tensor(rows)
        if len(self.filled) and bool((cacheable & self.filled[safe]).all()):
            self._count(len(safe), len(safe))
            return self.table[safe]
        if self.stored is not None:
            missing = safe[cacheable & ~self.filled[safe]]
            self._fill_from_stored(missing)
            if bool(cacheable.all()):
                self._count(len(safe), len(safe))
                return self.table[safe]
        if self.on_lookup is not None:   # the stored states win for their rows; without them all are computed
            kept = int(cacheable.sum()) if self.stored is not None else 0
            self.on_lookup(kept, len(safe) - kept)
        computed = self.compute(inputs)
        if bool(cacheable.any()):
            keep = safe[cacheable]
            if self.stored is not None:   # what is stored wins over a recomputation (float rounding)
                computed[cacheable.to(computed.device)] = self.table[keep].to(computed.dtype)
            else:
                self.table[keep] = computed[cacheable.to(computed.device)]
                self.filled[keep] = True
        return computed

    def _count(self, kept: int, rows: int) -> None:
        """`kept` of `rows` rows took their state from the table."""
        if self.on_lookup is not None:
            self.on_lookup(kept, rows - kept)

    def _fill_from_stored(self, rows: Tensor) -> None:
        if len(rows):
            rows = torch.unique(rows)
            self.table[rows] = torch.from_numpy(np.ascontiguousarray(self.stored[rows.numpy()])).to(self.table.device)
            self.filled[rows] = True

    @torch.no_grad()
    def warm(self, batch_size: int = 256) -> None:
        """Fill every row now: copied from the stored states, or computed (users in order of history length,
        so batches pad little)."""
        if self.stored is not None:
            for start in range(0, len(self.filled), 1 << 20):
                self._fill_from_stored(torch.arange(start, min(start + (1 << 20), len(self.filled))))
            return
        order = np.argsort(self.histories.lengths, kind="stable")
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            inputs = sequence_batch(self.histories, rows, self.recipe.input_length).to(self.table.device)
            self.states(inputs, rows)
