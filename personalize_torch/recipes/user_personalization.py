"""User-Personalization (aws-user-personalization): a causal transformer over each user's recent events,
trained to predict each next event with a softmax over the whole catalogue.

Hyperparameters (Personalize's names where Personalize has them; the measurements behind every default are
in bench/RESULTS.md, "User-Personalization"):
- `bptt` (2-512, default 200): recent events read and backpropagated through (Personalize allows 2-32;
  dense data gains from longer, short histories are unaffected).
- `batch_size` (default 64): training windows per step; null: the data config's `batch_size`.
- `hidden_dimension`, `dropout`, `weight_decay` (AdamW's): `auto` picks them by how dense the data is, from
  the median training history length: under 20 events 64 / 0.3 / 0.3 (sparse, e.g. Amazon Beauty), from 20
  128 / 0.1 / 0 (dense, e.g. MovieLens). A number overrides `auto`.
- `recency_mask` with `recency_strength`: weight the loss towards recent events (from `1 - recency_strength`
  for the oldest training event to 1 for the newest), so recent trends count more.
- `min_user_history_length_percentile` / `max_user_history_length_percentile` (0 and 1: every user trains;
  Personalize's maximum is 0.99): users outside these percentiles of history length are left out of
  training (still served and evaluated).
- `loss`: `full` softmax, `sampled` softmax (`num_negatives` shared negatives, `negative_sampling`
  `popularity` with the logQ correction or `uniform`), or `auto`: full up to `full_softmax_max_items`
  (16,384) items. On a GPU the full softmax is cheap: raise `full_softmax_max_items`. With the sampled
  softmax a training step reads and updates only the item rows it uses (the batch's items and its
  negatives; next_item.py), so a step costs about the same at 10k or 1M items; AdamW's weight decay then
  shrinks an item's vector when the item is used, not at every step.
- `event_type_weights` ({EVENT_TYPE: weight}): how much predicting each type of event counts in the loss.
- `lr_schedule`: `final_decay` (constant, then linear decay to 0 over the last 20% of the budget, epochs or
  `max_time`), `constant`, or `cosine` with `warmup_steps`.
- Contextual fields (DEVICE, ...; from the data): each event's context is added to its input, and the
  context of the event being predicted (a request's `context`) to the user's state, so a list can differ
  by device.
- `use_item_metadata`: an item's vector is its id embedding plus its Items metadata (categorical values,
  numeric fields, CREATION_TIMESTAMP), so items with few or no events are placed by what they are.
- `exposure_prior` (default true): with impressions, each item's logit gets the log of its share of training
  impressions, so the model learns preference given exposure (the learned bias reads as a click-through
  rate). No impressions: no change. `impression_weight` (default 0) adds a slate-choice term (the chosen item
  against the others shown); `impression_item_gradient` lets that term move item vectors.
- `use_user_metadata` (default true; no effect without a Users dataset): the user's Users metadata
  (categorical values, numeric fields), encoded like an item's, is added to the user's state, so a list
  reads what the user is as well as what they did. A user the solution does not know (no events at
  training: described in the Users dataset, or sent with PutUsers to a running server) is scored from that
  metadata alone (plus a learned "no history yet" vector), which training learns by also predicting each
  user's first event from it; their metadata is encoded at request time with the solution's value
  vocabulary (values it never saw count as unknown).
Users with neither a history nor Users metadata get the most popular items.
"""

from __future__ import annotations

import torch
from torch import Tensor

from personalize_torch.data.batching import SequenceBatch
from personalize_torch.data.description import DataDescription
from personalize_torch.data.split import Split
from personalize_torch.errors import InputError
from personalize_torch.losses import slate_choice_loss
from personalize_torch.models.context_embeddings import ContextEmbeddings
from personalize_torch.models.item_encoder import ItemMetadataEncoder
from personalize_torch.models.item_rows import gather_rows
from personalize_torch.models.older_checkpoints import fill_missing
from personalize_torch.models.transformer import SequenceTransformer
from personalize_torch.recipes.hyperparameters import check_range
from personalize_torch.recipes.next_item import HIDDEN_DIMENSION_RANGE, NextItemRecipe
from personalize_torch.recipes.user_metadata import has_user_metadata, user_metadata_rows


