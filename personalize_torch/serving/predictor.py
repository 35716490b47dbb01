"""Recommendations from a loaded solution version: histories in, ranked item ids and scores out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from personalize_torch.data.batching import history_items, sequence_batch
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

    def recommend(self, user_ids: Sequence[str | None], num_results: int = 25, exclude_seen: bool = True
                  ) -> list[list[RecommendedItem]]:
        """Top `num_results` items for each user; unknown (or None) users get the cold-start ranking."""
        sol = self.solution
        ids = [u if u is not None else "" for u in user_ids]
        rows = sol.history_rows(ids) if ids else np.zeros(0, dtype=np.int64)
        inputs = sequence_batch(sol.histories, rows, self.recipe.input_length)
        inputs = type(inputs)(*(t.to(self.device) for t in (inputs.user_idx, inputs.items, inputs.timestamps)))
        with torch.no_grad():
            scores = self.recipe.score(inputs)
        exclude = history_items(sol.histories, rows).to(self.device) if exclude_seen else None
        scores = mask_scores(scores, exclude)
        k = min(max(int(num_results), 0), MAX_RESULTS, scores.shape[1])
        top = ranked_items(scores, k)
        top_scores = scores.gather(1, top).cpu().numpy()
        top = top.cpu().numpy()
        out = []
        for items, vals in zip(top, top_scores):
            ok = np.isfinite(vals)
            out.append([RecommendedItem(str(i), float(v))
                        for i, v in zip(sol.item_vocab.to_id(items[ok]), vals[ok])])
        return out
