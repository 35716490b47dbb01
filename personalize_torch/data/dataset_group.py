"""A dataset group: the Interactions dataset plus optional Items and Users datasets, with schemas."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from personalize_torch.data import constants as C
from personalize_torch.data.dataset_files import read_dataset_file
from personalize_torch.data.schema import Schema
from personalize_torch.data.vocab import sorted_unique_strings


@dataclass
class DatasetGroup:
    interactions: pd.DataFrame
    items: pd.DataFrame | None = None
    users: pd.DataFrame | None = None
    schemas: dict[str, Schema] = field(default_factory=dict)
    name: str = "dataset"
    source: str = "demo data"  # where the interactions came from, for error messages
    # When `interactions` holds only a share of the group's users (see group_store): which share, (rank,
    # world size), and every item and user id of the group, so that each share builds the same item and
    # user vocabularies as the whole group would.
    share: tuple[int, int] | None = None
    all_item_ids: pd.Index | None = None
    all_user_ids: pd.Index | None = None

    @classmethod
    def from_csv(cls, interactions: str | Path, items: str | Path | None = None, users: str | Path | None = None,
                 interactions_schema: str | Path | None = None, items_schema: str | Path | None = None,
                 users_schema: str | Path | None = None, name: str | None = None) -> DatasetGroup:
        """Import CSV or Parquet files (schemas optional: inferred from the headers when missing)."""
        inter_df, inter_schema = read_dataset_file(interactions, C.INTERACTIONS, interactions_schema)
        group = cls(inter_df, schemas={C.INTERACTIONS: inter_schema}, name=name or Path(interactions).stem,
                    source=str(interactions))
        if items is not None:
            group.items, group.schemas[C.ITEMS] = read_dataset_file(items, C.ITEMS, items_schema)
        if users is not None:
            group.users, group.schemas[C.USERS] = read_dataset_file(users, C.USERS, users_schema)
        return group

    @property
    def n_interactions(self) -> int:
        return len(self.interactions)

    def catalogue_item_ids(self) -> pd.Index:
        """Every item id known to the group: from Interactions and from Items, sorted."""
        ids = sorted_unique_strings(self.interactions[C.ITEM_ID])
        for more in (self.items[C.ITEM_ID] if self.items is not None else None, self.all_item_ids):
            if more is not None:
                ids = sorted_unique_strings(np.concatenate([ids, sorted_unique_strings(more)]))
        return pd.Index(ids, dtype=object)
