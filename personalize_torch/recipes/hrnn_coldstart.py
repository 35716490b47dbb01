"""HRNN-Coldstart (aws-hrnn-coldstart): HRNN-Meta that recommends only new (cold) items, scored by their
Items metadata.

Which items are cold (`data/cold_items.py`, Personalize's knobs):
- `cold_start_max_interactions` (default 15): an item with more events than this is not cold;
- `cold_start_max_duration` (default 5.0 days): nor is one created longer ago than this before the
  reference time, which `cold_start_relative_from` sets: `latestItem` (default), the newest
  CREATION_TIMESTAMP in the catalogue, or `currentTime`, the time the model is trained.
An item with no CREATION_TIMESTAMP counts as created at the reference time (so items added later by
UPDATE, with no events, are cold too). Cold items are decided from the counts and creation times kept in
the checkpoint, at scoring time, so an UPDATE that adds items makes them recommendable at once.

Like Personalize's HRNN-Coldstart, recommendations come **only** from the cold items: every other item
scores -inf (a request returns fewer results than asked when fewer cold items are left). Training
raises an `InputError` naming the parameter to change when the dataset group has no Items metadata, no
CREATION_TIMESTAMP, or no item is cold; it logs how many items are cold, and warns when most of the
catalogue is (the recipe is then close to a plain HRNN-Meta restricted to rarely chosen items).

How cold items get vectors: the output side of the network scores items by their categorical metadata
only (the mean embedding of their values, `|` multi-values, plus a per-item bias; no id embedding), in
training as well as serving, so what the model learns about warm items' categories is exactly what
places the cold ones. Numeric fields are left out of the output side: a cold item's CREATION_TIMESTAMP
lies beyond every trained item's, and a linear term in it extrapolates and swamps the categories
(bench/hrnn.md). The inputs still read id + metadata vectors, numeric fields included (a user's history is
mostly warm items). Users with no history are scored by the network from its initial state (not by
popularity, which cold items do not have).
"""

from __future__ import annotations

import logging
import time

import torch
from torch import Tensor

from personalize_torch.data.batching import SequenceBatch
from personalize_torch.data.cold_items import RELATIVE_FROM, cold_item_mask, cold_reference_time, known_creation
from personalize_torch.data.description import DataDescription
from personalize_torch.errors import InputError
from personalize_torch.recipes.hrnn_meta import HRNNMeta
from personalize_torch.recipes.hyperparameters import check_range
from personalize_torch.recipes.next_item import NextItemRecipe

log = logging.getLogger(__name__)
MOST_OF_THE_CATALOGUE = 0.5


