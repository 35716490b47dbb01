"""SIMS (aws-sims): item-to-item similarity from co-occurrence in user histories.

Fitted in one pass over the training users (count-based, through the same Lightning path as
Popularity-Count): `accumulate` turns each batch of histories into item pairs, `finalize` (at the end
of the training epoch) turns the counts into the top `num_neighbors` neighbours of every item, kept as
two buffers, `neighbor_idx` and `neighbor_score` (n_items, K), so a checkpoint stays small and loads
with `weights_only=True`. No n x n matrix is ever built: pairs are int64 keys aggregated with
`np.unique`, and top-K is one sort of the non-zero pairs.

Similarity (symmetric):

    sim(i, j) = c(i, j) / (n(i) ** a * n(j) ** a)

- c(i, j): co-interaction count, the number of training users who interacted with both i and j
  (within `cointeraction_window` events of each other; 0 = anywhere in the history, as Personalize).
- n(i): the number of training users who interacted with i.
- a = `popularity_discount_factor` (0-1, default 0.5). a = 0: raw co-occurrence, so popular items
  dominate every list; a = 0.5: cosine similarity of the items' user sets; a = 1: c / (n(i) n(j)),
  proportional to lift, so co-interaction counts regardless of popularity.
- Pairs with c(i, j) < `min_cointeraction_count` (default 3) get no similarity.

Featurization trims, Personalize's names and defaults:
- `min_/max_user_history_length_percentile` (0.005 / 0.995): training users whose history length is
  outside these percentiles are left out (applied by the data module, as for User-Personalization).
- `min_/max_item_interaction_count_percentile` (0.01 / 0.9): items whose n(i) is outside these
  percentiles (of the items present in training) take no part in co-occurrence: they neither get nor
  are neighbours. They are still recommended through the popularity fallback.

Serving: the score of item j for a history is `1 + sim(last, j)` for the neighbours of the history's
LAST item, and otherwise j's popularity share n(j) / n_users (at most 1, so below every neighbour).
Unknown, trimmed or rare items (no pair reaching `min_cointeraction_count`), and users with no history,
therefore get the popular items; a short neighbour list is filled up with popular items.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from personalize_torch.data.batching import SequenceBatch
from personalize_torch.recipes.base import Recipe
from personalize_torch.recipes.hyperparameters import check_range

COMPACT_EVERY = 4_000_000  # merge the per-batch pair counts once this many are held


def cointeraction_keys(items: np.ndarray, n_items: int, window: int = 0) -> np.ndarray:
    """Pair keys `lo * n_items + hi` (lo < hi), one per user and co-interacted pair, of left-padded
    histories `items` (B, T) (0 = padding). `window` > 0 keeps pairs at most that many events apart."""
    mask = items > 0
    lengths = mask.sum(1)
    flat = items[mask].astype(np.int64)                      # row-major: each row oldest to newest
    row = np.repeat(np.arange(len(items), dtype=np.int64), lengths)
    pos = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    remaining = np.repeat(lengths, lengths) - pos - 1        # later events of the same user
    repeats = len(np.unique(row * n_items + flat)) < len(flat)
    max_d = int(remaining.max(initial=0))
    if window > 0:
        max_d = min(max_d, window)
    keys, owners = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    sel = np.arange(len(flat))
    for d in range(1, max_d + 1):                            # work = number of pairs, not B * T^2
        sel = sel[remaining[sel] >= d]
        a, b = flat[sel], flat[sel + d]
        differ = a != b
        keys.append(np.minimum(a, b)[differ] * n_items + np.maximum(a, b)[differ])
        if repeats:
            owners.append(row[sel[differ]])
    pair = np.concatenate(keys)
    if repeats:                                              # a user counts once per pair
        n2 = n_items * n_items
        pair = np.unique(np.concatenate(owners) * n2 + pair) % n2
    return pair


def top_neighbors(keys: np.ndarray, counts: np.ndarray, item_users: np.ndarray, keep: np.ndarray,
                  popularity_discount_factor: float, min_cointeraction_count: int, k: int, n_items: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(neighbor_idx, neighbor_score), each (n_items, k), from unique pair keys and their co-interaction
    counts: the k most similar items of each item, by score descending then index ascending; unused
    slots hold index 0 and score 0."""
    lo, hi = keys // n_items, keys % n_items
    ok = (counts >= max(min_cointeraction_count, 1)) & keep[lo] & keep[hi]
    lo, hi, c = lo[ok], hi[ok], counts[ok].astype(np.float64)
    pop = item_users.astype(np.float64) ** popularity_discount_factor
    sim = c / (pop[lo] * pop[hi])
    rows, cols, s = np.concatenate([lo, hi]), np.concatenate([hi, lo]), np.concatenate([sim, sim])
    order = np.lexsort((cols, -s, rows))
    rows, cols, s = rows[order], cols[order], s[order]
    first = np.searchsorted(rows, rows, side="left")
    rank = np.arange(len(rows)) - first
    top = rank < k
    idx = np.zeros((n_items, k), dtype=np.int64)
    score = np.zeros((n_items, k), dtype=np.float32)
    idx[rows[top], rank[top]] = cols[top]
    score[rows[top], rank[top]] = s[top]
    return idx, score


