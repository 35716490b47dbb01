"""Similar-Items (aws-similar-items): related items from interactions AND item metadata, so items with few
or no interactions still get good neighbours.

Each item has a vector, the concatenation of
- an id embedding of `item_id_hidden_dim` (learned from co-interactions; meaningless for items never seen),
- a metadata embedding of `item_metadata_hidden_dim`: the mean embedding of its categorical values
  (`|` multi-values), a projection of its numeric fields (CREATION_TIMESTAMP included) and the mean
  embedding of the hashed words of the textual field (e.g. DESCRIPTION, data/text_features.py),
L2-normalized; two items' similarity is the cosine of their vectors.

Training: for every pair of events of a user at most `cointeraction_window` events apart (both
directions, repeats skipped), the second item is predicted from the first with a softmax over the
catalogue of cosine / `temperature` (full softmax, or sampled with logQ correction for catalogues over
`full_softmax_max_items`). With probability `id_dropout` an item's id part is zeroed in a training step,
so the metadata part alone must place items near what they are co-interacted with: what a cold item
(no interactions, or fewer than Personalize's 5) relies on.

Serving: the related items of a history's last item, by cosine. An item unknown to the solution, or an
empty history, gets the popular items (distinct training users per item).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from personalize_torch.data.batching import SequenceBatch
from personalize_torch.data.description import DataDescription
from personalize_torch.data.text_features import TEXT_BUCKETS
from personalize_torch.errors import InputError
from personalize_torch.losses import full_softmax_loss, sampled_softmax_loss
from personalize_torch.models.item_encoder import ItemMetadataEncoder
from personalize_torch.recipes.base import Recipe
from personalize_torch.recipes.hyperparameters import check_range


def cointeraction_pairs(items: Tensor, window: int) -> tuple[Tensor, Tensor]:
    """(source, target) item indices of every ordered pair of events at most `window` apart in each
    left-padded row of `items` (B, T), in both directions, leaving out padding and repeats of one item."""
    sources, targets = [], []
    for d in range(1, min(window, items.shape[1] - 1) + 1):
        a, b = items[:, :-d], items[:, d:]
        ok = (a > 0) & (b > 0) & (a != b)
        sources += [a[ok], b[ok]]
        targets += [b[ok], a[ok]]
    if not sources:
        empty = torch.zeros(0, dtype=torch.long, device=items.device)
        return empty, empty
    return torch.cat(sources), torch.cat(targets)


class SimilarItems(Recipe):
    recipe_name = "similar_items"
    recipe_type = "RELATED_ITEMS"

    def __init__(self, n_items: int, item_id_hidden_dim: int = 100, item_metadata_hidden_dim: int = 100,
                 id_dropout: float = 0.5, temperature: float = 0.1, cointeraction_window: int = 3,
                 learning_rate: float = 0.005, weight_decay: float = 0.0, num_negatives: int = 1024,
                 full_softmax_max_items: int = 50_000, use_item_metadata: bool = True,
                 item_value_vocab_size: int = 0, item_value_slots: int = 0, item_numeric_features: int = 0,
                 item_text_slots: int = 0, text_buckets: int = TEXT_BUCKETS, history_window: int = 50):
        super().__init__(n_items)
        self._save_hyperparameters(locals())
        hp = self.hparams
        check_range("item_id_hidden_dim", hp.item_id_hidden_dim, 1, 1024)
        check_range("item_metadata_hidden_dim", hp.item_metadata_hidden_dim, 1, 1024)
        check_range("id_dropout", hp.id_dropout, 0.0, 1.0)
        check_range("cointeraction_window", hp.cointeraction_window, 1, 1000)
        if hp.temperature <= 0:
            raise InputError(f"must be positive, got {hp.temperature}", column="temperature")
        self.item_embedding = nn.Embedding(n_items, hp.item_id_hidden_dim, padding_idx=0)
        nn.init.normal_(self.item_embedding.weight, std=0.02)
        self.has_metadata = bool(use_item_metadata and (item_value_slots or item_numeric_features or item_text_slots))
        self.metadata = self.text = None
        if self.has_metadata:
            self.metadata = ItemMetadataEncoder(hp.item_metadata_hidden_dim, item_value_vocab_size, item_numeric_features)
            if item_text_slots:
                self.text = nn.Embedding(text_buckets + 1, hp.item_metadata_hidden_dim, padding_idx=0)
                nn.init.normal_(self.text.weight, std=0.02)
        self.register_buffer("item_values", torch.zeros(n_items, item_value_slots, dtype=torch.long))
        self.register_buffer("item_numeric", torch.zeros(n_items, item_numeric_features))
        self.register_buffer("item_text", torch.zeros(n_items, item_text_slots, dtype=torch.long))
        self.register_buffer("item_users", torch.zeros(n_items))  # distinct training users per item (fallback)

    # --- what it takes from the data ---------------------------------------------------------------
    @classmethod
    def from_data(cls, data: DataDescription, **hyperparameters) -> SimilarItems:
        recipe = cls(n_items=data.n_items, item_text_slots=int(data.item_text_tokens.shape[1]),
                     **data.item_features.sizes("item"), **hyperparameters)
        recipe.set_item_metadata(data)
        return recipe

    def set_item_metadata(self, data: DataDescription) -> None:
        features = data.item_features
        self.set_item_features(torch.from_numpy(features.categorical), torch.from_numpy(features.numeric))
        self.item_text.copy_(torch.from_numpy(data.item_text_tokens))

    def set_item_features(self, categorical: Tensor, numeric: Tensor) -> None:
        self.item_values.copy_(categorical)
        self.item_numeric.copy_(numeric)

    def item_embeddings(self) -> Tensor:
        with torch.no_grad():
            return self.item_vectors()

    @property
    def input_length(self) -> int:
        return 1  # related items of the last event

    @property
    def train_length(self) -> int:
        return self.hparams.history_window

    # --- the model ---------------------------------------------------------------------------------
    def metadata_vectors(self) -> Tensor | None:
        """(n_items, item_metadata_hidden_dim) vectors of the items' metadata; None without metadata."""
        if not self.has_metadata:
            return None
        meta = self.metadata(self.item_values, self.item_numeric)
        if self.text is not None:
            present = (self.item_text > 0).unsqueeze(-1).float()
            meta = meta + (self.text(self.item_text) * present).sum(1) / present.sum(1).clamp(min=1.0)
        return meta

    def item_vectors(self, id_keep: Tensor | None = None) -> Tensor:
        """(n_items, D) L2-normalized item vectors; `id_keep` (n_items,) zeroes the id part of some items."""
        ids = self.item_embedding.weight
        if id_keep is not None:
            ids = ids * id_keep.unsqueeze(1)
        meta = self.metadata_vectors()
        vectors = ids if meta is None else torch.cat([ids, meta], 1)
        return F.normalize(vectors, dim=1)

    def loss(self, batch: SequenceBatch) -> Tensor:
        items = batch.items
        if self.current_epoch == 0:   # popularity fallback: distinct users per item, counted once
            seen = torch.zeros(items.shape[0], self.n_items, dtype=torch.bool, device=items.device)
            seen.scatter_(1, items, True)
            seen[:, 0] = False
            self.item_users += seen.sum(0)
        source, target = cointeraction_pairs(items, self.hparams.cointeraction_window)
        keep = None
        if self.has_metadata and self.hparams.id_dropout > 0:
            keep = (torch.rand(self.n_items, device=items.device) >= self.hparams.id_dropout).float()
        table = self.item_vectors(keep)
        if not len(source):
            return table.sum() * 0.0
        hidden = table[source] / self.hparams.temperature
        if self.n_items - 1 <= self.hparams.full_softmax_max_items:   # n_items counts the padding row
            return full_softmax_loss(hidden, target, table)
        proposal = (self.item_users + 1.0).pow(0.75)
        proposal[0] = 0
        return sampled_softmax_loss(hidden, target, table, (proposal / proposal.sum()).log(),
                                    self.hparams.num_negatives)

    def similarities(self, items: Tensor) -> Tensor:
        """(B, n_items) cosine similarity of each item to every item."""
        table = self.item_vectors()
        return table[items] @ table.T

    def score(self, inputs: SequenceBatch) -> Tensor:
        items = inputs.items
        B = items.shape[0]
        last = items[:, -1] if items.shape[1] else torch.zeros(B, dtype=torch.long, device=items.device)
        scores = self.similarities(last)                                         # in [-1, 1]
        popular = (self.item_users / self.item_users.max().clamp(min=1)).expand(B, -1)
        return torch.where((last > 0).unsqueeze(1), scores, popular)
