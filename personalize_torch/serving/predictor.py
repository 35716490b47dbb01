"""Recommendations from a loaded solution version: histories in, ranked item ids and scores out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from personalize_torch.data.batching import SequenceBatch, history_items, sequence_batch
from personalize_torch.metrics.ranking import mask_scores, ranked_items
from personalize_torch.solution_version import SolutionVersion, load_solution_version

MAX_RESULTS = 500


@dataclass
class RecommendedItem:
    item_id: str
    score: float


class Predictor:
    def __init__(self, solution: SolutionVersion, device: str = "cpu"):
        self.solution = solution
        self.device = torch.device(device)
        self.recipe = solution.recipe.to(self.device)

    @classmethod
    def from_dir(cls, path: str | Path, device: str = "cpu") -> Predictor:
        return cls(load_solution_version(path, map_location=device), device)

    def _history_rows(self, user_ids: Sequence[str | None]) -> np.ndarray:
        ids = [u if u is not None else "" for u in user_ids]
        return self.solution.history_rows(ids) if ids else np.zeros(0, dtype=np.int64)

    def recommend(self, user_ids: Sequence[str | None], num_results: int = 25, exclude_seen: bool = True
                  ) -> list[list[RecommendedItem]]:
        """Top `num_results` items for each user; unknown (or None) users get the cold-start ranking."""
        sol = self.solution
        rows = self._history_rows(user_ids)
        inputs = sequence_batch(sol.histories, rows, self.recipe.input_length)
        exclude = history_items(sol.histories, rows) if exclude_seen else None
        return self._top(inputs, exclude, num_results)

    def recommend_related(self, item_ids: Sequence[str], num_results: int = 25,
                          user_ids: Sequence[str | None] | None = None, exclude_seen: bool = True
                          ) -> list[list[RecommendedItem]]:
        """Top `num_results` items related to each item (Personalize's RELATED_ITEMS input, `itemId`).

        The recipe scores a history made of just this one item: for SIMS, the item's neighbours; for
        recipes that are not item-based, what they predict after that single event (User-Personalization:
        the next item; Popularity-Count: the popular items). An item the solution does not know is an
        empty history, so it gets the cold-start ranking (popular items). The item itself is never
        recommended; with `user_ids` (None = no user), each user's own items are left out too unless
        `exclude_seen` is False.
        """
        idx = torch.from_numpy(self.solution.item_vocab.to_idx(list(item_ids))).view(-1, 1)  # (B, 1), 0 = unknown
        zeros = torch.zeros(idx.shape[0], dtype=torch.long)
        inputs = SequenceBatch(zeros, idx, torch.zeros_like(idx))
        exclude = idx
        if user_ids is not None and exclude_seen:
            exclude = torch.cat([idx, history_items(self.solution.histories, self._history_rows(user_ids))], 1)
        return self._top(inputs, exclude, num_results)

    def _top(self, inputs: SequenceBatch, exclude: torch.Tensor | None, num_results: int
             ) -> list[list[RecommendedItem]]:
        """Score `inputs`, leave out `exclude` (B, E) and padding, and return the top items of each row."""
        with torch.no_grad():
            scores = self.recipe.score(inputs.to(self.device))
        scores = mask_scores(scores, exclude.to(self.device) if exclude is not None else None)
        k = min(max(int(num_results), 0), MAX_RESULTS, scores.shape[1])
        top = ranked_items(scores, k)
        top_scores = scores.gather(1, top).cpu().numpy()
        top = top.cpu().numpy()
        out = []
        for items, vals in zip(top, top_scores):
            ok = np.isfinite(vals)
            out.append([RecommendedItem(str(i), float(v))
                        for i, v in zip(self.solution.item_vocab.to_id(items[ok]), vals[ok])])
        return out
