"""HRNN (aws-hrnn): a hierarchical recurrent network over each user's recent sessions (Quadrana et al. 2017).

A session-level GRU reads the items of the current session; a user-level GRU, updated at the end of
each session, gives the next session its first state (`personalize_torch.models.hrnn`). Sessions are cut
where two consecutive events of a user are more than `session_gap_seconds` apart.

What each hyperparameter does (Personalize's names where Personalize has them):
- `hidden_dimension` (32-256 in Personalize; 8-1024 accepted): size of item embeddings and GRU states.
- `bptt` (2-32 in Personalize; 2-512 accepted): how many recent events the model reads, and how many
  time steps a training window backpropagates through (a training window holds `bptt + 1` events). The
  user-level state is rebuilt from these events; it is not carried across windows.
- `session_gap_seconds` (default 1800, the usual 30-minute web-analytics timeout): an event more than
  this long after the user's previous event opens a new session. With timestamps that are only positions
  (the `amazon_seq` benchmark files count 0, 1, 2, ...) every user has a single session, so the user-level
  GRU is never used and HRNN is a GRU4Rec-style session GRU over the user's last `bptt` events; set it
  below 1 to make every event its own session (then the user-level GRU does all the work).
- `recency_mask` (true/false): weight the loss towards recent events, so recent popularity trends count
  more; each predicted event's weight rises linearly with its time, from `1 - recency_strength` for the
  oldest event of the training data to 1 for the newest.
- `min_user_history_length_percentile` / `max_user_history_length_percentile`: training users whose
  history length is below / above these percentiles are left out of training (still served, evaluated).
- `loss`: `full` softmax over the catalogue, `sampled` softmax with logQ correction (`num_negatives`
  shared negatives drawn from popularity^0.75; 2048 as in GRU4Rec), or `auto`: full up to
  `full_softmax_max_items` items. On a CPU the sampled softmax makes epochs over a large catalogue much
  faster (bench/hrnn.md). With it, a training step reads and updates only the rows of the item embeddings
  and biases it uses (the batch's items and the negatives; next_item.py), so a step costs about the same
  at 10k or 1M items, and `weight_decay` shrinks an item's rows when the item is used.
- `dropout` (on GRU outputs), `embedding_dropout` (on input item embeddings), `learning_rate`,
  `weight_decay` (AdamW), `lr_schedule`: `cosine` (decay to 0 over the trainer's `max_epochs`, by step) or
  `constant`.

Each event is predicted from the state the model is in just before it: the running session state, or,
when the event opens a new session, the new session's first state (built from the updated user state),
so the user-level GRU learns to predict what a user does when coming back; the previous item's embedding
is read next to that state (a skip connection, see the model's docstring). At scoring time the next
event's time is unknown, so the scores mix both: the session continuing, with weight `1 - p`, and a new
session, with weight `p`, the share of training events that open a session (counted while training).
Users with no history get the most popular items (counted during the first training epoch); HRNN-Meta
scores those it has Users metadata for from that metadata.
"""

from __future__ import annotations

import torch
from torch import Tensor

from personalize_torch.data.batching import SequenceBatch
from personalize_torch.models.hrnn import HierarchicalGRU, one_cpu_thread, session_starts
from personalize_torch.models.item_rows import gather_rows
from personalize_torch.recipes.hyperparameters import check_range
from personalize_torch.recipes.next_item import NextItemRecipe


