"""The LightningModule every recipe builds on, and the whole contract between a recipe and the rest.

What training, UPDATE and serving call, and nothing else (docs/adding_a_recipe.md walks through it):

- `Recipe.from_data(data, **hyperparameters)`: the recipe built from a `DataDescription` (sizes,
  vocabularies, item / user metadata). The base takes `n_items` only; a recipe that reads more overrides it.
- `count_statistics(split)`: statistics counted from the data once, before fitting (popularity, the time
  range, the exposure of items in slates); default: none.
- `loader_needs()`: what the data loaders must give it (`LoaderNeeds`), from `input_length`, `train_length`,
  `train_user_length_percentiles` and a `batch_size` hyperparameter.
- `score(inputs) -> (B, n_items)` and either `loss(batch)` (gradient-trained recipes) or `accumulate(batch)`
  (count-based recipes, `count_based = True`, fitted in one pass over the training sequences, no optimizer).
- Optional, with defaults here: `set_item_metadata(data)` (recipes that read Items metadata), `item_embeddings()`
  (TensorBoard's projector), `user_state` / `score_state` (a server caches the first half per user),
  `recommendable_items()`.

The base owns validation/test with full-ranking metrics, so every recipe is evaluated the same way and
saved in the same format. Hyperparameters are primitives saved with `save_hyperparameters()` (the sizes
from the data included), so a checkpoint loads with `torch.load(weights_only=True)` and `from_saved`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import pytorch_lightning as pl
import torch
from torch import Tensor

from personalize_torch.data.batching import EvalBatch, SequenceBatch
from personalize_torch.data.datamodule import LoaderNeeds
from personalize_torch.data.description import DataDescription
from personalize_torch.data.split import Split
from personalize_torch.metrics.functional import mask_scores
from personalize_torch.metrics.ranking_metrics import RankingMetrics
from personalize_torch.recipes.hyperparameters import coerce
from personalize_torch.recipes.optimizer import RowSparseAdamW, clip_gradients_


class Recipe(pl.LightningModule):
    recipe_name: ClassVar[str]
    count_based: ClassVar[bool] = False
    # Personalize's recipe type: USER_PERSONALIZATION, RELATED_ITEMS, PERSONALIZED_RANKING, POPULAR_ITEMS,
    # USER_SEGMENTATION (batch segment jobs); and the hold-out split used when data.split is null.
    recipe_type: ClassVar[str] = "USER_PERSONALIZATION"
    default_split: ClassVar[str] = "personalize"
    # True for a recipe built from other trained solution versions (Blend): training loads the directories
    # its `solutions` hyperparameter names and hands them to `from_data` as `members`.
    combines_solution_versions: ClassVar[bool] = False
    # True for a count-based recipe whose `count_statistics` is its whole fit (Popularity-Count): training
    # makes no pass over the training batches.
    fitted_by_counting: ClassVar[bool] = False
    # True for a recipe whose user states score the catalogue as softmax(state . item_embeddings() +
    # score_bias(ids=None)), with popularity in an `item_counts` buffer, and whose `user_state` /
    # `score_state` take the item table as `table=`: a server then computes the table once, not per call
    # (serving/inference/state_scoring.py).
    scores_state_against_item_table: ClassVar[bool] = False

    def __init__(self, n_items: int):
        super().__init__()
        self.n_items = n_items
        self.val_metrics = RankingMetrics(n_items)
        self.test_metrics = RankingMetrics(n_items)
        if self.count_based:
            self.automatic_optimization = False

    # --- how a recipe is built -----------------------------------------------------------------
    @classmethod
    def from_data(cls, data: DataDescription, **hyperparameters) -> Recipe:
        """The recipe sized from the data. A recipe that reads more than the catalogue size (metadata,
        context, event types, ...) overrides this and passes what it reads to its constructor."""
        return cls(n_items=data.n_items, **hyperparameters)

    @classmethod
    def from_saved(cls, hyperparameters: dict, build: Callable[[str, dict], Recipe]) -> Recipe:
        """The recipe from a checkpoint's saved hyperparameters (its weights are loaded next).
        `build(recipe_name, hyperparameters)` builds another recipe by name (a Blend's members)."""
        return cls(**hyperparameters)

    @classmethod
    def hyperparameter_defaults(cls) -> dict[str, Any]:
        """Every constructor argument and its default (None when it has none): a recipe's hyperparameters
        are its constructor's keyword arguments, sizes from the data included."""
        params = inspect.signature(cls.__init__).parameters
        return {name: None if p.default is p.empty else p.default for name, p in params.items()
                if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}

    def count_statistics(self, split: Split) -> None:
        """Statistics counted from the data, once, before fitting (training calls it; every process of a
        distributed run counts the same). Default: none."""

    def combine_statistics(self, add_up: Callable[[Tensor, str], Tensor]) -> None:
        """When each training process counted its statistics on its own share of the users (torchrun on a
        dataset group, see process_share): combine them with the other processes' through `add_up(tensor,
        op)` (op: sum, min or max), so that every process holds the whole data's. Default: none."""

    def set_item_metadata(self, data: DataDescription) -> None:
        """Take the Items metadata (encoded features, text tokens) from `data` into buffers kept in the
        checkpoint. A recipe that reads item metadata overrides it and calls it from its `from_data`; UPDATE
        calls it after the catalogue grows. Default: nothing read."""

    def loader_needs(self) -> LoaderNeeds:
        """What the data loaders must give this recipe."""
        return LoaderNeeds(self.input_length, self.train_length, self.train_user_length_percentiles,
                           self.hparams.get("batch_size"))

    def _save_hyperparameters(self, values: dict) -> None:
        """Save the constructor's arguments, strings coerced to the defaults' types (Personalize sends strings)."""
        hp = {}
        for name, default in self.hyperparameter_defaults().items():
            value = values[name]
            if isinstance(value, Mapping):
                value = dict(value)  # e.g. an OmegaConf DictConfig
            elif isinstance(value, (tuple, Sequence)) and not isinstance(value, (str, bytes)):
                value = list(value)  # e.g. an OmegaConf ListConfig or a tuple: keep checkpoints primitive
            hp[name] = coerce(name, value, default)
        self.save_hyperparameters(hp)

    @property
    def train_length(self) -> int | None:
        """How many recent events of a user a training example holds (None: the whole history)."""
        return self.input_length

    @property
    def train_user_length_percentiles(self) -> tuple[float, float] | None:
        """Drop training users whose history length is outside these percentiles (None: keep all)."""
        return None

    @property
    def input_length(self) -> int | None:
        """How many recent events the model reads per user (None: the whole history)."""
        return None


    # --- what a recipe supplies -------------------------------------------------------------
    def score(self, inputs: SequenceBatch) -> Tensor:
        """Scores (B, n_items) of every item for each user's history; higher is better."""
        raise NotImplementedError

    def loss(self, batch: SequenceBatch) -> Tensor:
        raise NotImplementedError

    def recommendable_items(self) -> Tensor | None:
        """(n_items,) bool mask of the items the recipe may recommend (others score -inf); None: all.
        HRNN-Coldstart recommends only cold items."""
        return None

    def accumulate(self, batch: SequenceBatch) -> None:
        raise NotImplementedError

    def item_embeddings(self) -> Tensor | None:
        """(n_items, D) the item vectors the recipe scores items with (row 0 padding), for TensorBoard's
        Embedding Projector; None: the recipe has none (count-based recipes)."""
        return None

    # --- users the solution does not know, described by their Users metadata ---------------------------
    @property
    def user_metadata_shape(self) -> tuple[int, int] | None:
        """(value slots S, numeric fields K) of the Users metadata the recipe reads for a user it does not know
        (`SequenceBatch.user_values` (B, S) / `user_numeric` (B, K), data/metadata_features.py
        encode_metadata_rows); None: it reads none (such a user is scored from their events alone)."""
        return None

    def scored_rows(self, inputs: SequenceBatch) -> Tensor:
        """(B,) bool: the rows the model scores: users with events, and for a recipe that reads Users metadata
        users with metadata; the others get the most popular items (sequence recipes' fallback)."""
        return (inputs.items > 0).any(1)

    # --- a user's state, cached per user by a server (serving/inference/user_states.py) -------------------
    @property
    def user_state_dimension(self) -> int | None:
        """Size of `user_state`'s vectors; None: the recipe does not split its scoring in two."""
        return None

    def user_state(self, inputs: SequenceBatch) -> Tensor:
        """(B, C) each user's state from their events alone (not the request's context)."""
        raise NotImplementedError

    def score_state(self, state: Tensor, inputs: SequenceBatch) -> Tensor:
        """(B, n_items) the scores from `user_state`'s output and the request (`score` = both halves)."""
        raise NotImplementedError

    # --- training ----------------------------------------------------------------------------
    def training_step(self, batch: SequenceBatch, batch_idx: int):
        if self.count_based:
            self.accumulate(batch)
            return None
        loss = self.loss(batch)
        # sync_dist: with several processes, the epoch's loss is the mean over all of them
        self.log("train/loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=batch.items.shape[0],
                 sync_dist=True)
        return loss

    def configure_optimizers(self):
        """AdamW; a parameter whose gradient comes as rows (a sampled softmax reading a large catalogue's
        batch rows, models/item_rows.py) is updated at those rows only (recipes/optimizer.py). A count-based
        recipe returns no optimizers (an empty list): it fits under manual optimization
        (`automatic_optimization = False`, set in `__init__`), its training step only counting."""
        if self.count_based:
            return []
        return RowSparseAdamW(self.parameters(), lr=self.hparams.learning_rate, weight_decay=self.hparams.weight_decay)

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """The trainer's `gradient_clip_val` / `gradient_clip_algorithm`, for row (sparse) gradients too: torch's
        clipping refuses those. Dense gradients only: Lightning's own clipping, unchanged."""
        if gradient_clip_val is None or not any(p.grad is not None and p.grad.is_sparse for p in self.parameters()):
            return super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)
        clip_gradients_(self.parameters(), float(gradient_clip_val), "value" if gradient_clip_algorithm == "value"
                        else "norm")

    # --- evaluation ----------------------------------------------------------------------------
    def evaluation_scores(self, batch: EvalBatch) -> Tensor:
        """(B, n_items) scores of an evaluation batch, padding and `batch.exclude` at -inf. In float32 even
        under bf16 autocast ("bf16-mixed" on a GPU): bf16 logits (8 bits of mantissa) would tie and misorder
        items, and full-ranking metrics count every place."""
        with torch.no_grad(), torch.autocast(self.device.type, enabled=False):
            return mask_scores(self.score(batch.inputs), batch.exclude)

    def _evaluate(self, batch: EvalBatch, metrics: RankingMetrics) -> None:
        metrics.update(self.evaluation_scores(batch), batch.targets)

    def validation_step(self, batch: EvalBatch, batch_idx: int) -> None:
        self._evaluate(batch, self.val_metrics)

    def test_step(self, batch: EvalBatch, batch_idx: int) -> None:
        self._evaluate(batch, self.test_metrics)

    def _log_metrics(self, stage: str, metrics: RankingMetrics) -> None:
        values = metrics.compute()   # over every process's users already (a torchmetrics Metric syncs itself)
        self.log_dict({f"{stage}/{k}": v for k, v in values.items()}, prog_bar=False, sync_dist=True)
        metrics.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val", self.val_metrics)

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test", self.test_metrics)