class UserPersonalization(NextItemRecipe):
    recipe_name = "user_personalization"
    reads_item_rows = True   # `loss` reads the item table, bias and metadata at `batch_rows` only
    scores_state_against_item_table = True

    def __init__(self, n_items: int, hidden_dimension: int | str = "auto", bptt: int = 200, num_layers: int = 2,
                 num_heads: int = 2, dropout: float | str = "auto", learning_rate: float = 2e-3,
                 weight_decay: float | str = "auto",
                 loss: str = "auto", num_negatives: int = 2048, full_softmax_max_items: int = 16384,
                 recency_mask: bool = True, recency_strength: float = 0.5,
                 min_user_history_length_percentile: float = 0.0,
                 max_user_history_length_percentile: float = 1.0, impression_weight: float = 0.0,
                 context_cardinalities: list[int] | None = None, use_item_metadata: bool = True,
                 item_value_vocab_size: int = 0, item_value_slots: int = 0, item_numeric_features: int = 0,
                 impression_item_gradient: bool = False, lr_schedule: str = "final_decay", warmup_steps: int = 0,
                 event_type_names: list[str] | None = None, event_type_weights: dict | None = None,
                 batch_size: int | None = 64, negative_sampling: str = "popularity", exposure_prior: bool = True,
                 median_history_length: float | None = None, use_user_metadata: bool = True, n_users: int = 1,
                 user_value_vocab_size: int = 0, user_value_slots: int = 0, user_numeric_features: int = 0):
        super().__init__(n_items)
        self._save_hyperparameters(locals())
        hp = self.hparams
        defaults = density_defaults(median_history_length)
        hp.hidden_dimension = resolve_auto("hidden_dimension", hp.hidden_dimension, defaults["hidden_dimension"],
                                           *HIDDEN_DIMENSION_RANGE, integer=True)
        hp.dropout = resolve_auto("dropout", hp.dropout, defaults["dropout"], 0.0, 0.9)
        hp.weight_decay = resolve_auto("weight_decay", hp.weight_decay, defaults["weight_decay"], 0.0, 10.0)
        self._check_next_item_hyperparameters()
        self._register_event_type_weights(event_type_names, event_type_weights)
        if hp.batch_size is not None:
            check_range("batch_size", hp.batch_size, 1, 65536)
        if hp.hidden_dimension % hp.num_heads:
            raise InputError(f"hidden_dimension {hp.hidden_dimension} must be a multiple of num_heads "
                             f"({hp.num_heads}): each attention head reads an equal share", column="hidden_dimension")
        self.model = SequenceTransformer(n_items, hp.hidden_dimension, hp.bptt, hp.num_layers, hp.num_heads,
                                         hp.dropout)
        self.context_embeddings = ContextEmbeddings(context_cardinalities, hp.hidden_dimension)
        self.next_context_embeddings = ContextEmbeddings(context_cardinalities, hp.hidden_dimension)
        self.item_metadata = None
        if use_item_metadata and (item_value_slots or item_numeric_features):
            self.item_metadata = ItemMetadataEncoder(hp.hidden_dimension, item_value_vocab_size, item_numeric_features)
        self.register_buffer("item_values", torch.zeros(n_items, item_value_slots, dtype=torch.long))
        self.register_buffer("item_numeric", torch.zeros(n_items, item_numeric_features))
        self.user_metadata = None   # Users metadata: an encoder, its table (rows = user indices), a cold query
        if use_user_metadata and (user_value_slots or user_numeric_features):
            self.user_metadata = ItemMetadataEncoder(hp.hidden_dimension, user_value_vocab_size, user_numeric_features)
            n_rows = max(int(n_users), 1)
            self.register_buffer("user_values", torch.zeros(n_rows, user_value_slots, dtype=torch.long))
            self.register_buffer("user_numeric", torch.zeros(n_rows, user_numeric_features))
            self.no_history_query = torch.nn.Parameter(torch.zeros(hp.hidden_dimension))
        self.item_bias = torch.nn.Parameter(torch.zeros(n_items))  # exposure / popularity, catalogue-wide
        if hp.exposure_prior:   # log share of the impressions that showed each item (0 without impressions)
            self.register_buffer("item_log_exposure", torch.zeros(n_items))
            # solution versions trained before `exposure_prior` existed load with a prior of 0 (no change)
            self.register_load_state_dict_pre_hook(fill_missing("item_log_exposure", "item_bias", torch.zeros_like))
        self.times_shown = torch.zeros(n_items)   # impressions showing each item (count_statistics), not saved

    @classmethod
    def from_data(cls, data: DataDescription, **hyperparameters) -> UserPersonalization:
        recipe = cls(n_items=data.n_items, context_cardinalities=list(data.context_cardinalities),
                     event_type_names=list(data.event_type_names), median_history_length=data.median_history_length,
                     n_users=data.n_users, **data.item_features.sizes("item"), **data.user_features.sizes("user"),
                     **hyperparameters)
        recipe.set_item_metadata(data)
        if recipe.user_metadata is not None:
            users = data.user_features
            recipe.set_user_features(torch.from_numpy(users.categorical), torch.from_numpy(users.numeric))
        return recipe

    def set_user_features(self, categorical: Tensor, numeric: Tensor) -> None:
        """Users metadata (rows = user indices, row 0: padding / unknown users), kept as buffers in the checkpoint."""
        self.user_values.copy_(categorical)
        self.user_numeric.copy_(numeric)

    @property
    def user_metadata_shape(self) -> tuple[int, int] | None:
        if self.user_metadata is None:
            return None
        return int(self.user_values.shape[1]), int(self.user_numeric.shape[1])

    def user_vectors(self, batch: SequenceBatch) -> tuple[Tensor, Tensor] | None:
        """((B, C) each row's Users metadata vector, (B,) bool whether the row has metadata); None when the
        recipe reads none."""
        if self.user_metadata is None:
            return None
        values, numeric = user_metadata_rows(batch, self.user_values, self.user_numeric)
        return self.user_metadata(values, numeric), has_user_metadata(values, numeric)

    def scored_rows(self, inputs: SequenceBatch) -> Tensor:
        rows = super().scored_rows(inputs)
        users = self.user_vectors(inputs)
        return rows if users is None else rows | users[1].to(rows.device)

    def count_statistics(self, split: Split) -> None:
        super().count_statistics(split)
        if self.hparams.exposure_prior:   # no impressions: all 0, the prior stays 0
            self.times_shown = torch.from_numpy(split.train.times_shown(self.n_items)).float()   # impressions
            self._set_exposure(self.times_shown)

    def combine_statistics(self, add_up) -> None:
        super().combine_statistics(add_up)
        if self.hparams.exposure_prior:
            self.times_shown = add_up(self.times_shown, "sum")
            self._set_exposure(self.times_shown)

    def _set_exposure(self, shown: Tensor) -> None:
        log_shown = torch.log(shown + 1.0)          # centred, the same as the log of the share
        self.item_log_exposure.copy_(log_shown - log_shown[1:].mean())

    def score_bias(self, ids: Tensor | None = None) -> Tensor:
        """Per-item term of the catalogue logits (n_items,): the learned bias, plus the exposure prior when on;
        of the items `ids` (U,) only when given (the learned bias's gradient then on those rows only)."""
        bias = self.item_bias if ids is None else gather_rows(self.item_bias, ids)
        if not self.hparams.exposure_prior:
            return bias
        return bias + (self.item_log_exposure if ids is None else self.item_log_exposure[ids])

    def set_item_metadata(self, data: DataDescription) -> None:
        features = data.item_features
        self.set_item_features(torch.from_numpy(features.categorical), torch.from_numpy(features.numeric))

    def set_item_features(self, categorical: Tensor, numeric: Tensor) -> None:
        """Item metadata (see data/metadata_features.py), kept as buffers in the checkpoint."""
        self.item_values.copy_(categorical)
        self.item_numeric.copy_(numeric)

    def item_embeddings(self) -> Tensor:
        with torch.no_grad():
            return self.item_table()

    def item_table(self, ids: Tensor | None = None) -> Tensor:
        """(n_items, C) item vectors: id embeddings plus metadata, used for inputs and for scoring; with
        `ids` (U,), the rows of those items only (U, C), computed from their embeddings and metadata alone,
        the embeddings' gradient on those rows only."""
        if ids is None:
            table = self.model.item_embedding.weight
            if self.item_metadata is not None:
                meta = self.item_metadata(self.item_values, self.item_numeric)
                table = table + meta * (torch.arange(len(table), device=table.device) > 0).unsqueeze(1)
            return table
        table = gather_rows(self.model.item_embedding.weight, ids, padding_idx=0)
        if self.item_metadata is not None:
            meta = self.item_metadata(self.item_values[ids], self.item_numeric[ids])
            table = table + meta * (ids > 0).unsqueeze(1)
        return table

    def loss(self, batch: SequenceBatch) -> Tensor:
        """Next-item loss over the catalogue. With `sparse_item_rows` (the sampled softmax), item indices are
        first turned into rows of `batch_rows` (padding stays 0) and the tables hold those rows only."""
        self.count_popularity(batch)
        bptt = self.hparams.bptt
        slates_used = batch.impressions is not None and self.hparams.impression_weight > 0
        rows = self.batch_rows(batch.items, *([batch.impressions] if slates_used else []))
        ids = None if rows is None else rows.ids
        items = batch.items if rows is None else rows.local(batch.items)
        inputs, targets = items[:, :-1][:, -bptt:], items[:, 1:][:, -bptt:]
        predict = (inputs > 0) & (targets > 0)                                   # (B, T)
        context = batch.context[:, :-1][:, -bptt:] if batch.context is not None else None
        table = self.item_table(ids)                                             # (n_items or U, C)
        hidden = self.model(inputs, self.context_embeddings(context), table)   # (B, T, C)
        if batch.context is not None and len(self.next_context_embeddings):
            hidden = hidden + self.next_context_embeddings(batch.context[:, 1:][:, -bptt:])
        users = self.user_vectors(batch)
        if users is not None:
            hidden = hidden + users[0].unsqueeze(1)
        hidden = hidden[predict]                                                 # (N, C)
        target = targets[predict]                                                # (N,)
        event_types = batch.event_types[:, 1:][:, -bptt:][predict] if batch.event_types is not None else None
        weights = self.target_weights(batch.timestamps[:, 1:][:, -bptt:][predict], event_types)
        predicted, targeted, weighted = hidden, target, weights
        if users is not None and batch.starts_history is not None:   # and each user's first event (not slates)
            predicted, targeted, weighted = self._with_first_events(batch, items, users, hidden, target, weights)
        loss = self.catalogue_loss(predicted, targeted, table, weighted, self.score_bias(ids), rows)
        if slates_used:
            impressions = batch.impressions if rows is None else rows.local(batch.impressions)
            slates = impressions[:, 1:][:, -bptt:][predict]                        # slate shown with each target
            slate_table = table if self.hparams.impression_item_gradient else table.detach()
            # With the exposure prior, the rest of the logits (dot product + learned bias) is the user's
            # preference, what a choice among shown items depends on: the slate term uses the same.
            learned_bias = self.item_bias if ids is None else self.item_bias[ids]
            slate_bias = learned_bias.detach() if self.hparams.exposure_prior else None
            loss = loss + self.hparams.impression_weight * slate_choice_loss(hidden, target, slates, slate_table,
                                                                             weights, slate_bias)
        return loss

    def _with_first_events(self, batch: SequenceBatch, items: Tensor, users: tuple[Tensor, Tensor], hidden: Tensor,
                           target: Tensor, weights: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
        """The predictions of `loss` (hidden (N, C), target (N,), weights (N,)) followed by those of the first
        event of each window that begins a user's history, for users with metadata, from the state of a user
        with no history (`no_history_query` + the metadata vector, + the event's context): what a user the
        solution does not know is scored from. `items`: the batch's items (rows of the tables in use)."""
        vectors, described = users
        lengths = (items > 0).sum(1)
        rows = torch.nonzero(batch.starts_history.to(described.device) & described & (lengths > 0)).view(-1)
        if not len(rows):
            return hidden, target, weights
        first = items.shape[1] - lengths[rows]                                   # left padding
        cold = self.no_history_query + vectors[rows]                             # (R, C)
        if batch.context is not None and len(self.next_context_embeddings):
            cold = cold + self.next_context_embeddings(batch.context[rows, first])
        event_types = batch.event_types[rows, first] if batch.event_types is not None else None
        cold_weights = self.target_weights(batch.timestamps[rows, first], event_types)
        if weights is not None or cold_weights is not None:
            weights = torch.cat([weights if weights is not None else torch.ones(len(target), device=hidden.device),
                                 cold_weights if cold_weights is not None else torch.ones(len(rows),
                                                                                           device=hidden.device)])
        return torch.cat([hidden, cold]), torch.cat([target, items[rows, first]]), weights

    @property
    def user_state_dimension(self) -> int:
        return self.hparams.hidden_dimension

    def user_state(self, inputs: SequenceBatch, table: Tensor | None = None) -> Tensor:
        """(B, C) each user's state from their events: the transformer's output at the newest event. It does
        not depend on the context of the event being predicted (`score_state` adds that), so a server can
        keep it per user (serving/inference/user_states.py)."""
        items, context = inputs.items, inputs.context
        if items.shape[1] == 0:
            items, context = torch.zeros(items.shape[0], 1, dtype=torch.long, device=items.device), None
        table = self.item_table() if table is None else table
        state = self.model(items, self.context_embeddings(context), table, last_only=True)[:, -1]
        users = self.user_vectors(inputs)
        if users is None:
            return state
        no_history = ~(items > 0).any(1, keepdim=True)
        return torch.where(no_history, self.no_history_query.expand_as(state), state) + users[0].to(state)

    def score_state(self, state: Tensor, inputs: SequenceBatch, table: Tensor | None = None) -> Tensor:
        """(B, n_items) softmax scores from `user_state`'s output and the context of the event being predicted
        (`inputs.next_context`; without one, the user's latest context)."""
        next_context, context = inputs.next_context, inputs.context
        if next_context is None and context is not None and inputs.items.shape[1]:
            next_context = context[:, -1]                     # the user's latest context
        if next_context is not None and len(self.next_context_embeddings):
            state = state + self.next_context_embeddings(next_context)
        table = self.item_table() if table is None else table
        logits = self.model.item_scores(state, table) + self.score_bias()         # (B, n_items)
        logits[:, 0] = -torch.inf
        return self.with_popular_fallback(torch.softmax(logits, dim=1), inputs)

    def score(self, inputs: SequenceBatch) -> Tensor:
        table = self.item_table()
        return self.score_state(self.user_state(inputs, table), inputs, table)


DENSE_MEDIAN_HISTORY = 20   # median training events per user from which `auto` picks the dense settings


def density_defaults(median_history_length: float | None) -> dict[str, float]:
    """What `hidden_dimension`, `dropout` and `weight_decay` set to `auto` become: on sparse data (median
    training history under DENSE_MEDIAN_HISTORY events, e.g. Amazon Beauty's 4) 64, dropout 0.3 and weight
    decay 0.3; on dense data (the ML-1M half: 87) 128, dropout 0.1 and no weight decay. Unknown (no data):
    the sparse settings."""
    dense = median_history_length is not None and median_history_length >= DENSE_MEDIAN_HISTORY
    if dense:
        return {"hidden_dimension": 128, "dropout": 0.1, "weight_decay": 0.0}
    return {"hidden_dimension": 64, "dropout": 0.3, "weight_decay": 0.3}


def resolve_auto(name: str, value, auto: float, low: float, high: float, integer: bool = False) -> float | int:
    """`value` as a number in [low, high] (a whole number when `integer`); "auto" gives `auto`."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return auto
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"expected a number or 'auto', got {value!r}", column=name) from None
    if integer:
        if not number.is_integer():   # 64.5, inf, nan
            raise InputError(f"expected a whole number or 'auto', got {value!r}", column=name)
        number = int(number)
    check_range(name, number, low, high)
    return number

