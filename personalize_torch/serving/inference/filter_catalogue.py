"""Filters for a served solution version: its catalogue (items, users, interactions) built once."""

from __future__ import annotations

import numpy as np
import pandas as pd

from personalize_torch.data import constants as C
from personalize_torch.data.schema import parse_schema
from personalize_torch.filters import Catalogue
from personalize_torch.solution_version import SolutionVersion


def history_table(solution: SolutionVersion) -> pd.DataFrame:
    """Every stored event as USER_ID, ITEM_ID, TIMESTAMP[, EVENT_TYPE] rows."""
    h = solution.histories
    table = pd.DataFrame({
        C.USER_ID: np.repeat(solution.user_vocab.to_id(h.user_idx), h.lengths),
        C.ITEM_ID: solution.item_vocab.to_id(h.item_idx) if len(h.item_idx) else np.array([], dtype=object),
        C.TIMESTAMP: h.timestamp,
    })
    if h.event_type is not None and solution.event_type_vocab is not None:
        names = np.concatenate([[None], np.asarray(solution.event_type_vocab.ids, dtype=object)])
        table[C.EVENT_TYPE] = names[h.event_type]
    return table


def build_catalogue(solution: SolutionVersion) -> Catalogue:
    """The filter catalogue of a solution version, over the model's item indices. Its Interactions are the
    stored histories, or, when training selected some event types, the stored filter interactions (every
    type), whose users include those with no event of the trained types."""
    schemas = solution.info.get("schemas", {})
    textual = []
    if C.ITEMS in schemas:
        textual = [f.name for f in parse_schema(schemas[C.ITEMS], C.ITEMS).fields if f.textual]
    interactions, user_ids = history_table(solution), solution.user_vocab
    if solution.filter_interactions is not None:  # trained on some event types: filters see all of them
        interactions = solution.filter_interactions
        others = pd.Index(interactions[C.USER_ID].unique()).difference(solution.user_vocab.ids, sort=False)
        user_ids = [*solution.user_vocab.ids, *others]
    return Catalogue.build(solution.item_vocab, items=solution.items, users=solution.users,
                           interactions=interactions, user_ids=user_ids, textual_fields=textual)
