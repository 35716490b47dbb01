"""Blend: the scores of several trained solution versions combined, with weights learned on validation data.

    python train.py recipe=blend 'recipe.solutions=[outputs/up/solution, outputs/sims/solution]' data=...

Each member's scores are standardized per user over the catalogue (z-scores, so a softmax probability, a
SIMS similarity and a popularity share are on one scale) and summed with weights w (w >= 0, sum 1). The
weights are the point of a grid over that simplex (`grid_step`, default 0.1) with the best validation
NDCG@10 (full ranking, the same split the members were trained on); the grid includes every member alone,
so the blend is never worse than its best part on validation.

The members' weights are copied into the blend (a blend solution version stands alone: it does not need
the member directories to be served). Members must have been trained on the same data (same events and
catalogue, checked with the data fingerprint saved in their solution.json) and the same split. Filters,
promotions and back-fill apply to the blended scores, as for any recipe.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import torch
from torch import Tensor, nn

from personalize_torch.data.batching import SequenceBatch
from personalize_torch.errors import InputError
from personalize_torch.metrics.ranking import mask_scores, ndcg_at_k, target_ranks
from personalize_torch.recipes.base import Recipe

MAX_MEMBERS = 4


def simplex_grid(n: int, step: float) -> list[tuple[float, ...]]:
    """Every weight vector of `n` non-negative multiples of `step` that sum to 1."""
    parts = int(round(1 / step))
    return [tuple(c / parts for c in combo) for combo in itertools.product(range(parts + 1), repeat=n)
            if sum(combo) == parts]


def standardized(scores: Tensor) -> Tensor:
    """Per-row z-scores over items 1.. (column 0, padding, is 0), computed over the finite scores;
    a non-finite score (an item the member never recommends) gets the row's lowest z-score minus 1."""
    s = scores[:, 1:].float()
    finite = torch.isfinite(s)
    n = finite.sum(1, keepdim=True).clamp(min=1)
    x = torch.where(finite, s, torch.zeros_like(s))
    mean = x.sum(1, keepdim=True) / n
    std = (torch.where(finite, (s - mean) ** 2, torch.zeros_like(s)).sum(1, keepdim=True) / n).sqrt()
    z = (x - mean) / std.clamp(min=1e-12)
    low = torch.where(finite, z, torch.full_like(z, float("inf"))).min(1, keepdim=True).values
    z = torch.where(finite, z, (low.clamp(max=0) - 1).expand_as(z))
    return torch.cat([torch.zeros_like(z[:, :1]), z], 1)


def last_events(inputs: SequenceBatch, length: int | None) -> SequenceBatch:
    """`inputs` cut to the last `length` events (all when None)."""
    if length is None or inputs.items.shape[1] <= length:
        return inputs
    cut = slice(inputs.items.shape[1] - length, None)
    return SequenceBatch(inputs.user_idx, inputs.items[:, cut], inputs.timestamps[:, cut],
                         inputs.impressions[:, cut] if inputs.impressions is not None else None,
                         inputs.context[:, cut] if inputs.context is not None else None, inputs.next_context)


class Blend(Recipe):
    recipe_name = "blend"
    count_based = True   # no gradients: fitting is the weight search on validation data

    def __init__(self, n_items: int, solutions: list[str] | None = None, members: list[dict] | None = None,
                 weights: list[float] | None = None, grid_step: float = 0.1):
        super().__init__(n_items)
        self._save_hyperparameters(locals())
        from personalize_torch.recipes import RECIPES  # the registry imports this module

        self.member_info: list[dict] = []
        if members is None:  # training: read the member solution versions
            from personalize_torch.solution_version import load_solution_version

            if not solutions or not 2 <= len(solutions) <= MAX_MEMBERS:
                raise InputError(f"give 2 to {MAX_MEMBERS} solution version directories", column="solutions")
            loaded = [load_solution_version(Path(s)) for s in solutions]
            for path, sol in zip(solutions, loaded):
                if sol.recipe.n_items != n_items:
                    raise InputError(f"{path} has {sol.recipe.n_items - 1} items, this data {n_items - 1}: "
                                     "blend solution versions trained on the same data", column="solutions")
            members = [{"recipe": sol.recipe_name, "hparams": dict(sol.recipe.hparams)} for sol in loaded]
            self.member_info = [{"path": str(p), **sol.info.get("data", {})} for p, sol in zip(solutions, loaded)]
            self.hparams["members"] = members
            self.members = nn.ModuleList(sol.recipe for sol in loaded)
        else:
            self.members = nn.ModuleList(RECIPES[m["recipe"]](**m["hparams"]) for m in members)
        if weights is None:
            weights = [1.0 / len(self.members)] * len(self.members)
        self.register_buffer("weights", torch.tensor(weights, dtype=torch.float32))
        if not 0 < grid_step <= 0.5:
            raise InputError(f"must be in (0, 0.5], got {grid_step}", column="grid_step")

    @property
    def input_length(self) -> int | None:
        lengths = [m.input_length for m in self.members]
        return None if any(n is None for n in lengths) else max(lengths)

    @property
    def train_length(self) -> None:
        return None  # one pass over whole histories, which fitting ignores

    def member_scores(self, inputs: SequenceBatch) -> Tensor:
        """(M, B, n_items) standardized scores of every member."""
        with torch.no_grad():
            return torch.stack([standardized(m.score(last_events(inputs, m.input_length))) for m in self.members])

    def score(self, inputs: SequenceBatch) -> Tensor:
        return torch.einsum("m,mbn->bn", self.weights.to(inputs.items.device), self.member_scores(inputs))

    # --- fitting: the weight search --------------------------------------------------------------
    def accumulate(self, batch: SequenceBatch) -> None:
        pass

    def on_fit_start(self) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        if dm is None or not self.member_info:
            return
        fingerprint, split = dm.fingerprint(), dm.split.kind
        for info in self.member_info:
            if info.get("fingerprint") not in (None, fingerprint) or info.get("split") not in (None, split):
                raise InputError(f"{info['path']} was trained on other data or another split "
                                 f"({info.get('fingerprint')}, {info.get('split')}) than this run "
                                 f"({fingerprint}, {split})", column="solutions")

    def on_train_epoch_end(self) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        if dm is None:
            return
        for m in self.members:
            m.eval()
        grid = torch.tensor(simplex_grid(len(self.members), self.hparams.grid_step))       # (G, M)
        totals = torch.zeros(len(grid), dtype=torch.float64)
        for batch in dm.val_dataloader():
            z = self.member_scores(batch.inputs.to(self.device))                           # (M, B, N)
            n_targets = (batch.targets > 0).sum(1)
            for g, w in enumerate(grid):
                scores = mask_scores(torch.einsum("m,mbn->bn", w.to(z), z), batch.exclude.to(z.device))
                ranks = target_ranks(scores, batch.targets.to(z.device))
                totals[g] += ndcg_at_k(ranks, n_targets.to(z.device), 10).double().sum()
        best = int(torch.argmax(totals))    # ties: the first grid point
        self.weights.copy_(grid[best])
        self.hparams["weights"] = [float(x) for x in grid[best]]
        self.search = {"weights": [[float(x) for x in w] for w in grid], "val_ndcg_sum": totals.tolist()}
