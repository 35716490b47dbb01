"""The LightningModule every recipe builds on.

A recipe supplies `score(inputs) -> (B, n_items)` and either `loss(batch)` (gradient-trained recipes)
or `accumulate(batch)` (count-based recipes, `count_based = True`, fitted in one pass over the
training sequences with no optimizer). The base owns validation/test with full-ranking metrics, so
every recipe is evaluated the same way and saved in the same format.

Hyperparameters are primitives saved with `save_hyperparameters()`, so a checkpoint loads with
`torch.load(weights_only=True)`; sizes that come from the data (`n_items`) are passed in by training.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import ClassVar

import pytorch_lightning as pl
import torch
from torch import Tensor

from personalize_torch.data.batching import EvalBatch, SequenceBatch
from personalize_torch.metrics.ranking import mask_scores
from personalize_torch.metrics.ranking_metrics import RankingMetrics
from personalize_torch.recipes.hyperparameters import coerce


class Recipe(pl.LightningModule):
    recipe_name: ClassVar[str]
    count_based: ClassVar[bool] = False
    # Personalize's recipe type: USER_PERSONALIZATION, RELATED_ITEMS, PERSONALIZED_RANKING, POPULAR_ITEMS,
    # USER_SEGMENTATION (batch segment jobs); and the hold-out split used when data.split is null.
    recipe_type: ClassVar[str] = "USER_PERSONALIZATION"
    default_split: ClassVar[str] = "personalize"

    def __init__(self, n_items: int):
        super().__init__()
        self.n_items = n_items
        self.val_metrics = RankingMetrics(n_items)
        self.test_metrics = RankingMetrics(n_items)
        if self.count_based:
            self.automatic_optimization = False

    def _save_hyperparameters(self, values: dict) -> None:
        """Save the constructor's arguments, strings coerced to the defaults' types (Personalize sends strings)."""
        params = inspect.signature(type(self).__init__).parameters
        hp = {}
        for name, p in params.items():
            if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            default = None if p.default is p.empty else p.default
            value = values[name]
            if isinstance(value, Mapping):
                value = dict(value)  # e.g. an OmegaConf DictConfig
            elif not isinstance(value, (str, bytes)) and hasattr(value, "__iter__"):
                value = list(value)  # e.g. an OmegaConf ListConfig: keep checkpoints primitive
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

    @property
    def train_batch_size(self) -> int | None:
        """Training windows per batch when the recipe sets its own (hyperparameter `batch_size`); None: the
        data module's `batch_size`."""
        return self.hparams.get("batch_size") if hasattr(self, "hparams") else None

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

    # --- training ----------------------------------------------------------------------------
    def training_step(self, batch: SequenceBatch, batch_idx: int):
        if self.count_based:
            self.accumulate(batch)
            return None
        loss = self.loss(batch)
        self.log("train/loss", loss, prog_bar=True, on_step=False, on_epoch=True, batch_size=batch.items.shape[0])
        return loss

    def configure_optimizers(self):
        if self.count_based:
            return None
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.learning_rate,
                                 weight_decay=self.hparams.weight_decay)

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
        values = metrics.compute()
        self.log_dict({f"{stage}/{k}": v for k, v in values.items()}, prog_bar=False)
        metrics.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val", self.val_metrics)

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test", self.test_metrics)
