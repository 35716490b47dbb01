"""What every next-item sequence recipe shares (User-Personalization, HRNN, ...).

- Personalize's sequence hyperparameters: `bptt` (input length), `recency_mask` with
  `recency_strength`, `min/max_user_history_length_percentile` (training-user trims), and the loss
  choice `loss` (`full` / `sampled` / `auto` up to `full_softmax_max_items`) with `num_negatives`.
- `event_type_weights` ({EVENT_TYPE: weight}): the loss weight of predicting an event of each type
  (Personalize's `eventsConfig.eventParametersList[].weight`), e.g. {"purchase": 1.0, "click": 0.3}; types
  not named weigh 1, weight 0 makes a type input only. Multiplies the recency weight.
- Popularity counted during the first epoch: the proposal of the sampled softmax, and the ranking
  for users with no history.
- Item tables updated by rows: with the sampled softmax, a recipe that declares `reads_item_rows` reads in
  a training step only the rows of its item tables that the step needs (`batch_rows`: the batch's items
  and the sampled negatives, models/item_rows.py), so their gradients and AdamW updates cover those rows
  and not the whole catalogue (recipes/optimizer.py: rows no step touched stay exactly as they are, and
  weight decay shrinks touched rows only). Automatic: `sparse_item_rows` is on exactly when the sampled
  softmax is (a full softmax multiplies by the whole table anyway, and its numbers stay those of dense
  AdamW) and training runs in one process (DDP all-reduces dense gradients). At 1M items (one CPU thread)
  User-Personalization went from 0.58 to 14.6 steps/s and HRNN from 0.79 to 31 (bench/item_table_scale.py).
A subclass calls `_check_next_item_hyperparameters()` after saving its hyperparameters.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import ClassVar

import numpy as np
import torch
from pytorch_lightning.callbacks import Timer
from torch import Tensor

from personalize_torch.data.batching import SequenceBatch
from personalize_torch.data.split import Split
from personalize_torch.errors import InputError
from personalize_torch.losses import full_softmax_loss, sampled_softmax_loss
from personalize_torch.models.item_rows import BatchRows
from personalize_torch.recipes.base import Recipe
from personalize_torch.recipes.hyperparameters import check_range

LR_SCHEDULES = ("constant", "cosine", "final_decay")
HIDDEN_DIMENSION_RANGE = (8, 1024)   # what `hidden_dimension` accepts (Personalize's own range: 32-256)
FINAL_DECAY_FRACTION = 0.2   # `final_decay`: the learning rate falls linearly to 0 over the budget's last 20%


class NextItemRecipe(Recipe):
    # True for a recipe whose `loss` reads its item tables through `batch_rows` (rows of a step only) when
    # `sparse_item_rows` is on; False: it reads whole tables, which train densely.
    reads_item_rows: ClassVar[bool] = False

    def __init__(self, n_items: int):
        super().__init__(n_items)
        self.processes = 1   # training processes (DDP), from the trainer in `setup`
        self._proposal_cache: tuple | None = None   # see negative_proposal
        self.register_buffer("item_counts", torch.zeros(n_items))   # popularity, for users with no history
        self.register_buffer("time_range", torch.zeros(2, dtype=torch.float64))
        self.register_buffer("event_type_weight", None, persistent=False)   # see _register_event_type_weights
        self.popularity_counted = False   # True once count_statistics counted item_counts from the data

    def _check_next_item_hyperparameters(self) -> None:
        hp = self.hparams
        check_range("hidden_dimension", hp.hidden_dimension, *HIDDEN_DIMENSION_RANGE)
        check_range("bptt", hp.bptt, 2, 512)
        check_range("recency_strength", hp.recency_strength, 0.0, 1.0)
        check_range("min_user_history_length_percentile", hp.min_user_history_length_percentile, 0.0, 1.0)
        check_range("max_user_history_length_percentile", hp.max_user_history_length_percentile, 0.0, 1.0)
        if hp.min_user_history_length_percentile > hp.max_user_history_length_percentile:
            raise InputError(f"{hp.min_user_history_length_percentile} is above max_user_history_length_percentile "
                             f"{hp.max_user_history_length_percentile}", column="min_user_history_length_percentile")
        if hp.loss not in ("auto", "full", "sampled"):
            raise InputError(f"expected auto, full or sampled, got {hp.loss!r}", column="loss")
        if hp.get("negative_sampling", "popularity") not in ("popularity", "uniform"):
            raise InputError(f"expected popularity or uniform, got {hp.negative_sampling!r}",
                             column="negative_sampling")
        if hp.get("lr_schedule", "constant") not in LR_SCHEDULES:
            raise InputError(f"expected one of {', '.join(LR_SCHEDULES)}, got {hp.lr_schedule!r}",
                             column="lr_schedule")
        check_range("warmup_steps", hp.get("warmup_steps", 0), 0, 10**7)

    def _register_event_type_weights(self, names: list[str] | None, weights) -> None:
        """Buffer `event_type_weight` (n_types + 1,): the loss weight of each EVENT_TYPE index (0 = none, 1.0),
        from `weights` ({type: weight}, or its JSON text as Personalize sends it). Recomputed from the
        hyperparameters, not stored in checkpoints."""
        names = [str(n) for n in (names or [])]
        table = torch.ones(len(names) + 1)
        if isinstance(weights, str):
            try:
                weights = json.loads(weights) if weights.strip() else None
            except json.JSONDecodeError:
                raise InputError(f"expected a JSON object {{event type: weight}}, got {weights!r}",
                                 column="event_type_weights") from None
        if weights:
            if not isinstance(weights, Mapping):
                raise InputError(f"expected {{event type: weight}}, got {weights!r}", column="event_type_weights")
            if not names:
                raise InputError("the interactions have no EVENT_TYPE column to weight", column="event_type_weights")
            for name, w in weights.items():
                if str(name) not in names:
                    raise InputError(f"event type {name!r} is not in the training data; types: {', '.join(names)}",
                                     column="event_type_weights")
                try:
                    w = float(w)
                except (TypeError, ValueError):
                    raise InputError(f"weight of {name!r} must be a number, got {w!r}",
                                     column="event_type_weights") from None
                if not 0.0 <= w <= 1000.0:
                    raise InputError(f"weight of {name!r} must be between 0 and 1000, got {w}",
                                     column="event_type_weights")
                table[names.index(str(name)) + 1] = w
            if not (table[1:] > 0).any():
                raise InputError("every event type weighs 0: nothing to learn", column="event_type_weights")
        self.register_buffer("event_type_weight", table, persistent=False)

    def target_weights(self, times: Tensor, event_types: Tensor | None) -> Tensor | None:
        """Loss weight of each predicted event (N,): `recency_weights` times the event type's weight; None
        when both are 1 everywhere."""
        weights = self.recency_weights(times)
        table = self.event_type_weight
        if event_types is None or table is None or bool((table == 1).all()):
            return weights
        by_type = table[event_types.clamp(0, len(table) - 1)]
        return by_type if weights is None else weights * by_type

    def configure_optimizers(self):
        """AdamW with the recipe's `lr_schedule`: `constant`; `cosine`: linear warm-up over
        `warmup_steps`, then cosine decay to 0 over the training budget, by step: the trainer's planned
        steps (max_epochs) or its `max_time`, whichever runs out first (so a time-limited run anneals
        fully by the cut); `final_decay`: the same warm-up, constant, then linear decay to 0 over the last
        FINAL_DECAY_FRACTION of the budget. With neither budget (max_epochs=-1, no max_time) the learning
        rate stays constant."""
        optimizer = super().configure_optimizers()
        hp = self.hparams
        if hp.get("lr_schedule", "constant") == "constant":
            return optimizer
        total = self.trainer.estimated_stepping_batches
        timer = next((c for c in self.trainer.callbacks if isinstance(c, Timer)), None)
        if not math.isfinite(total) and timer is None:
            return optimizer
        total = max(int(total), 1) if math.isfinite(total) else None
        warmup = int(hp.get("warmup_steps", 0))
        if total is not None:
            warmup = min(warmup, total - 1)

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = (step - warmup) / max(total - warmup, 1) if total is not None else 0.0
            if timer is not None and timer.time_remaining() is not None:
                elapsed = timer.time_elapsed()
                progress = max(progress, elapsed / max(elapsed + timer.time_remaining(), 1e-9))
            progress = min(progress, 1.0)
            if hp.lr_schedule == "final_decay":
                return min(1.0, (1.0 - progress) / FINAL_DECAY_FRACTION)
            return 0.5 * (1.0 + math.cos(math.pi * progress))

        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    @property
    def input_length(self) -> int:
        return self.hparams.bptt

    @property
    def train_length(self) -> int:
        return self.hparams.bptt + 1  # bptt inputs, each predicting the event after it

    @property
    def train_user_length_percentiles(self) -> tuple[float, float]:
        return (self.hparams.min_user_history_length_percentile, self.hparams.max_user_history_length_percentile)

    @property
    def uses_full_softmax(self) -> bool:
        loss = self.hparams.loss   # n_items counts the padding row: the catalogue is n_items - 1
        return loss == "full" or (loss == "auto" and self.n_items - 1 <= self.hparams.full_softmax_max_items)

    @property
    def sparse_item_rows(self) -> bool:
        """Whether a training step reads (and so updates) only the rows of the item tables it needs: with the
        sampled softmax, in a recipe that `reads_item_rows`, in one process (DDP's all-reduce is dense)."""
        return self.reads_item_rows and not self.uses_full_softmax and self.processes == 1

    def setup(self, stage: str) -> None:
        self.processes = self.trainer.world_size

    def negative_proposal(self) -> tuple[Tensor, Tensor]:
        """(log q (n_items,), cumulative unnormalized q (n_items,) in float64) of the sampled softmax's
        proposal: popularity^0.75 (`negative_sampling` popularity, counts + 1) or uniform; padding q = 0.
        Computed again only when `item_counts` changed (counted during the first epoch when
        `count_statistics` was not called, loaded, moved): not a pass over the catalogue every step."""
        sampling = self.hparams.get("negative_sampling", "popularity")
        counts = self.item_counts
        key = (counts.data_ptr(), counts._version, sampling)   # every in-place change bumps `_version`
        if self._proposal_cache is None or self._proposal_cache[0] != key:
            proposal = torch.ones_like(counts) if sampling == "uniform" else (counts + 1.0).pow(0.75)
            proposal[0] = 0
            log_q = (proposal / proposal.sum()).log()
            self._proposal_cache = (key, log_q, proposal.double().cumsum(0))
        return self._proposal_cache[1], self._proposal_cache[2]

    def draw_negatives(self) -> Tensor:
        """`num_negatives` item indices (K,) drawn with replacement from the proposal (never padding)."""
        _, cumulative = self.negative_proposal()
        u = torch.rand(self.hparams.num_negatives, dtype=torch.float64, device=cumulative.device) * cumulative[-1]
        return torch.searchsorted(cumulative, u, right=True).clamp_(1, len(cumulative) - 1)

    def batch_rows(self, *items: Tensor) -> BatchRows | None:
        """The rows of the item tables a training step reads: every item of `items` (the batch's events, its
        slates, ...) and `num_negatives` sampled negatives, drawn now; None when `sparse_item_rows` is off
        (whole tables)."""
        if not self.sparse_item_rows:
            return None
        return BatchRows.of(self.draw_negatives(), *items)

    def count_statistics(self, split: Split) -> None:
        """The training events' time range (recency weights) and every training event counted once, before
        the first step: the sampled softmax's proposal is right from the start, and with several processes
        (DDP) each sees the whole data's counts."""
        train = split.train
        if not len(train.timestamp):
            return
        self.time_range.copy_(torch.tensor([train.timestamp.min(), train.timestamp.max()], dtype=torch.float64))
        counts = np.bincount(train.item_idx, minlength=self.n_items)[:self.n_items]
        self.item_counts.copy_(torch.from_numpy(counts.astype(np.float32)))
        self.item_counts[0] = 0
        self.popularity_counted = True

    def combine_statistics(self, add_up) -> None:
        """Item counts added up over the processes' shares; the time range is the union of theirs."""
        super().combine_statistics(add_up)
        self.item_counts.copy_(add_up(self.item_counts, "sum"))
        self.item_counts[0] = 0
        counted = bool(self.time_range[1] > self.time_range[0])   # a share without events counted none
        low = add_up(self.time_range[:1] if counted else torch.full((1,), float("inf"), dtype=torch.float64), "min")
        high = add_up(self.time_range[1:] if counted else torch.full((1,), -float("inf"), dtype=torch.float64), "max")
        if bool(torch.isfinite(low).all() and torch.isfinite(high).all()):
            self.time_range.copy_(torch.cat([low, high]))

    def count_popularity(self, batch: SequenceBatch) -> None:
        """Count item occurrences during the first epoch (each training event once), unless
        `count_statistics` counted them before fitting."""
        if self.current_epoch == 0 and not self.popularity_counted:
            self.item_counts += torch.bincount(batch.items.flatten(), minlength=self.n_items).float()
            self.item_counts[0] = 0

    def recency_weights(self, times: Tensor) -> Tensor | None:
        """Loss weight of each predicted event: from 1 - recency_strength (oldest) to 1 (newest)."""
        if not self.hparams.recency_mask:
            return None
        t0, t1 = self.time_range.tolist()
        if t1 <= t0:
            t0, t1 = float(times.min()), float(times.max())
        age = ((times.double() - t0) / max(t1 - t0, 1e-9)).clamp(0, 1).float()
        return 1.0 - self.hparams.recency_strength * (1.0 - age)

    def catalogue_loss(self, hidden: Tensor, targets: Tensor, table: Tensor, weights: Tensor | None,
                       item_bias: Tensor | None = None, rows: BatchRows | None = None) -> Tensor:
        """Next-item cross-entropy over the catalogue: full softmax, or sampled (negatives drawn by
        popularity^0.75 with logQ correction, or uniformly: `negative_sampling`). With `rows` (from
        `batch_rows`), `table` / `item_bias` hold those rows only, `targets` are rows of it, and the negatives
        are the ones `rows` drew."""
        if self.uses_full_softmax:
            return full_softmax_loss(hidden, targets, table, weights, item_bias)
        log_q, _ = self.negative_proposal()
        if rows is None:
            negatives = self.draw_negatives()
        else:
            log_q, negatives = log_q[rows.ids], rows.negatives
        return sampled_softmax_loss(hidden, targets, table, log_q, self.hparams.num_negatives, weights,
                                    item_bias=item_bias, negatives=negatives)

    def with_popular_fallback(self, probs: Tensor, inputs: SequenceBatch) -> Tensor:
        """Rows the model does not score (`scored_rows`: no history, and no Users metadata the recipe reads) get
        the popularity distribution instead of `probs`."""
        popular = (self.item_counts / self.item_counts.sum().clamp(min=1)).expand_as(probs)
        return torch.where(self.scored_rows(inputs).to(probs.device).unsqueeze(1), probs, popular)
