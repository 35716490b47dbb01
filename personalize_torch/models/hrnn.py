"""A hierarchical recurrent network (HRNN, Quadrana et al. 2017) over item sequences, as a plain nn.Module.

"Personalizing Session-based Recommendations with Hierarchical Recurrent Neural Networks": a session-level
GRU reads the items of one session; when a session ends, a user-level GRU takes the session's last state
and updates the user's state, and the next session's GRU starts from `tanh(W_init user_state)`. So the
user state carries what the user did in earlier sessions, the session state what the user does now.

Input: item indices (B, T) left-padded with 0, oldest to newest, and a boolean (B, T) `session_start`
that is True at the first event of every session (see `session_starts`: an inactivity gap cuts
sessions). Output: for every position the *context* that predicts that event, i.e. what the model knows
just before it (B, T, 2C): the session state, concatenated with the embedding of the previous item. The
previous item's embedding is a skip connection past the GRU (not in the paper): on sparse data the next
item depends most on the last one (bench/hrnn.md). `forward` also returns the context after the last event, both for "the
session goes on" and for "a new session starts now".

Scores are `query(context) @ output_table().T`: a linear map of the context against the item embeddings
(tied with the input embeddings) plus a per-item bias. The loop over time steps runs small GRU cells on
the whole batch; there is no loop over events or users. No Lightning, no config objects: a notebook can
use it directly.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import torch
from torch import Tensor, nn

_threads_lock = threading.Lock()
_threads_depth = 0
_threads_saved = 1


@contextmanager
def one_cpu_thread(enabled: bool = True):
    """Run the block with one intra-op CPU thread, then restore the thread count (nesting and concurrent
    callers are safe: the count is restored when the last one leaves).

    A recurrent network runs thousands of tiny ops (a (B, C) x (C, 3C) product per step). Intra-op
    parallelism cannot speed those up, and when the cores are shared with other processes every parallel
    op waits for a descheduled thread: on 2 busy cores a 64 x 43 matmul took 16 ms with 2 threads and
    ~20 us with one, and an HRNN training step ran 10-100x slower."""
    global _threads_depth, _threads_saved
    if not enabled:
        yield
        return
    with _threads_lock:
        if _threads_depth == 0:
            _threads_saved = torch.get_num_threads()
            if _threads_saved != 1:
                torch.set_num_threads(1)
        _threads_depth += 1
    try:
        yield
    finally:
        with _threads_lock:
            _threads_depth -= 1
            if _threads_depth == 0 and _threads_saved != 1:
                torch.set_num_threads(_threads_saved)


def session_starts(items: Tensor, timestamps: Tensor, gap: float) -> Tensor:
    """True (B, T) at each event that opens a session: the first event of a left-padded row, or one more
    than `gap` seconds after the event before it. Padding (item 0) is never a session start."""
    valid = items > 0                                                            # (B, T)
    prev_valid = torch.zeros_like(valid)
    prev_valid[:, 1:] = valid[:, :-1]
    gaps = torch.zeros_like(timestamps)
    gaps[:, 1:] = timestamps[:, 1:] - timestamps[:, :-1]
    return valid & (~prev_valid | (gaps > gap))


class HierarchicalGRU(nn.Module):
    def __init__(self, n_items: int, dim: int = 64, dropout: float = 0.2, embedding_dropout: float = 0.2):
        super().__init__()
        self.item_embedding = nn.Embedding(n_items, dim, padding_idx=0)
        self.item_bias = nn.Parameter(torch.zeros(n_items))   # output bias: an item's base rate
        self.session_gru = nn.GRUCell(dim, dim)
        self.user_gru = nn.GRUCell(dim, dim)
        self.session_init = nn.Linear(dim, dim)                # user state -> next session's first state
        self.output = nn.Linear(2 * dim, dim)                  # (session state, last item) -> query
        self.embedding_dropout = nn.Dropout(embedding_dropout)
        self.dropout = nn.Dropout(dropout)
        self.dim = dim
        nn.init.normal_(self.item_embedding.weight, std=0.05)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()

    def _new_session(self, session: Tensor, user: Tensor) -> tuple[Tensor, Tensor]:
        """End the current session: the user GRU reads its last state; the next one starts from the user."""
        user = self.user_gru(self.dropout(session), user)
        return torch.tanh(self.session_init(user)), user

    def forward(self, items: Tensor, session_start: Tensor, inputs: Tensor | None = None,
                initial_user: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Returns (contexts (B, T, 2C), context after the last event if the session goes on (B, 2C), context
        if a new session starts after the last event (B, 2C)). contexts[:, t] predicts items[:, t].
        `items` must be left-padded (padding only before a row's first event).

        Optional, for models that read more than item ids (HRNN-Meta): `inputs` (B, T, C), the vectors the
        GRUs read instead of the item embeddings (0 at padding), and `initial_user` (B, C), the user-level
        state before the first session (zeros when None), e.g. built from the user's metadata."""
        B, T = items.shape
        valid = items > 0                                                        # (B, T)
        x = self.item_embedding(items) if inputs is None else inputs
        x = self.embedding_dropout(x)                                            # (B, T, C), 0 at padding
        zero = x.new_zeros(B, self.dim)
        # Before its first event a row sits in its first session (padding leaves the state alone); a
        # later session start first runs the user GRU. Which steps have any is known up front.
        user = zero if initial_user is None else initial_user
        session = torch.tanh(self.session_init(user))
        later_start = session_start & ((valid.cumsum(1) - valid.long()) > 0)     # (B, T)
        steps_with_later_start = later_start.any(0).tolist()
        states = []
        for t in range(T):
            if steps_with_later_start[t]:
                restart = later_start[:, t, None]
                new_session, new_user = self._new_session(session, user)
                session = torch.where(restart, new_session, session)
                user = torch.where(restart, new_user, user)
            states.append(session)
            session = torch.where(valid[:, t, None], self.session_gru(x[:, t], session), session)
        states = torch.stack(states, 1) if T else x.new_zeros(B, 0, self.dim)  # (B, T, C)
        previous = torch.cat([x.new_zeros(B, 1, self.dim), x[:, :-1]], 1)[:, :T]  # item before t (0 at first)
        contexts = torch.cat([states, previous], 2)                              # (B, T, 2C)
        last = x[:, -1] if T else zero                                           # newest item (left padding)
        new_session, _ = self._new_session(session, user)
        new_session = torch.where(valid.any(1, keepdim=True), new_session, session)
        return contexts, torch.cat([session, last], 1), torch.cat([new_session, last], 1)

    def query(self, context: Tensor) -> Tensor:
        """Contexts (..., 2C) -> query vectors (..., C + 1) whose dot product with `output_table()` rows
        gives the item scores (the trailing 1 picks up the item bias)."""
        q = self.output(self.dropout(context))
        return torch.cat([q, torch.ones_like(q[..., :1])], dim=-1)

    def output_table(self, items: Tensor | None = None, bias: Tensor | None = None) -> Tensor:
        """(n_items, C + 1): item vectors (`items` (n_items, C), default the item embeddings, tied with the
        input) and item biases (`bias` (n_items,), default `item_bias`). Given a subset of the rows of both
        ((U, C) and (U,), e.g. a training batch's items), the table of those rows (U, C + 1)."""
        items = self.item_embedding.weight if items is None else items
        bias = self.item_bias if bias is None else bias
        return torch.cat([items, bias[:, None]], dim=1)

    def item_scores(self, context: Tensor) -> Tensor:
        """Scores (..., n_items) of every item for contexts (..., 2C)."""
        return self.query(context) @ self.output_table().T
