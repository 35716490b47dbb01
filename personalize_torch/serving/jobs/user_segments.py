"""User segments: for an item, or for the items with given attributes, the users most likely to interact.

Personalize's batch segment jobs (Item-Affinity, Item-Attribute-Affinity) take queries such as
`{"itemId": "105"}` or `{"itemAttributes": "ITEMS.GENRES = \\"Comedy\\" AND ITEMS.PRICE < 20"}` and return
users in descending probability. Here, for every user with a stored history, the recipe scores the
catalogue from the user's recent events (P(item | user) for the transformer recipes); a query's score for
a user is the expected number of interactions with the query's items (one item for an `itemId` query):
the summed score times the user's number of events (`item_affinity.expected_interactions`). Users who already
interacted with a queried item are not in its segment (unless `exclude_seen` is False); an attribute query
counts every item with the attributes, including ones the user already has, because it asks who likes
that kind of item (repeat interactions count; leaving them out would rank the users who like the genre
least first on catalogues they have largely explored). A UserID filter (`INCLUDE UserID WHERE Users.AGE >= $AGE`) restricts the users.

Users are scored in chunks, each query keeping a running top-k (`merge_top_k`), so memory is bounded by
chunk x catalogue plus k x queries, whatever the number of users.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from personalize_torch.data.batching import history_items, sequence_batch
from personalize_torch.errors import InputError
from personalize_torch.filters import Filter, FilterError
from personalize_torch.metrics.user_segments import merge_top_k
from personalize_torch.recipes.item_affinity import expected_interactions
from personalize_torch.serving.inference.predictor import Predictor

MAX_USERS_PER_SEGMENT = 5_000_000  # Personalize's limit for a batch segment job
USER_CHUNK = 1024

_ITEMS_FIELD = re.compile(r"\bITEMS\.([A-Za-z_][A-Za-z0-9_]*)", re.IGNORECASE)
_PREFIX = "INCLUDE ItemID WHERE "


def _attribute_error(err: FilterError) -> InputError:
    """The filter's error with its character position counted in the itemAttributes text itself."""
    message = re.sub(r"^at character \d+: ", "", err.message)
    if err.position is not None:
        message = f"at character {max(1, err.position - len(_PREFIX))}: {message}"
    return InputError(message, column="itemAttributes")


@dataclass
class SegmentMember:
    user_id: str
    score: float


def attribute_filter(expression: str, item_columns: Sequence[str]) -> Filter:
    """Personalize's itemAttributes expression (`ITEMS.genres = "Comedy" AND ITEMS.genres = "Action"`)
    as an INCLUDE ItemID filter. `ITEMS` may be written in any case; field names match the Items columns
    case-insensitively when not exact (Personalize's examples write `ITEMS.genres` for a GENRES column)."""
    if not isinstance(expression, str) or not expression.strip():
        raise InputError("itemAttributes must be a non-empty expression such as 'ITEMS.GENRES = \"Comedy\"'",
                         column="itemAttributes")
    by_lower = {c.lower(): c for c in item_columns}

    def field(match: re.Match) -> str:
        name = match.group(1)
        return "Items." + (name if name in item_columns else by_lower.get(name.lower(), name))

    rewritten = _ITEMS_FIELD.sub(field, expression)
    try:
        return Filter.parse(_PREFIX + rewritten)
    except FilterError as err:
        raise _attribute_error(err) from None


