"""Blend: the scores of several trained solution versions combined, with weights learned on validation data.

    python train.py recipe=blend 'recipe.solutions=[outputs/up/solution, outputs/sims/solution]' data=...

Each member's scores are standardized per user over the catalogue (z-scores, so a softmax probability, a
SIMS similarity and a popularity share are on one scale) and summed with weights w (w >= 0, sum 1). The
weights are the point of a grid over that simplex (`grid_step`, default 0.1) with the best validation
NDCG@10 (full ranking, the same split the members were trained on); the grid includes every member alone,
so the blend is never worse than its best part on validation.
The search runs once, when training counts the data's statistics before fitting (`count_statistics`): each
member scores the validation users, on the device the blend is on then (the CPU).

The members' weights are copied into the blend (a blend solution version stands alone: it does not need
the member directories to be served). Members must have been trained on the same data (same events and
catalogue, checked with the data fingerprint saved in their solution.json) and the same split. Filters,
promotions and back-fill apply to the blended scores, as for any recipe.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from personalize_torch.data.batching import EvalCollate, SequenceBatch
from personalize_torch.data.description import DataDescription
from personalize_torch.data.split import Split
from personalize_torch.errors import InputError
from personalize_torch.metrics.functional import mask_scores, ndcg_at_k, target_ranks
from personalize_torch.recipes.base import Recipe

MAX_MEMBERS = 4
SEARCH_BATCH_USERS = 256   # validation users scored at a time in the weight search


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
                         inputs.context[:, cut] if inputs.context is not None else None, inputs.next_context,
                         user_values=inputs.user_values, user_numeric=inputs.user_numeric)


@dataclass
class BlendMember:
    """A trained solution version handed to a blend: where it was loaded from, its recipe (weights
    loaded) and the data it was trained on (its solution.json "data": fingerprint, split, ...)."""
    path: str
    recipe: Recipe
    trained_on: dict = field(default_factory=dict)


class Blend(Recipe):
    recipe_name = "blend"
    count_based = True   # no gradients: fitting is the weight search on validation data
    fitted_by_counting = True   # the search is `count_statistics`: no pass over training batches
    combines_solution_versions = True   # training loads the `solutions` directories as `members`

    def __init__(self, n_items: int, members: list[Recipe], weights: list[float] | None = None,
                 grid_step: float = 0.1):
        super().__init__(n_items)
        if not 2 <= len(members) <= MAX_MEMBERS:
            raise InputError(f"give 2 to {MAX_MEMBERS} solution version directories, got {len(members)}",
                             column="solutions")
        if not 0 < grid_step <= 0.5:
            raise InputError(f"must be in (0, 0.5], got {grid_step}", column="grid_step")
        self.members = nn.ModuleList(members)
        if weights is None:
            weights = [1.0 / len(members)] * len(members)
        self.register_buffer("weights", torch.tensor(weights, dtype=torch.float32))
        # What a checkpoint keeps (primitives): each member's recipe and hyperparameters; their weights are
        # in the state dict under members.<i>.
        self.save_hyperparameters({"n_items": n_items, "weights": [float(w) for w in weights],
                                   "grid_step": float(grid_step),
                                   "members": [{"recipe": m.recipe_name, "hparams": dict(m.hparams)} for m in members]})

    @classmethod
    def from_data(cls, data: DataDescription, members: list[BlendMember] | None = None,
                  weights: list[float] | None = None, grid_step: float = 0.1) -> Blend:
        """A blend of `members`, which must have been trained on this data and split."""
        members = list(members or [])
        for member in members:
            if member.recipe.n_items != data.n_items:
                raise InputError(f"{member.path} has {member.recipe.n_items - 1} items, this data "
                                 f"{data.n_items - 1}: blend solution versions trained on the same data",
                                 column="solutions")
            fingerprint, split = member.trained_on.get("fingerprint"), member.trained_on.get("split")
            if fingerprint not in (None, data.fingerprint) or split not in (None, data.split):
                raise InputError(f"{member.path} was trained on other data or another split ({fingerprint}, "
                                 f"{split}) than this run ({data.fingerprint}, {data.split})", column="solutions")
        return cls(data.n_items, [m.recipe for m in members], weights, grid_step)

    @classmethod
    def from_saved(cls, hyperparameters: dict, build) -> Blend:
        members = [build(m["recipe"], m["hparams"]) for m in hyperparameters["members"]]
        return cls(hyperparameters["n_items"], members, hyperparameters["weights"], hyperparameters["grid_step"])

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

    def count_statistics(self, split: Split) -> None:
        """The weight search: every grid point's validation NDCG@10 summed over the users of `split.val`."""
        for m in self.members:
            m.eval()
        grid = torch.tensor(simplex_grid(len(self.members), self.hparams.grid_step))       # (G, M)
        totals = torch.zeros(len(grid), dtype=torch.float64)
        collate = EvalCollate(split.val, self.input_length)
        for start in range(0, len(split.val), SEARCH_BATCH_USERS):
            batch = collate(list(range(start, min(start + SEARCH_BATCH_USERS, len(split.val)))))
            z = self.member_scores(batch.inputs.to(self.device))                           # (M, B, N)
            n_targets = (batch.targets > 0).sum(1)
            for g, w in enumerate(grid):
                scores = mask_scores(torch.einsum("m,mbn->bn", w.to(z), z), batch.exclude.to(z.device))
                ranks = target_ranks(scores, batch.targets.to(z.device))
                totals[g] += ndcg_at_k(ranks, n_targets.to(z.device), 10).double().sum()
        best = int(torch.argmax(totals))    # ties: the first grid point
        self.weights.copy_(grid[best])
        self.hparams["weights"] = [float(x) for x in grid[best]]