class HRNNColdstart(HRNNMeta):
    recipe_name = "hrnn_coldstart"

    def __init__(self, n_items: int, hidden_dimension: int = 43, bptt: int = 32, session_gap_seconds: int = 1800,
                 dropout: float = 0.4, embedding_dropout: float = 0.4, learning_rate: float = 5e-3,
                 weight_decay: float = 0.0, lr_schedule: str = "cosine", loss: str = "auto",
                 num_negatives: int = 2048, full_softmax_max_items: int = 100_000, recency_mask: bool = True,
                 recency_strength: float = 0.5,
                 min_user_history_length_percentile: float = 0.0,
                 max_user_history_length_percentile: float = 0.99,
                 context_cardinalities: list[int] | None = None, use_item_metadata: bool = True,
                 item_value_vocab_size: int = 0, item_value_slots: int = 0, item_numeric_features: int = 0,
                 use_user_metadata: bool = True, n_users: int = 1, user_value_vocab_size: int = 0,
                 user_value_slots: int = 0, user_numeric_features: int = 0,
                 cold_start_max_interactions: int = 15, cold_start_max_duration: float = 5.0,
                 cold_start_relative_from: str = "latestItem"):
        NextItemRecipe.__init__(self, n_items)   # the parents' __init__ would save only their hyperparameters
        self._save_hyperparameters(locals())
        hp = self.hparams
        check_range("cold_start_max_interactions", hp.cold_start_max_interactions, 0, float("inf"))
        check_range("cold_start_max_duration", hp.cold_start_max_duration, 0.0, float("inf"))
        if hp.cold_start_relative_from not in RELATIVE_FROM:
            raise InputError(f"expected latestItem or currentTime, got {hp.cold_start_relative_from!r}",
                             column="cold_start_relative_from")
        if not hp.use_item_metadata or not hp.item_value_slots:
            raise InputError("HRNN-Coldstart builds the vectors of cold items from categorical Items metadata, "
                             "and there is none: give the dataset group an Items dataset with categorical fields "
                             "(such as GENRES) and keep use_item_metadata true", column="data.items")
        self._build()
        self._build_metadata()
        # Per item index: events counted at training, CREATION_TIMESTAMP (NaN: unknown); the reference time.
        self.register_buffer("item_interactions", torch.zeros(n_items))
        self.register_buffer("item_created", torch.full((n_items,), float("nan"), dtype=torch.float64))
        self.register_buffer("cold_reference_time", torch.zeros((), dtype=torch.float64))

    @classmethod
    def from_data(cls, data: DataDescription, **hyperparameters) -> HRNNColdstart:
        recipe = super().from_data(data, **hyperparameters)
        recipe.set_item_activity(torch.from_numpy(data.item_interaction_counts),
                                 torch.from_numpy(data.item_creation_timestamps))
        return recipe

    def set_item_activity(self, counts: Tensor, created: Tensor, now: float | None = None) -> None:
        """Each item's event count and CREATION_TIMESTAMP (epoch seconds, NaN unknown), from the data;
        `now` (default: the clock) is the reference of `cold_start_relative_from=currentTime`."""
        hp = self.hparams
        created = created.to(torch.float64)
        if not known_creation(created.numpy()).any():
            raise InputError("HRNN-Coldstart tells new items by their CREATION_TIMESTAMP, and no item has one: "
                             "add CREATION_TIMESTAMP to the Items dataset", column="CREATION_TIMESTAMP")
        now = time.time() if now is None else now
        reference = cold_reference_time(created.numpy(), hp.cold_start_relative_from, now)
        self.item_interactions.copy_(counts.float())
        self.item_created.copy_(created)
        self.cold_reference_time.fill_(reference)
        cold = int(self.cold_items().sum())
        n = self.n_items - 1
        rule = (f"at most {hp.cold_start_max_interactions} interactions and a CREATION_TIMESTAMP at most "
                f"{hp.cold_start_max_duration} days before {self._reference_name()} "
                f"({time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(reference))} UTC)")
        if cold == 0:
            raise InputError(f"no cold items: none of the {n} items has {rule}; raise cold_start_max_duration "
                             f"or cold_start_max_interactions, or use cold_start_relative_from=latestItem",
                             column="cold_start_max_duration")
        message = f"HRNN-Coldstart: {cold} of {n} items are cold ({rule}); only these are recommended"
        if cold > MOST_OF_THE_CATALOGUE * n:
            log.warning("%s. That is most of the catalogue: lower cold_start_max_duration or "
                        "cold_start_max_interactions to keep to new items", message)
        else:
            log.info(message)

    def _reference_name(self) -> str:
        return "the newest item's" if self.hparams.cold_start_relative_from == "latestItem" else "training time"

    def cold_items(self) -> Tensor:
        """(n_items,) bool: the items this solution recommends."""
        hp = self.hparams
        mask = cold_item_mask(self.item_interactions.cpu().numpy(), self.item_created.cpu().numpy(),
                              hp.cold_start_max_interactions, hp.cold_start_max_duration,
                              float(self.cold_reference_time))
        return torch.from_numpy(mask).to(self.item_interactions.device)

    def recommendable_items(self) -> Tensor:
        return self.cold_items()

    # --- HRNN's hooks: outputs by metadata only; no popularity fallback ------------------------------------
    def output_item_vectors(self, vectors: Tensor | None) -> Tensor:
        return self.item_metadata_vectors(numeric=False)

    def with_popular_fallback(self, probs: Tensor, inputs: SequenceBatch) -> Tensor:
        return probs

    def score(self, inputs) -> Tensor:
        scores = super().score(inputs)
        return scores.masked_fill(~self.cold_items(), float("-inf"))