class HRNN(NextItemRecipe):
    recipe_name = "hrnn"
    # The row path of `_loss` reads the id embeddings and biases directly, bypassing the hooks below
    # (`item_vectors`, `model_inputs`, ...) that a subclass overrides with whole-table computations: a
    # subclass reads whole tables (trains densely) unless it declares `reads_item_rows = True` itself.
    reads_item_rows = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.reads_item_rows = cls.__dict__.get("reads_item_rows", False)

    def __init__(self, n_items: int, hidden_dimension: int = 43, bptt: int = 32, session_gap_seconds: int = 1800,
                 dropout: float = 0.4, embedding_dropout: float = 0.4, learning_rate: float = 5e-3,
                 weight_decay: float = 0.0, lr_schedule: str = "cosine", loss: str = "auto",
                 num_negatives: int = 2048, full_softmax_max_items: int = 100_000, recency_mask: bool = True,
                 recency_strength: float = 0.5,
                 min_user_history_length_percentile: float = 0.0,
                 max_user_history_length_percentile: float = 0.99):
        super().__init__(n_items)
        self._save_hyperparameters(locals())
        self._build()

    def _build(self) -> None:
        """Check HRNN's hyperparameters and build the network. A subclass with more hyperparameters
        (HRNN-Meta) saves its own and then calls this, instead of calling `HRNN.__init__`."""
        hp = self.hparams
        self._check_next_item_hyperparameters()
        check_range("session_gap_seconds", hp.session_gap_seconds, 0, float("inf"))
        check_range("dropout", hp.dropout, 0.0, 1.0)
        check_range("embedding_dropout", hp.embedding_dropout, 0.0, 1.0)
        self.model = HierarchicalGRU(self.n_items, hp.hidden_dimension, hp.dropout, hp.embedding_dropout)
        # Predicted training events that opened a session / all predicted training events (first epoch).
        self.register_buffer("session_start_counts", torch.zeros(2))

    @property
    def new_session_rate(self) -> float:
        """Share of training events that open a session (0 before training)."""
        starts, total = self.session_start_counts.tolist()
        return starts / total if total else 0.0

    def session_starts(self, batch: SequenceBatch) -> Tensor:
        return session_starts(batch.items, batch.timestamps, self.hparams.session_gap_seconds)

    def _one_thread(self):
        """On CPU, training steps (forward, backward, optimizer) and scoring run with one intra-op thread:
        see `one_cpu_thread` for why (10-100x faster on shared cores, at most ~2x slower on idle ones)."""
        return one_cpu_thread(self.device.type == "cpu")

    def optimizer_step(self, *args, **kwargs) -> None:
        with self._one_thread():   # the closure inside runs training_step and backward
            super().optimizer_step(*args, **kwargs)

    def loss(self, batch: SequenceBatch) -> Tensor:
        with self._one_thread():
            return self._loss(batch)

    def score(self, inputs: SequenceBatch) -> Tensor:
        with self._one_thread():
            return self._score(inputs)

    # --- what a subclass adds to the inputs (HRNN-Meta: metadata, user fields, context) --------------
    def item_vectors(self) -> Tensor | None:
        """(n_items, C) item vectors read as inputs and scored as outputs; None: the id embeddings."""
        return None

    def output_item_vectors(self, vectors: Tensor | None) -> Tensor | None:
        """(n_items, C) item vectors scored as outputs, given `item_vectors()` (default: the same)."""
        return vectors

    def item_embeddings(self) -> Tensor:
        with torch.no_grad():
            vectors = self.output_item_vectors(self.item_vectors())
            return self.model.item_embedding.weight if vectors is None else vectors

    def model_inputs(self, batch: SequenceBatch, items: Tensor | None) -> tuple[Tensor | None, Tensor | None]:
        """(inputs (B, T, C), initial user state (B, C)) for the network, given `item_vectors()`;
        None, None: the item embeddings and a zero user state (plain HRNN)."""
        return None, None

    def first_event_rows(self, batch: SequenceBatch) -> Tensor | None:
        """(B,) bool: training rows whose first event is predicted too, from the state before any event (what
        a user with no history is scored from); None: a window's first event is never predicted (HRNN, whose
        state before any event is the same for every user)."""
        return None

    def next_event_term(self, batch: SequenceBatch, predict: Tensor | None) -> Tensor | None:
        """A vector added to the query of each predicted event: (N, C) for the events `predict` (B, T)
        marks in training, (B, C) for the next event when scoring (`predict` None). None: nothing."""
        return None

    def _query(self, context: Tensor, extra: Tensor | None) -> Tensor:
        query = self.model.query(context)                                        # (..., C + 1)
        return query if extra is None else query + torch.nn.functional.pad(extra, (0, 1))

    def _loss(self, batch: SequenceBatch) -> Tensor:
        items = batch.items
        starts = self.session_starts(batch)
        self.count_popularity(batch)    # before the negatives are drawn from the popularity
        rows = self.batch_rows(items)   # None: whole tables (full softmax, or a subclass's hooks)
        if rows is None:
            vectors = self.item_vectors()
            inputs = self.model_inputs(batch, vectors)
            table = self.model.output_table(self.output_item_vectors(vectors))   # (n_items, C + 1)
            target_rows = items
        else:   # the id embeddings and biases of the batch's items and negatives only
            vectors = gather_rows(self.model.item_embedding.weight, rows.ids, padding_idx=0)   # (U, C)
            target_rows = rows.local(items)                                      # (B, T) rows of `vectors`
            inputs = (vectors[target_rows], None)                                # = item_embedding(items)
            table = self.model.output_table(vectors, gather_rows(self.model.item_bias, rows.ids))   # (U, C + 1)
        contexts, _, _ = self.model(items, starts, *inputs)                      # (B, T, 2C)
        # Predict every event but a window's first from the state just before it.
        predict = torch.zeros_like(starts)
        predict[:, 1:] = (items[:, :-1] > 0) & (items[:, 1:] > 0)                # (B, T)
        if self.current_epoch == 0:
            self.session_start_counts += torch.stack([(starts & predict).sum(), predict.sum()]).float()
        first = self.first_event_rows(batch)
        if first is not None:   # the first event of these rows, from the state before it (left padding)
            lengths = (items > 0).sum(1)
            rows = torch.nonzero(first & (lengths > 0)).view(-1)
            predict[rows, items.shape[1] - lengths[rows]] = True
        query = self._query(contexts[predict], self.next_event_term(batch, predict))   # (N, C + 1)
        target = target_rows[predict]                                            # (N,)
        weights = self.recency_weights(batch.timestamps[predict])
        return self.catalogue_loss(query, target, table, weights, rows=rows)

    def _score(self, inputs: SequenceBatch) -> Tensor:
        items = inputs.items
        vectors = self.item_vectors()
        _, going_on, restarted = self.model(items, self.session_starts(inputs), *self.model_inputs(inputs, vectors))
        table = self.model.output_table(self.output_item_vectors(vectors)).T
        extra = self.next_event_term(inputs, None)

        def probs(context: Tensor) -> Tensor:
            logits = self._query(context, extra) @ table                         # (B, n_items)
            logits[:, 0] = -torch.inf
            return torch.softmax(logits, dim=1)

        p = self.new_session_rate
        scores = probs(going_on) if p < 1 else 0.0
        if p > 0:
            scores = (1 - p) * scores + p * probs(restarted)
        return self.with_popular_fallback(scores, inputs)
