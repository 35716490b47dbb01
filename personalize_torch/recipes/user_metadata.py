"""A user's Users metadata as a recipe reads it: from the recipe's table (rows = user indices, built from the
Users dataset at training) for the users the solution knows, from the batch (`SequenceBatch.user_values` /
`user_numeric`, encoded at request time) for the others: a user described in the Users dataset who had no
events, or one sent with PutUsers to a running server."""

from __future__ import annotations

import torch
from torch import Tensor

from personalize_torch.data.batching import SequenceBatch


def user_metadata_rows(batch: SequenceBatch, table_values: Tensor, table_numeric: Tensor) -> tuple[Tensor, Tensor]:
    """(values (B, S), numbers (B, K)) of each row's user: the table's row for a user index the table holds
    (> 0), else the batch's own metadata when given, else zeros (no metadata)."""
    idx = batch.user_idx.to(table_values.device)
    known = (idx > 0) & (idx < len(table_values))
    rows = torch.where(known, idx, torch.zeros_like(idx))
    values, numeric = table_values[rows], table_numeric[rows]
    if batch.user_values is not None:
        values = torch.where(known.unsqueeze(1), values, batch.user_values.to(values))
    if batch.user_numeric is not None:
        numeric = torch.where(known.unsqueeze(1), numeric, batch.user_numeric.to(numeric))
    return values, numeric


def has_user_metadata(values: Tensor, numeric: Tensor) -> Tensor:
    """(B,) bool: rows with at least one known value or a non-zero number."""
    return (values > 0).any(1) | (numeric != 0).any(1)
