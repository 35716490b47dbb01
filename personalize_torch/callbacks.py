"""Training callbacks: keep the weights of the best validation epoch."""

from __future__ import annotations

import copy
import math

import pytorch_lightning as pl


class RestoreBestWeights(pl.Callback):
    """Remember the weights at the best `monitor` value and load them back when fitting ends."""

    def __init__(self, monitor: str = "val/ndcg_at_10", mode: str = "max"):
        self.monitor, self.mode = monitor, mode
        self.best = -math.inf if mode == "max" else math.inf
        self.best_epoch: int | None = None
        self.best_state: dict | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics[self.monitor])
        if (value > self.best) if self.mode == "max" else (value < self.best):
            self.best, self.best_epoch = value, trainer.current_epoch
            self.best_state = copy.deepcopy(pl_module.state_dict())

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.best_state is not None:
            pl_module.load_state_dict(self.best_state)
