"""HRNN-Meta (aws-hrnn-metadata): HRNN (`recipes/hrnn.py`) that also reads Items metadata, Users metadata
and contextual interaction fields. Everything HRNN does (sessions, hyperparameters, loss, scoring mix of
"session goes on" and "new session") is inherited; this recipe only changes what the networks read:

- Items metadata (`use_item_metadata`; sizes from the data): an item's vector, read as input and scored
  as output, is its id embedding plus the mean embedding of its categorical values (`|` multi-values)
  plus a projection of its numeric fields, CREATION_TIMESTAMP included (`models.item_encoder`, the
  encoder User-Personalization uses). Items with few events are placed by what they are.
- Users metadata (`use_user_metadata`; sizes from the data): the same kind of encoder turns the user's
  categorical and numeric fields into the user-level GRU's state before the first session
  (`tanh(encoder(user))` instead of zeros), so the first session starts from what the user is and the
  user-level state carries it forward. A user's first event is predicted too, from that state alone, so
  the model learns what a user with no history but this description does first. A user the solution does
  not know (no events at training: described in the Users dataset, or sent with PutUsers to a running
  server) is scored from their metadata, encoded at request time with the solution's value vocabulary
  (values it never saw count as unknown); users with neither events nor metadata get the most popular
  items. Users without metadata start from zeros as in HRNN.
- Contextual interaction fields (`context_cardinalities`, from the data: DEVICE and other categorical
  Interactions fields): each event's context is embedded and added to its input vector; the context of
  the event being predicted (at request time the request's `context`, else the user's latest) is
  embedded separately and added to the query, as in User-Personalization; a field the request leaves
  out takes the user's latest value (so a batch line without `context` gets what `recommend` gives).
  Context vectors start small (models/context_embeddings.py), like the item vectors.

What each input is worth, input by input (bench/hrnn.md): on sparse data the item metadata is nearly all of
the gain, since it names the taste cluster of items that have few events; with enough epochs for the id
embeddings to learn the clusters by themselves the gap shrinks.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from personalize_torch.data.batching import SequenceBatch
from personalize_torch.data.description import DataDescription
from personalize_torch.models.context_embeddings import ContextEmbeddings
from personalize_torch.models.item_encoder import ItemMetadataEncoder
from personalize_torch.recipes.hrnn import HRNN
from personalize_torch.recipes.next_item import NextItemRecipe
from personalize_torch.recipes.user_metadata import has_user_metadata, user_metadata_rows


class HRNNMeta(HRNN):
    recipe_name = "hrnn_meta"

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
                 user_value_slots: int = 0, user_numeric_features: int = 0):
        NextItemRecipe.__init__(self, n_items)   # HRNN.__init__ would save only HRNN's hyperparameters
        self._save_hyperparameters(locals())
        self._build()
        self._build_metadata()

    @classmethod
    def from_data(cls, data: DataDescription, **hyperparameters) -> HRNNMeta:
        recipe = cls(n_items=data.n_items, context_cardinalities=list(data.context_cardinalities),
                     n_users=data.n_users, **data.item_features.sizes("item"), **data.user_features.sizes("user"),
                     **hyperparameters)
        recipe.set_item_metadata(data)
        users = data.user_features
        recipe.set_user_features(torch.from_numpy(users.categorical), torch.from_numpy(users.numeric))
        return recipe

    def _build_metadata(self) -> None:
        hp = self.hparams
        dim = hp.hidden_dimension
        cards = list(hp.context_cardinalities or [])
        # Small initial vectors, like the items' (see models/context_embeddings.py for what N(0, 1) did).
        self.context_embeddings = ContextEmbeddings(cards, dim)
        self.next_context_embeddings = ContextEmbeddings(cards, dim)
        self.item_metadata = None
        if hp.use_item_metadata and (hp.item_value_slots or hp.item_numeric_features):
            self.item_metadata = ItemMetadataEncoder(dim, hp.item_value_vocab_size, hp.item_numeric_features)
        self.register_buffer("item_values", torch.zeros(self.n_items, hp.item_value_slots, dtype=torch.long))
        self.register_buffer("item_numeric", torch.zeros(self.n_items, hp.item_numeric_features))
        self.user_metadata = None
        if hp.use_user_metadata and (hp.user_value_slots or hp.user_numeric_features):
            self.user_metadata = ItemMetadataEncoder(dim, hp.user_value_vocab_size, hp.user_numeric_features)
        n_users = max(int(hp.n_users), 1)
        self.register_buffer("user_values", torch.zeros(n_users, hp.user_value_slots, dtype=torch.long))
        self.register_buffer("user_numeric", torch.zeros(n_users, hp.user_numeric_features))

    # --- metadata from the data (data/metadata_features.py), kept as buffers in the checkpoint -------------
    def set_item_metadata(self, data: DataDescription) -> None:
        features = data.item_features
        self.set_item_features(torch.from_numpy(features.categorical), torch.from_numpy(features.numeric))

    def set_item_features(self, categorical: Tensor, numeric: Tensor) -> None:
        self.item_values.copy_(categorical)
        self.item_numeric.copy_(numeric)

    def set_user_features(self, categorical: Tensor, numeric: Tensor) -> None:
        """Rows are user indices (row 0: padding / unknown users)."""
        self.user_values.copy_(categorical)
        self.user_numeric.copy_(numeric)

    # --- HRNN's hooks ---------------------------------------------------------------------------------
    def item_metadata_vectors(self, numeric: bool = True) -> Tensor | None:
        """(n_items, C) the metadata part of every item's vector (0 for padding); None without metadata.
        `numeric=False`: from the categorical values only."""
        if self.item_metadata is None:
            return None
        numbers = self.item_numeric if numeric else torch.zeros_like(self.item_numeric)
        meta = self.item_metadata(self.item_values, numbers)
        return meta * (torch.arange(self.n_items, device=meta.device) > 0).unsqueeze(1)

    def item_vectors(self) -> Tensor | None:
        meta = self.item_metadata_vectors()
        return None if meta is None else self.model.item_embedding.weight + meta

    @property
    def user_metadata_shape(self) -> tuple[int, int] | None:
        if self.user_metadata is None:
            return None
        return int(self.user_values.shape[1]), int(self.user_numeric.shape[1])

    def scored_rows(self, inputs: SequenceBatch) -> Tensor:
        rows = super().scored_rows(inputs)
        if self.user_metadata is None:
            return rows
        return rows | has_user_metadata(*user_metadata_rows(inputs, self.user_values, self.user_numeric))

    def initial_user_state(self, batch: SequenceBatch) -> Tensor | None:
        """(B, C) the user-level state before the first session, from the user's metadata (the recipe's table
        for known users, the batch's for others, `recipes/user_metadata.py`); None without."""
        if self.user_metadata is None:
            return None
        return torch.tanh(self.user_metadata(*user_metadata_rows(batch, self.user_values, self.user_numeric)))

    def first_event_rows(self, batch: SequenceBatch) -> Tensor | None:
        """Windows that begin a user's history, of users with metadata: their first event is predicted from
        the metadata alone (the state a user unknown to the solution is scored from)."""
        if self.user_metadata is None or batch.starts_history is None:
            return None
        described = has_user_metadata(*user_metadata_rows(batch, self.user_values, self.user_numeric))
        return batch.starts_history.to(described.device) & described

    def model_inputs(self, batch: SequenceBatch, items: Tensor | None) -> tuple[Tensor | None, Tensor | None]:
        table = self.model.item_embedding.weight if items is None else items
        x = nn.functional.embedding(batch.items, table)                          # (B, T, C), 0 at padding
        context = self.context_embeddings(batch.context)
        if context is not None:
            x = x + context * (batch.items > 0).unsqueeze(-1)
        return x, self.initial_user_state(batch)

    def next_event_term(self, batch: SequenceBatch, predict: Tensor | None) -> Tensor | None:
        if not len(self.next_context_embeddings):
            return None
        if predict is not None:
            context = batch.context[predict] if batch.context is not None else None      # (N, F)
        else:   # the request's context; fields it does not give (0) take the user's latest value
            latest = batch.context[:, -1] if batch.context is not None and batch.context.shape[1] else None
            context = batch.next_context
            if context is None:
                context = latest
            elif latest is not None:
                context = torch.where(context > 0, context, latest)
        return self.next_context_embeddings(context)