class SIMS(Recipe):
    recipe_name = "sims"
    count_based = True

    def __init__(self, n_items: int, popularity_discount_factor: float = 0.5, min_cointeraction_count: int = 3,
                 min_user_history_length_percentile: float = 0.005,
                 max_user_history_length_percentile: float = 0.995,
                 min_item_interaction_count_percentile: float = 0.01,
                 max_item_interaction_count_percentile: float = 0.9,
                 num_neighbors: int = 100, cointeraction_window: int = 0):
        super().__init__(n_items)
        self._save_hyperparameters(locals())
        hp = self.hparams
        check_range("popularity_discount_factor", hp.popularity_discount_factor, 0.0, 1.0)
        check_range("min_cointeraction_count", hp.min_cointeraction_count, 0, 2**31)
        for name in ("min_user_history_length_percentile", "max_user_history_length_percentile",
                     "min_item_interaction_count_percentile", "max_item_interaction_count_percentile"):
            check_range(name, hp[name], 0.0, 1.0)
        check_range("num_neighbors", hp.num_neighbors, 1, 10_000)
        check_range("cointeraction_window", hp.cointeraction_window, 0, 2**31)
        k = min(hp.num_neighbors, max(n_items - 1, 1))
        self.register_buffer("neighbor_idx", torch.zeros(n_items, k, dtype=torch.int32))
        self.register_buffer("neighbor_score", torch.zeros(n_items, k))
        self.register_buffer("item_users", torch.zeros(n_items))  # n(i): distinct training users per item
        self.register_buffer("n_users", torch.zeros(()))
        self._reset_accumulators()

    # The model reads only the last event; a training example is a user's whole history.
    @property
    def input_length(self) -> int:
        return 1

    @property
    def train_length(self) -> None:
        return None

    @property
    def train_user_length_percentiles(self) -> tuple[float, float]:
        return (self.hparams.min_user_history_length_percentile, self.hparams.max_user_history_length_percentile)

    # --- fitting ---------------------------------------------------------------------------------
    def _reset_accumulators(self) -> None:
        self._keys: list[np.ndarray] = []
        self._counts: list[np.ndarray] = []
        self._held = 0
        self._pending = False

    def _compact(self) -> tuple[np.ndarray, np.ndarray]:
        if not self._keys:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        keys, inverse = np.unique(np.concatenate(self._keys), return_inverse=True)
        counts = np.bincount(inverse, weights=np.concatenate(self._counts), minlength=len(keys)).astype(np.int64)
        self._keys, self._counts, self._held = [keys], [counts], len(keys)
        return keys, counts

    def on_train_epoch_start(self) -> None:
        self._reset_accumulators()
        self.item_users.zero_()
        self.n_users.zero_()

    def accumulate(self, batch: SequenceBatch) -> None:
        items = batch.items.cpu().numpy()
        rows, cols = np.nonzero(items)
        user_items = np.unique(rows * self.n_items + items[rows, cols])         # distinct (user, item)
        users_per_item = np.bincount(user_items % self.n_items, minlength=self.n_items)
        self.item_users += torch.from_numpy(users_per_item).to(self.item_users)
        self.n_users += items.shape[0]
        keys, counts = np.unique(cointeraction_keys(items, self.n_items, self.hparams.cointeraction_window),
                                 return_counts=True)
        self._keys.append(keys)
        self._counts.append(counts)
        self._held += len(keys)
        self._pending = True
        if self._held > COMPACT_EVERY and len(self._keys) > 1:
            self._compact()

    def finalize(self) -> None:
        """Turn the counts accumulated so far into the neighbour buffers."""
        keys, counts = self._compact()
        item_users = self.item_users.cpu().numpy()
        keep = np.zeros(self.n_items, dtype=bool)
        present = item_users > 0
        if present.any():
            low, high = np.quantile(item_users[present], [self.hparams.min_item_interaction_count_percentile,
                                                          self.hparams.max_item_interaction_count_percentile])
            keep = present & (item_users >= low) & (item_users <= high)
        idx, score = top_neighbors(keys, counts, item_users, keep, self.hparams.popularity_discount_factor,
                                   self.hparams.min_cointeraction_count, self.neighbor_idx.shape[1], self.n_items)
        self.neighbor_idx.copy_(torch.from_numpy(idx.astype(np.int32)))
        self.neighbor_score.copy_(torch.from_numpy(score))
        self._pending = False

    def on_validation_epoch_start(self) -> None:
        if self._pending:  # validation inside the fitting epoch sees the counts so far
            self.finalize()

    def on_train_epoch_end(self) -> None:
        self.finalize()

    def on_train_end(self) -> None:
        self._reset_accumulators()  # free the pair counts; the buffers hold the model

    # --- scoring ---------------------------------------------------------------------------------
    def score(self, inputs: SequenceBatch) -> Tensor:
        items = inputs.items
        B = items.shape[0]
        last = items[:, -1] if items.shape[1] else torch.zeros(B, dtype=torch.long, device=items.device)
        share = self.item_users / self.n_users.clamp(min=1)                      # (n_items,) in [0, 1]
        scores = share.expand(B, -1).clone()                                     # (B, n_items)
        nb = self.neighbor_idx[last].long()                                      # (B, K), 0 = empty slot
        nb_scores = torch.where(nb > 0, 1.0 + self.neighbor_score[last], scores[:, :1].expand_as(nb))
        return scores.scatter_(1, nb, nb_scores)