class UserSegmenter:
    """Scores segment queries against every user of a solution version."""

    def __init__(self, predictor: Predictor):
        self.predictor = predictor
        self.solution = predictor.solution
        h = self.solution.histories
        self.rows = np.arange(len(h), dtype=np.int64)
        self.user_ids = np.asarray(self.solution.user_vocab.to_id(h.user_idx), dtype=object)

    def item_query(self, item_id: str) -> torch.Tensor:
        """(n_items,) mask of one item; InputError when the solution does not know it."""
        idx = int(self.solution.item_vocab.to_idx([item_id])[0])
        if idx == 0:
            raise InputError(f"item {item_id!r} is not in this solution version's catalogue", column="itemId")
        mask = torch.zeros(self.solution.item_vocab.size_with_padding, dtype=torch.bool)
        mask[idx] = True
        return mask

    def attribute_query(self, expression: str) -> torch.Tensor:
        """(n_items,) mask of the items an itemAttributes expression selects."""
        items = self.solution.items
        f = attribute_filter(expression, [c for c in items.columns] if items is not None else [])
        try:
            mask = f.item_mask(self.predictor.catalogue, -1)
        except FilterError as err:
            raise _attribute_error(err) from None
        if not bool(mask.any()):
            raise InputError(f"no item matches {expression!r}", column="itemAttributes")
        return mask

    def allowed_users(self, user_filter: Filter | None, filter_values: Mapping[str, str] | None) -> torch.Tensor:
        if user_filter is None:
            return torch.ones(len(self.rows), dtype=torch.bool)
        catalogue = self.predictor.catalogue
        rows = catalogue.user_rows(list(self.user_ids))
        return user_filter.user_mask(catalogue, filter_values, user_rows=rows)

    def segments(self, queries: torch.Tensor, num_results: int, exclude_seen: bool | torch.Tensor = True,
                 user_filter: Filter | None = None, filter_values: Mapping[str, str] | None = None
                 ) -> list[list[SegmentMember]]:
        """The top `num_results` users of each query (Q, n_items) item mask, best first. `exclude_seen`
        (one bool, or one per query): leave out the query's items a user already has."""
        if not 1 <= num_results <= MAX_USERS_PER_SEGMENT:
            raise InputError(f"must be between 1 and {MAX_USERS_PER_SEGMENT}, got {num_results}", column="numResults")
        recipe, device = self.predictor.recipe, self.predictor.device
        h = self.solution.histories
        weights = queries.float().to(device)                                       # (Q, N)
        exclude = torch.as_tensor(exclude_seen, dtype=torch.bool).expand(weights.shape[0]).to(device)   # (Q,)
        allowed = self.allowed_users(user_filter, filter_values)
        k = min(num_results, len(self.rows))
        Q = weights.shape[0]
        top_scores = torch.full((0, Q), -torch.inf, device=device)
        top_rows = torch.zeros((0, Q), dtype=torch.long, device=device)
        for start in range(0, len(self.rows), USER_CHUNK):
            rows = self.rows[start:start + USER_CHUNK]
            with torch.no_grad():
                scores = recipe.score(sequence_batch(h, rows, recipe.input_length).to(device)).float()
            scores = torch.nan_to_num(scores.clamp(min=0), posinf=0.0)
            scores[:, 0] = 0
            scores = expected_interactions(scores, torch.from_numpy(h.lengths[rows]).to(device))
            mass = scores @ weights.T                                              # (B, Q)
            ok = allowed[start:start + len(rows)].to(device).view(-1, 1).expand_as(mass)
            if bool(exclude.any()):
                unseen = torch.ones_like(scores)
                unseen.scatter_(1, history_items(h, rows).to(device), 0.0)
                unseen_mass = (scores * unseen) @ weights.T
                reachable = (unseen @ weights.T) > 0
                mass = torch.where(exclude, unseen_mass, mass)
                ok = ok & (reachable | ~exclude)
            mass = torch.where(ok, mass, torch.full_like(mass, -torch.inf))
            top_scores, top_rows = merge_top_k(top_scores, top_rows, mass,
                                               torch.from_numpy(rows).to(device), k)
        out = []
        for q in range(Q):
            finite = torch.isfinite(top_scores[:, q]).cpu().numpy()
            rows = top_rows[:, q].cpu().numpy()[finite]
            vals = top_scores[:, q].cpu().numpy()[finite]
            out.append([SegmentMember(str(u), float(v)) for u, v in zip(self.user_ids[rows], vals)])
        return out
