"""Training callbacks: keep the weights of the best validation epoch; a line of metrics per epoch; the
learning rate per epoch."""

from __future__ import annotations

import copy
import logging
import math

import pytorch_lightning as pl
from pytorch_lightning.trainer.states import TrainerFn

log = logging.getLogger(__name__)


class RestoreBestWeights(pl.Callback):
    """Remember the weights at the best `monitor` value and load them back when fitting ends.

    Weights trained after the last validation (a `max_time` cut in the middle of an epoch, or
    `check_val_every_n_epoch` > 1) have not been compared with the best: they are kept in
    `unvalidated_state` for `training.train` to validate and keep if they are better. The best so far is part
    of a training checkpoint (`state_dict`), so a resumed run compares with the epochs before the restart.
    """

    def __init__(self, monitor: str = "val/ndcg_at_10", mode: str = "max"):
        self.monitor, self.mode = monitor, mode
        self.best = -math.inf if mode == "max" else math.inf
        self.best_epoch: int | None = None
        self.best_state: dict | None = None
        self.unvalidated_state: dict | None = None
        self._validated_step = -1

    def state_dict(self) -> dict:
        """Saved in a training checkpoint (resume.py): a resumed run still knows the best weights before it."""
        return {"best": self.best, "best_epoch": self.best_epoch, "best_state": self.best_state,
                "validated_step": self._validated_step}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch, self.best_state = state["best"], state["best_epoch"], state["best_state"]
        self._validated_step = state["validated_step"]

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        self._validated_step = trainer.global_step
        value = float(trainer.callback_metrics[self.monitor])
        if (value > self.best) if self.mode == "max" else (value < self.best):
            self.best, self.best_epoch = value, trainer.current_epoch
            self.best_state = copy.deepcopy(pl_module.state_dict())

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.best_state is None:
            return
        if trainer.global_step != self._validated_step:
            self.unvalidated_state = copy.deepcopy(pl_module.state_dict())
        pl_module.load_state_dict(self.best_state)

    def consider_final_weights(self, pl_module: pl.LightningModule, validate) -> bool:
        """Load the weights left unvalidated at the end of fitting and run `validate()` (a validation pass,
        whose end this callback sees); keep them if they beat the best, else load the best back.
        Returns whether the final weights were kept."""
        if self.unvalidated_state is None:
            return False
        state, best_before, self.unvalidated_state = self.unvalidated_state, self.best, None
        pl_module.load_state_dict(state)
        validate()
        if self.best != best_before:
            log.info("kept the weights at the end of training (not validated during it): %s %.4f",
                     self.monitor, self.best)
            return True
        pl_module.load_state_dict(self.best_state)
        return False


class EpochSummary(pl.Callback):
    """One log line per validation while fitting: epoch, training loss, and the monitored validation metrics
    (from the first process when there are several). The validation after fitting is the training report's
    (train.py prints it), not a line here."""

    def __init__(self, metrics: tuple[str, ...] = ("val/ndcg_at_10", "val/hit_rate_at_10")):
        self.metrics = metrics

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING or not trainer.is_global_zero:
            return
        values = trainer.callback_metrics
        parts = [f"epoch {trainer.current_epoch}"]
        if "train/loss" in values:
            parts.append(f"train/loss {float(values['train/loss']):.4f}")
        parts += [f"{m} {float(values[m]):.4f}" for m in self.metrics if m in values]
        log.info("  ".join(parts))


class LogLearningRate(pl.Callback):
    """Log each optimizer's learning rate at the end of every training epoch as `train/lr` (`train/lr_<i>`
    for a second optimizer or parameter group), beside `train/loss`.

    Lightning's LearningRateMonitor does the same but refuses to run without a logger (`logger=none`) and,
    with `logging_interval="epoch"`, skips the per-step schedules HRNN and User-Personalization use; this
    goes through `pl_module.log`, so it reaches any logger and the epoch summary. Count-based recipes have
    no optimizer and log nothing."""

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        rates = [group["lr"] for optimizer in trainer.optimizers for group in optimizer.param_groups]
        for i, lr in enumerate(rates):
            pl_module.log("train/lr" if i == 0 else f"train/lr_{i}", float(lr), on_step=False, on_epoch=True,
                          sync_dist=True)
