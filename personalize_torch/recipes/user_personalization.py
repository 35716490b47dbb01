"""User-Personalization (aws-user-personalization): a causal transformer over each user's recent events.

What each hyperparameter does (Personalize's names where Personalize has them):
- `bptt` (2-512, default 200): how many recent events the model reads and backpropagates through.
  Personalize allows 2-32; dense data gains from longer (ML-1M half, 15 minutes: test NDCG@10 0.165 with
  200 and the defaults below, 0.159 with 50 and the earlier ones; short-history data is unaffected).
- `batch_size` (default 64): training windows per step (null: the data config's `batch_size`). 64
  windows of up to 200 events hold about as many events as 256 of 50; on short-history data (Amazon
  Beauty) it means more, smaller steps, which with `learning_rate` 2e-3 converged faster than 256 /
  1e-3 (bench/RESULTS.md).
- `hidden_dimension` (size of item embeddings and hidden states; 32-256 in Personalize, 8-1024 accepted),
  `dropout` and `weight_decay` (AdamW's, on every parameter): `auto` (default) picks
  them by how dense the training data is, from the median training history length (`median_history_length`,
  from the data): under 20 events (sparse, e.g. Amazon Beauty: 4) 64, dropout 0.3 and weight decay 0.3;
  from 20 (dense, e.g. the ML-1M half: 87) 128, dropout 0.1 and no weight decay. Measured (bench/RESULTS.md):
  Beauty, 20 epochs, seed 0, test NDCG@10 0.0567 with dropout 0.3 against 0.0553 (0.2), 0.0565 (0.4),
  0.0526 (0.5); weight decay 0.3 against none: 0.0471 / 0.0475 vs 0.0434 / 0.0434 (seeds 42 / 1; 0.5:
  0.0536; 1.0 too strong). The ML-1M half, 15 minutes, one core: hidden 128 0.1851 against 0.1796 with 64
  (seed 0), dropout 0.1 0.1751 / 0.1799 against 0.1730 / 0.1650 with 0.2 (seeds 0 / 1), weight decay 0.3
  there no gain. Beauty with 128 would not fit 20 epochs in 15 minutes on a CPU (the 12k-item softmax
  doubles). A number overrides `auto`.
- `recency_mask` (true/false): weight the loss towards recent events, so recent popularity trends
  count more. Each predicted event's weight rises linearly with its time, from `1 - recency_strength`
  for the oldest event in the training data to 1 for the newest.
- `min_user_history_length_percentile` / `max_user_history_length_percentile`: training users whose
  history length is below / above these percentiles of all users are left out of training (they are
  still served and evaluated). Defaults 0 and 1: every user trains. Personalize's default maximum is 0.99
  (set it to match, e.g. to keep bots with huge histories out); here keeping the top 1% gave, leave-one-out,
  Amazon Beauty (20 epochs) test NDCG@10 0.0585 / HR@10 0.0958 against 0.0571 / 0.0943, and the ML-1M half
  (15 minutes) 0.1888 against 0.1865 (means of 3 seeds; bench/RESULTS.md).
- `loss`: `full` softmax over the catalogue, `sampled` softmax with logQ correction
  (`num_negatives` shared negatives drawn from popularity^0.75), or `auto`: full up to
  `full_softmax_max_items` items (16,384), sampled above. The full softmax learns more per epoch: on Amazon
  Beauty (12,101 items, 2 CPU cores, one thread, 20 epochs, weight decay 0.3) test NDCG@10 0.0490 / 0.0493
  (seeds 42 / 1) against 0.0471 / 0.0475 with 2,048 sampled negatives, in 12.2 minutes against 7.4
  (bench/RESULTS.md). Above ~16k items on a CPU an epoch gets long; on a GPU the full softmax is cheap:
  raise `full_softmax_max_items` (e.g. 100000).
- `negative_sampling` (sampled loss): `popularity` (default: popularity^0.75 with the logQ correction, an
  unbiased estimate of the full softmax) or `uniform` (every item equally likely, no correction: RecTools'
  and the eSASRec paper's sampled softmax). On Beauty, uniform with 256 negatives learned far slower
  (validation NDCG@10 0.043 after 25 epochs against 0.053 after 19 for the default; bench/RESULTS.md).
- `event_type_weights` ({EVENT_TYPE: weight}, default none): how much predicting each type of event counts
  in the loss (see recipes/next_item.py); `event_type_names` come from the data.
- `lr_schedule`: `final_decay` (default): constant, then linear decay to 0 over the last 20% of the
  training budget, the trainer's `max_epochs` or its `max_time`, whichever runs out first. Against a constant
  rate it gave test NDCG@10 0.0544 vs 0.0490 on Beauty (20 epochs, seed 42) and 0.1796 vs 0.1751 on the ML-1M
  half (15 minutes, seed 0; bench/RESULTS.md). `constant`; or `cosine` (linear warm-up over `warmup_steps`,
  then cosine decay to 0 over the budget): on the ML-1M half cosine by the clock gave 0.158 / 0.153 against
  0.173 / 0.165 constant (seeds 0 / 1): it decays too early for a model still learning at the cut.
- `context_cardinalities` (from the data, not a knob): contextual interaction fields such as DEVICE.
  Each event's context is embedded and added to its input; the context of the event being predicted
  (at request time, the request's `context`; in evaluation, the user's latest context) is embedded
  separately and added to the user's state before scoring, so "what does this user want on mobile"
  can differ from "on desktop".
- Item metadata (`use_item_metadata`; sizes from the data): each item's vector is its id embedding plus
  the mean embedding of its categorical values (`|` multi-values) plus a projection of its numeric
  fields (CREATION_TIMESTAMP included), so items with few or no interactions are placed by what they are.
- `impression_weight`: weight of the slate-choice term (losses.slate_choice_loss) for events with an
  IMPRESSION: the chosen item against the items shown with it and not chosen, for this user. The
  catalogue softmax keeps a per-item bias that absorbs exposure/popularity, so skipped items are not
  pushed down globally. With `impression_item_gradient` false (default) the slate term trains only the
  user side (item vectors are held fixed in it), so frequently shown items are not pushed away from
  everyone. 0 (the default): on demo data where clicks are chosen from their slates the term lowered
  NDCG@10 (weight 1.0: -9% alone, -3.5% beside the exposure prior; bench/RESULTS.md).
- `exposure_prior` (default true): how impressions are used. Each item's catalogue logit gets a fixed term,
  the log of the share of training impressions that showed the item (+1 smoothed, centred), so
  P(next event = i) is modelled as exposure(i) x preference(user, i), with the exposure counted from the
  slates instead of learned from the clicks; the dot product and `item_bias` model the preference only
  (and the slate-choice term, when on, uses the same preference part). The learned bias then reads as a
  click-through rate: items shown often and seldom chosen get a low preference. Data without impressions
  get 0 everywhere: nothing changes. Measured against the same model without it (leave-one-out,
  12 epochs, paired by seed; bench/impressions.py, bench/RESULTS.md tenth session): the MIND sample test
  NDCG@10 +26% (ahead on 5 of 5 seeds); demo data with clicks chosen from their slates and sparse users
  +0.9% (5 of 5 seeds); dense demo users no measurable change. Impressions are counted once however many
  rows repeat their slate (UserSequences.times_shown).
Users with no history get the most popular items (counted during the first training epoch).
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
from personalize_torch.models.older_checkpoints import fill_missing
from personalize_torch.models.transformer import SequenceTransformer
from personalize_torch.recipes.hyperparameters import check_range
from personalize_torch.recipes.next_item import HIDDEN_DIMENSION_RANGE, NextItemRecipe


class UserPersonalization(NextItemRecipe):
    recipe_name = "user_personalization"

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
                 median_history_length: float | None = None):
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
        self.item_bias = torch.nn.Parameter(torch.zeros(n_items))  # exposure / popularity, catalogue-wide
        if hp.exposure_prior:   # log share of the impressions that showed each item (0 without impressions)
            self.register_buffer("item_log_exposure", torch.zeros(n_items))
            # solution versions trained before `exposure_prior` existed load with a prior of 0 (no change)
            self.register_load_state_dict_pre_hook(fill_missing("item_log_exposure", "item_bias", torch.zeros_like))

    @classmethod
    def from_data(cls, data: DataDescription, **hyperparameters) -> UserPersonalization:
        recipe = cls(n_items=data.n_items, context_cardinalities=list(data.context_cardinalities),
                     event_type_names=list(data.event_type_names), median_history_length=data.median_history_length,
                     **data.item_features.sizes("item"), **hyperparameters)
        recipe.set_item_metadata(data)
        return recipe

    def count_statistics(self, split: Split) -> None:
        super().count_statistics(split)
        if self.hparams.exposure_prior:   # no impressions: all 0, the prior stays 0
            shown = torch.from_numpy(split.train.times_shown(self.n_items)).float()   # impressions, not rows
            log_shown = torch.log(shown + 1.0)          # centred below, the same as the log of the share
            self.item_log_exposure.copy_(log_shown - log_shown[1:].mean())

    def score_bias(self) -> Tensor:
        """Per-item term of the catalogue logits: the learned bias, plus the exposure prior when on."""
        bias = self.item_bias
        return bias + self.item_log_exposure if self.hparams.exposure_prior else bias

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

    def item_table(self) -> Tensor:
        """(n_items, C) item vectors: id embeddings plus metadata, used for inputs and for scoring."""
        table = self.model.item_embedding.weight
        if self.item_metadata is not None:
            meta = self.item_metadata(self.item_values, self.item_numeric)
            table = table + meta * (torch.arange(len(table), device=table.device) > 0).unsqueeze(1)
        return table

    def loss(self, batch: SequenceBatch) -> Tensor:
        self.count_popularity(batch)
        bptt = self.hparams.bptt
        inputs, targets = batch.items[:, :-1][:, -bptt:], batch.items[:, 1:][:, -bptt:]
        predict = (inputs > 0) & (targets > 0)                                   # (B, T)
        context = batch.context[:, :-1][:, -bptt:] if batch.context is not None else None
        table = self.item_table()
        hidden = self.model(inputs, self.context_embeddings(context), table)   # (B, T, C)
        if batch.context is not None and len(self.next_context_embeddings):
            hidden = hidden + self.next_context_embeddings(batch.context[:, 1:][:, -bptt:])
        hidden = hidden[predict]                                                 # (N, C)
        target = targets[predict]                                                # (N,)
        event_types = batch.event_types[:, 1:][:, -bptt:][predict] if batch.event_types is not None else None
        weights = self.target_weights(batch.timestamps[:, 1:][:, -bptt:][predict], event_types)
        loss = self.catalogue_loss(hidden, target, table, weights, self.score_bias())
        if batch.impressions is not None and self.hparams.impression_weight > 0:
            slates = batch.impressions[:, 1:][:, -bptt:][predict]                 # slate shown with each target
            slate_table = table if self.hparams.impression_item_gradient else table.detach()
            # With the exposure prior, the rest of the logits (dot product + learned bias) is the user's
            # preference, what a choice among shown items depends on: the slate term uses the same.
            slate_bias = self.item_bias.detach() if self.hparams.exposure_prior else None
            loss = loss + self.hparams.impression_weight * slate_choice_loss(hidden, target, slates, slate_table,
                                                                             weights, slate_bias)
        return loss

    @property
    def user_state_dimension(self) -> int:
        return self.hparams.hidden_dimension

    def user_state(self, inputs: SequenceBatch, table: Tensor | None = None) -> Tensor:
        """(B, C) each user's state from their events: the transformer's output at the newest event. It does
        not depend on the context of the event being predicted (`score_state` adds that), so a server can
        keep it per user (serving/user_states.py)."""
        items, context = inputs.items, inputs.context
        if items.shape[1] == 0:
            items, context = torch.zeros(items.shape[0], 1, dtype=torch.long, device=items.device), None
        table = self.item_table() if table is None else table
        return self.model(items, self.context_embeddings(context), table, last_only=True)[:, -1]

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
        return self.with_popular_fallback(torch.softmax(logits, dim=1), inputs.items)

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

